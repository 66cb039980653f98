"""Properties over random charge histories and several daily runs (hypothesis).

Each example draws charges with random statuses, currencies, amounts, fees filled early or late,
refunds rising over several runs and timestamps on day boundaries; then runs every period in
order as the product does (derive, record, build, close). Whatever the history:

* every journal balances to the minor unit and has only positive lines;
* every sale, fee and fee VAT is posted exactly once, never before the charge's own period;
* per charge, the posted refund events add up to its final cumulative refund converted to base
  currency, each increase posted once, never before the sale's period;
* charges never captured post nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamo_revenue.charges import Charge, ChargeStatus
from mamo_revenue.events import charge_state_frame, charges_frame, derive_events, empty_events, event_keys
from mamo_revenue.journal import build_journal
from mamo_revenue.money import div_round_half_up
from mamo_revenue.periods import Frequency, Period

FIRST = date(2026, 11, 20)
TIMES = [time(0, 0, 0), time(0, 0, 1), time(12, 0, 0), time(23, 59, 59)]
NEVER = 10**6


@dataclass(frozen=True)
class History:
    """One charge over the runs: run r sees the state as of run r (runs are numbered by day)."""

    cid: str
    day: int
    at: time
    currency: str
    amount: int
    gross_aed: int  # for USD: settlement + fee + VAT once known
    fee: int
    fee_vat: int
    captured_from: int  # run from which the status shows a sale; NEVER: failed
    filled_from: int  # run from which settlement, fee and VAT are filled
    refunds: tuple[tuple[int, int], ...]  # (run, cumulative), both rising

    def state(self, run: int) -> Charge | None:
        if run < self.day - 1:  # not created yet (a run sees charges up to the next morning)
            return None
        captured = run >= self.captured_from
        refund = max([c for r, c in self.refunds if r <= run], default=0) if captured else 0
        if not captured:
            status = ChargeStatus.FAILED if self.captured_from == NEVER else ChargeStatus.PROCESSING
        else:
            status = ChargeStatus.REFUNDED if refund else ChargeStatus.CAPTURED
        filled = captured and run >= self.filled_from
        settlement = self.gross_aed - self.fee - self.fee_vat
        return Charge(
            self.cid,
            status,
            datetime.combine(FIRST + timedelta(days=self.day), self.at),
            self.currency,
            self.amount,
            refund,
            "AED" if filled else None,
            settlement if filled else None,
            None,
            "AED" if filled else None,
            self.fee if filled else None,
            self.fee_vat if filled else None,
        )


@st.composite
def histories(draw, runs: int):
    count = draw(st.integers(1, 10))
    result = []
    for i in range(count):
        day = draw(st.integers(0, runs - 2))
        currency = draw(st.sampled_from(["AED", "AED", "USD"]))
        amount = draw(st.integers(0, 200_000) if currency == "AED" else st.integers(1, 50_000))
        fee = draw(st.integers(0, 5_000))
        fee_vat = draw(st.integers(0, 250))
        if currency == "AED":
            gross = amount
        else:
            gross = draw(st.integers(fee + fee_vat, fee + fee_vat + 200_000))
        captured_from = draw(st.sampled_from([day - 1, day, day, day + 1, NEVER]))
        captured_from = min(captured_from, runs - 1) if captured_from != NEVER else NEVER
        filled_from = draw(st.integers(max(captured_from, 0), runs - 1)) if captured_from != NEVER else NEVER
        refunds: list[tuple[int, int]] = []
        if captured_from != NEVER and amount:
            steps = draw(st.lists(st.integers(1, amount), max_size=3, unique=True).map(sorted))
            run_from = max(captured_from, 0)
            run_steps = sorted(
                draw(st.lists(st.integers(run_from, runs - 1), min_size=len(steps), max_size=len(steps)))
            )
            refunds = list(zip(run_steps, steps, strict=True))
        result.append(
            History(
                f"ch{i}",
                day,
                draw(st.sampled_from(TIMES)),
                currency,
                amount,
                gross,
                fee,
                fee_vat,
                captured_from,
                filled_from,
                tuple(refunds),
            )
        )
    return result


def conv(history: History, cumulative: int) -> int:
    if history.currency == "AED":
        return cumulative
    return div_round_half_up(cumulative * history.gross_aed, history.amount)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), runs=st.integers(2, 5), vat=st.sampled_from([None, Decimal("0.05"), Decimal("0.15")]))
def test_every_amount_is_posted_exactly_once_and_journals_balance(data, runs, vat):
    charges = data.draw(histories(runs))
    recorded, closed = empty_events(), set()
    for run in range(runs):
        period = Period(FIRST + timedelta(days=run), Frequency.DAILY)
        seen = [s for s in (h.state(run) for h in charges) if s is not None]
        new = derive_events(
            charge_state_frame(charges_frame(seen), recorded),  # the shape the product DB's join returns
            period=period,
            base_currency="AED",
            closed_periods=closed,
            company="prop",
        )
        assert (new["period_key"] == period.key).all()
        assert (new["amount_minor"] > 0).all()
        assert not set(event_keys(new)) & set(event_keys(recorded))
        recorded = pd.concat([f for f in (recorded, new) if len(f)] or [new], ignore_index=True)
        journal = build_journal(new, company_id="prop", period=period, sales_vat_rate=vat)
        assert journal.total_debit == journal.total_credit
        assert all(line.amount_minor > 0 for line in journal.lines)
        assert journal.totals["clearing"] == (
            journal.totals["G"] - journal.totals["F"] - journal.totals["Fv"] - journal.totals["R"]
        )
        closed.add(period.key)

    keys = event_keys(recorded)
    assert len(set(keys)) == len(keys)
    recorded = recorded.astype({"kind": object, "period_key": object})
    by_charge = {cid: frame for cid, frame in recorded.groupby("charge_id")}
    for h in charges:
        events = by_charge.get(h.cid, recorded.iloc[:0])
        own_key = (FIRST + timedelta(days=h.day)).strftime("%Y%m%d")
        assert (events["period_key"] >= own_key).all(), "nothing is recognised before its sale's period"
        if h.captured_from == NEVER:
            assert events.empty
            continue
        amounts = {
            kind: events.loc[events["kind"] == kind, "amount_minor"].tolist()
            for kind in ("sale", "fee", "fee_vat", "refund")
        }
        assert amounts["sale"] == ([h.gross_aed] if h.gross_aed else [])
        assert amounts["fee"] == ([h.fee] if h.fee else [])
        assert amounts["fee_vat"] == ([h.fee_vat] if h.fee_vat else [])
        final_refund = max([c for _, c in h.refunds], default=0)
        assert sum(amounts["refund"]) == conv(h, final_refund)
