"""The worked example of ACCOUNTING.md, from raw Mamo JSON to both journals, to the fils.

Day 1 (run for 2026-11-20) sees c1–c5 as the API serves them after midnight: c2 at 23:59:59 is
in the day, c5 at 00:00:01 the next day is not, c3 failed is ignored, c4 (USD) is converted with
Mamo's own settlement figures. Day 2 (run for 2026-11-21) sees c1 refunded by AED 21.00 and takes
c5; the refund is recognised on day 2, and nothing of day 1 is recorded again.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from mamo_revenue.charges import parse_charge
from mamo_revenue.events import charge_state_frame, charges_frame, derive_events, empty_events, event_keys
from mamo_revenue.hooks.ledger import LedgerAccount, LedgerSettings
from mamo_revenue.journal import Category, MappedAccount, build_journal
from mamo_revenue.money import format_minor
from mamo_revenue.periods import Period
from mamo_revenue.validation import validate_journal

GOLDEN = Path(__file__).parent / "golden" / "worked_example"
RUNS = [("2026-11-20", "charges_day1.json"), ("2026-11-21", "charges_day2.json")]


def run_days():
    """Each day's (period, new events, journal), with events recorded and periods closed in turn."""
    recorded, closed, results = empty_events(), set(), []
    for label, charges_file in RUNS:
        period = Period.parse(label)
        body = json.loads((GOLDEN / charges_file).read_text(), parse_float=Decimal)
        snapshots = charges_frame(parse_charge(raw, tz="Asia/Dubai") for raw in body["data"])
        new = derive_events(
            charge_state_frame(snapshots, recorded),
            period=period,
            base_currency="AED",
            closed_periods=closed,
            company="acme",
        )
        journal = build_journal(new, company_id="acme", period=period, sales_vat_rate=Decimal("0.05"))
        results.append((period, new, journal))
        recorded = pd.concat([f for f in (recorded, new) if len(f)] or [new], ignore_index=True)
        closed.add(period.key)
    return results


def as_golden(journal) -> dict:
    return {
        "company_id": journal.company_id,
        "period": journal.period.label,
        "reference": journal.reference,
        "journal_date": journal.journal_date.isoformat(),
        "lines": [
            {
                "category": line.category.value,
                "side": line.side.value,
                "amount": format_minor(line.amount_minor),
                "description": line.description,
            }
            for line in journal.lines
        ],
        "total_debit": format_minor(journal.total_debit),
        "total_credit": format_minor(journal.total_credit),
        "totals": {k: format_minor(journal.totals[k]) for k in ("G", "Gv", "F", "Fv", "R", "Rv")},
    }


@pytest.mark.parametrize("day", [0, 1], ids=["2026-11-20", "2026-11-21"])
def test_journal_matches_golden_file(day):
    period, _, journal = run_days()[day]
    expected = json.loads((GOLDEN / f"journal_{period.label}.json").read_text())
    assert as_golden(journal) == expected


def test_which_charges_each_day_takes():
    (_, day1, _), (_, day2, _) = run_days()
    assert sorted(event_keys(day1)) == sorted(
        f"{kind}:MPB-CHRG-C{n}00000000{n}" for kind in ("sale", "fee", "fee_vat") for n in (1, 2, 4)
    )
    assert sorted(event_keys(day2)) == [
        "fee:MPB-CHRG-C5000000005",
        "fee_vat:MPB-CHRG-C5000000005",
        "refund:MPB-CHRG-C1000000001:2100",
        "sale:MPB-CHRG-C5000000005",
    ]
    assert dict(zip(event_keys(day1), day1["amount_minor"], strict=True))["sale:MPB-CHRG-C4000000004"] == 3648


def test_golden_journals_pass_validation():
    mapping = {
        c.value: MappedAccount(f"id-{c.value}", None, c.value)
        for c in (Category.CLEARING, Category.SALES, Category.FEES, Category.VAT_PAYABLE)
    }
    accounts = [LedgerAccount(m.account_id, None, m.name, "X", True) for m in mapping.values()]
    settings = LedgerSettings("Acme", "AED", None)
    for _, _, journal in run_days():
        assert (
            validate_journal(
                journal, mapping=mapping, accounts=accounts, settings=settings, base_currency="AED"
            )
            == []
        )


def test_a_rerun_of_day_2_after_day_1_records_nothing_twice():
    (_, day1, _), (period2, day2, _) = run_days()
    body = json.loads((GOLDEN / "charges_day2.json").read_text(), parse_float=Decimal)
    snapshots = charges_frame(parse_charge(raw) for raw in body["data"])
    again = derive_events(
        charge_state_frame(snapshots, pd.concat([day1, day2], ignore_index=True)),
        period=period2,
        base_currency="AED",
        closed_periods={"20261120"},
        company="acme",
    )
    assert len(again) == 0
