"""build_journal: the seven categories of ACCOUNTING.md, balanced to the fils by construction."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from mamo_revenue.events import empty_events, events_frame
from mamo_revenue.hooks.ledger import Side
from mamo_revenue.journal import (
    Category,
    JournalLine,
    MappedAccount,
    build_journal,
    mapping_fallbacks,
    reference_for,
    resolve_account,
)
from mamo_revenue.periods import Frequency, Period

P = Period(date(2026, 11, 20), Frequency.DAILY)
VAT = Decimal("0.05")


def events(*rows, period_key="20261120"):
    """rows: (kind, charge_id, amount[, cumulative])."""
    return events_frame(
        [r[0] for r in rows],
        [r[1] for r in rows],
        [period_key] * len(rows),
        [r[2] for r in rows],
        [r[3] if len(r) > 3 else None for r in rows],
    )


def lines(journal):
    return [(line.category.value, line.side.value, line.amount_minor) for line in journal.lines]


def test_worked_example_day_1():
    journal = build_journal(
        events(
            ("sale", "c1", 10500),
            ("sale", "c2", 5250),
            ("sale", "c4", 3648),
            ("fee", "c1", 405),
            ("fee", "c2", 252),
            ("fee", "c4", 207),
            ("fee_vat", "c1", 20),
            ("fee_vat", "c2", 13),
            ("fee_vat", "c4", 10),
        ),
        company_id="acme",
        period=P,
        sales_vat_rate=VAT,
    )
    assert lines(journal) == [
        ("clearing", "debit", 18491),
        ("fees", "debit", 864),
        ("vat_recoverable", "debit", 43),
        ("sales", "credit", 18474),
        ("vat_payable", "credit", 924),
    ]
    assert journal.total_debit == journal.total_credit == 19398
    assert {k: journal.totals[k] for k in ("G", "Gv", "F", "Fv", "R", "Rv")} == {
        "G": 19398,
        "Gv": 924,
        "F": 864,
        "Fv": 43,
        "R": 0,
        "Rv": 0,
    }


def test_negative_clearing_is_a_credit_line_at_the_end():
    journal = build_journal(
        events(
            ("sale", "c5", 2100),
            ("fee", "c5", 161),
            ("fee_vat", "c5", 8),
            ("refund", "c1", 2100, 2100),
            period_key="20261121",
        ),
        company_id="acme",
        period=P.next(),
        sales_vat_rate=VAT,
    )
    assert lines(journal) == [
        ("fees", "debit", 161),
        ("vat_recoverable", "debit", 8),
        ("refunds", "debit", 2000),
        ("vat_refunds", "debit", 100),
        ("sales", "credit", 2000),
        ("vat_payable", "credit", 100),
        ("clearing", "credit", 169),
    ]
    assert journal.totals["clearing"] == -169
    assert journal.total_debit == journal.total_credit == 2269


def test_zero_clearing_and_zero_lines_are_left_out():
    journal = build_journal(
        events(("sale", "a", 1000), ("refund", "a", 1000, 1000)),
        company_id="acme",
        period=P,
        sales_vat_rate=VAT,
    )
    assert "clearing" not in [c for c, _, _ in lines(journal)]
    assert all(amount > 0 for _, _, amount in lines(journal))
    assert journal.total_debit == journal.total_credit


def test_vat_is_rounded_per_event_not_on_the_sum():
    # 10 fils carries 0.476 fils of VAT: 0 per sale, though the sum of 20 fils would round to 1.
    journal = build_journal(
        events(("sale", "a", 10), ("sale", "b", 10)), company_id="acme", period=P, sales_vat_rate=VAT
    )
    assert journal.totals["Gv"] == 0
    assert lines(journal) == [("clearing", "debit", 20), ("sales", "credit", 20)]


@pytest.mark.parametrize("rate", [None, Decimal("0")], ids=["no-vat", "zero-rate"])
def test_company_without_sales_vat(rate):
    journal = build_journal(
        events(("sale", "a", 10500), ("refund", "a", 500, 500)),
        company_id="acme",
        period=P,
        sales_vat_rate=rate,
    )
    assert lines(journal) == [
        ("clearing", "debit", 10000),
        ("refunds", "debit", 500),
        ("sales", "credit", 10500),
    ]


def test_empty_period_has_no_lines():
    journal = build_journal(empty_events(), company_id="acme", period=P, sales_vat_rate=VAT)
    assert journal.is_empty and journal.lines == ()
    assert journal.total_debit == journal.total_credit == 0
    assert journal.totals["G"] == 0 and journal.totals["events"] == 0


def test_reference_narration_descriptions_and_date():
    week = Period(date(2026, 11, 16), Frequency.WEEKLY)
    journal = build_journal(
        events(("sale", "a", 2100), period_key="2026W47"), company_id="acme", period=week, sales_vat_rate=VAT
    )
    assert journal.reference == reference_for("acme", week) == "MAMO-acme-2026W47"
    assert journal.narration.startswith("MAMO-acme-2026W47 Mamo revenue 2026-W47")
    assert journal.journal_date == date(2026, 11, 22)
    assert [line.description for line in journal.lines] == [
        "Mamo clearing 2026-W47",
        "Sales 2026-W47",
        "VAT payable on sales 2026-W47",
    ]
    assert reference_for("acme", P) == "MAMO-acme-20261120"


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        pytest.param(events(("sale", "a", 100), period_key="20261121"), ValueError, id="other-period"),
        pytest.param(events(("sale", "a", 0)), ValueError, id="zero-amount"),
        pytest.param(events(("sale", "a", -5)), ValueError, id="negative-amount"),
        pytest.param(events(("bonus", "a", 5)), ValueError, id="unknown-kind"),
    ],
)
def test_build_journal_refuses_bad_events(frame, error):
    with pytest.raises(error):
        build_journal(frame, company_id="acme", period=P, sales_vat_rate=VAT)


def test_build_journal_refuses_float_amounts():
    frame = events(("sale", "a", 100))
    frame["amount_minor"] = frame["amount_minor"].astype(float)
    with pytest.raises(TypeError):
        build_journal(frame, company_id="acme", period=P, sales_vat_rate=VAT)


# --- lines and mapping ------------------------------------------------------------------------------------


def test_journal_line_is_one_side_and_an_int():
    line = JournalLine("sales", Side.CREDIT, 100, "Sales 2026-11-20")
    assert line.category is Category.SALES
    with pytest.raises(TypeError):
        JournalLine(Category.SALES, "credit", 100, "x")
    with pytest.raises(TypeError):
        JournalLine(Category.SALES, Side.CREDIT, 1.0, "x")
    with pytest.raises(ValueError):
        JournalLine("revenue", Side.CREDIT, 100, "x")


def test_categories_are_the_mapping_keys():
    assert [c.value for c in Category] == [
        "clearing",
        "sales",
        "refunds",
        "fees",
        "vat_payable",
        "vat_refunds",
        "vat_recoverable",
    ]
    assert dict(mapping_fallbacks) == {
        Category.VAT_REFUNDS: Category.VAT_PAYABLE,
        Category.VAT_RECOVERABLE: Category.VAT_PAYABLE,
        Category.REFUNDS: Category.SALES,
    }


SALES, VAT_ACC = MappedAccount("acc-200", "200", "Sales"), MappedAccount("acc-820", "820", "VAT")


@pytest.mark.parametrize(
    ("category", "mapping", "expected"),
    [
        pytest.param("sales", {"sales": SALES}, SALES, id="direct"),
        pytest.param("refunds", {"sales": SALES}, SALES, id="refunds-fall-back-to-sales"),
        pytest.param("vat_refunds", {"vat_payable": VAT_ACC}, VAT_ACC, id="vat-refunds-fall-back"),
        pytest.param("vat_recoverable", {"vat_payable": VAT_ACC}, VAT_ACC, id="vat-recoverable-fall-back"),
        pytest.param("refunds", {"refunds": VAT_ACC, "sales": SALES}, VAT_ACC, id="own-mapping-wins"),
        pytest.param("clearing", {"sales": SALES}, None, id="clearing-has-no-fallback"),
        pytest.param("fees", {}, None, id="unmapped"),
        pytest.param("sales", {"sales": ""}, None, id="empty-is-unmapped"),
        pytest.param(Category.VAT_REFUNDS, {"vat_payable": "acc-820"}, "acc-820", id="plain-string-mapping"),
    ],
)
def test_resolve_account(category, mapping, expected):
    assert resolve_account(category, mapping) == expected
