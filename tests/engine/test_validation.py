"""validate_journal: every rule checked, every problem reported at once, each naming company, period, line."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from mamo_revenue.errors import JournalValidationError
from mamo_revenue.events import events_frame
from mamo_revenue.hooks.ledger import LedgerAccount, LedgerSettings, Side
from mamo_revenue.journal import Category, Journal, JournalLine, MappedAccount, build_journal
from mamo_revenue.periods import Frequency, Period
from mamo_revenue.validation import Problem, raise_for_problems, validate_journal

P = Period(date(2026, 11, 21), Frequency.DAILY)
MAPPING = {
    "clearing": MappedAccount("id-clearing", "610", "Mamo clearing"),
    "sales": MappedAccount("id-sales", "200", "Sales"),
    "fees": MappedAccount("id-fees", "404", "Bank fees"),
    "vat_payable": MappedAccount("id-vat", "820", "VAT"),
}
ACCOUNTS = [
    LedgerAccount("id-clearing", "610", "Mamo clearing", "CURRENT", True),
    LedgerAccount("id-sales", "200", "Sales", "REVENUE", True),
    LedgerAccount("id-fees", "404", "Bank fees", "EXPENSE", True),
    LedgerAccount("id-vat", "820", "VAT", "CURRLIAB", True),
]
SETTINGS = LedgerSettings("Acme Trading LLC", "AED", date(2026, 10, 31))


def journal() -> Journal:
    """The worked example's day 2: all seven categories but one, clearing a credit."""
    rows = [
        ("sale", "c5", 2100, None),
        ("fee", "c5", 161, None),
        ("fee_vat", "c5", 8, None),
        ("refund", "c1", 2100, 2100),
    ]
    frame = events_frame(
        [r[0] for r in rows],
        [r[1] for r in rows],
        ["20261121"] * 4,
        [r[2] for r in rows],
        [r[3] for r in rows],
    )
    return build_journal(frame, company_id="acme", period=P, sales_vat_rate=Decimal("0.05"))


def check(j=None, *, mapping=MAPPING, accounts=ACCOUNTS, settings=SETTINGS, base="AED") -> list[Problem]:
    return validate_journal(
        j or journal(), mapping=mapping, accounts=accounts, settings=settings, base_currency=base
    )


def with_line(j: Journal, index: int, **changes) -> Journal:
    lines = list(j.lines)
    lines[index] = replace(lines[index], **changes)
    return replace(j, lines=tuple(lines))


def test_a_good_journal_passes_with_fallback_mappings():
    # refunds → sales, vat_refunds and vat_recoverable → vat_payable
    assert check() == []


def test_an_empty_journal_passes_nothing_is_posted():
    empty = replace(journal(), lines=())
    assert check(empty, mapping={}, accounts=[], settings=replace(SETTINGS, base_currency="USD")) == []


@pytest.mark.parametrize(
    ("make", "kwargs", "rule", "words"),
    [
        pytest.param(
            lambda j: with_line(j, 0, amount_minor=162),
            {},
            "balanced",
            ["debits 22.70", "credits 22.69"],
            id="unbalanced",
        ),
        pytest.param(
            lambda j: replace(j, lines=j.lines[:1]),
            {},
            "line_count",
            ["at least two lines"],
            id="single-line",
        ),
        pytest.param(
            lambda j: with_line(with_line(j, 0, amount_minor=0), 6, amount_minor=8),
            {},
            "line_amount",
            ["line 1 (fees debit 0.00)", "positive"],
            id="zero-line",
        ),
        pytest.param(
            lambda j: j,
            {"mapping": {k: v for k, v in MAPPING.items() if k != "fees"}},
            "mapped",
            ["line 1 (fees debit 1.61)", "'fees' is not mapped"],
            id="unmapped",
        ),
        pytest.param(
            lambda j: j,
            {"mapping": {k: v for k, v in MAPPING.items() if k != "vat_payable"}},
            "mapped",
            ["'vat_refunds'", "nor is its fallback 'vat_payable'"],
            id="unmapped-fallback",
        ),
        pytest.param(
            lambda j: j,
            {"accounts": ACCOUNTS[1:]},
            "account_known",
            ["line 7 (clearing credit 1.69)", "id-clearing (code 610) is not in the ledger's chart"],
            id="unknown-account",
        ),
        pytest.param(
            lambda j: j,
            {"accounts": [replace(ACCOUNTS[2], status="ARCHIVED"), *ACCOUNTS[:2], ACCOUNTS[3]]},
            "account_active",
            ["line 1 (fees debit 1.61)", "archived"],
            id="archived-account",
        ),
        pytest.param(
            lambda j: j,
            {"accounts": [replace(ACCOUNTS[2], status="DELETED"), *ACCOUNTS[:2], ACCOUNTS[3]]},
            "account_active",
            ["deleted"],
            id="deleted-account",
        ),
        pytest.param(
            lambda j: j,
            {"accounts": [replace(ACCOUNTS[2], active=False), *ACCOUNTS[:2], ACCOUNTS[3]]},
            "account_active",
            ["'Bank fees'"],
            id="inactive-account",
        ),
        pytest.param(
            lambda j: j,
            {"settings": replace(SETTINGS, lock_date=date(2026, 11, 21))},
            "lock_date",
            ["2026-11-21 is on or before", "lock date 2026-11-21"],
            id="dated-on-lock-date",
        ),
        pytest.param(
            lambda j: j,
            {"settings": replace(SETTINGS, lock_date=date(2026, 12, 31))},
            "lock_date",
            ["lock date 2026-12-31"],
            id="dated-before-lock-date",
        ),
        pytest.param(
            lambda j: j,
            {"base": "USD"},
            "base_currency",
            ["'Acme Trading LLC'", "AED", "USD"],
            id="base-currency",
        ),
    ],
)
def test_each_rule(make, kwargs, rule, words):
    problems = check(make(journal()), **kwargs)
    assert rule in [p.rule for p in problems]
    message = " ".join(p.message for p in problems if p.rule == rule)
    assert "company acme, period 2026-11-21" in message
    for word in words:
        assert word in message


def test_lock_date_the_day_before_is_fine():
    assert check(settings=replace(SETTINGS, lock_date=date(2026, 11, 20))) == []


def test_every_problem_is_reported_at_once():
    broken = with_line(journal(), 0, amount_minor=170)
    problems = check(
        broken,
        mapping={"sales": MAPPING["sales"]},
        accounts=[],
        settings=replace(SETTINGS, base_currency="USD", lock_date=date(2027, 1, 1)),
    )
    rules = {p.rule for p in problems}
    assert rules == {"balanced", "mapped", "account_known", "lock_date", "base_currency"}
    assert len([p for p in problems if p.rule == "mapped"]) == 5  # fees, vat ×3 lines, clearing


def test_checks_needing_the_ledger_are_skipped_in_a_dry_run():
    assert check(accounts=None, settings=None, base="USD") == []


def test_raise_for_problems():
    raise_for_problems(journal(), [])  # nothing to raise
    problems = check(base="USD", accounts=[])
    with pytest.raises(JournalValidationError) as caught:
        raise_for_problems(journal(), problems)
    assert caught.value.problems == problems
    assert caught.value.company == "acme" and caught.value.period == "2026-11-21"
    assert "[base_currency]" in str(caught.value) and "[account_known]" in str(caught.value)


def test_lines_built_by_hand_are_checked_too():
    hand = Journal(
        "acme",
        P,
        "MAMO-acme-20261121",
        "x",
        (
            JournalLine(Category.CLEARING, Side.DEBIT, -5, "Mamo clearing 2026-11-21"),
            JournalLine(Category.SALES, Side.CREDIT, -5, "Sales 2026-11-21"),
        ),
    )
    assert [p.rule for p in check(hand)] == ["line_amount", "line_amount"]
