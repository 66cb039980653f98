"""derive_events: new events only, each once, in the period that first may take them.

The engine's input is the charge state frame (snapshots joined with what is recorded); here it is
built in memory by ``charge_state_frame`` from the events earlier runs returned, the twin of the
SQL join that ``tests/db/test_db_snapshots.py`` checks against it.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from mamo_revenue import events as events_module
from mamo_revenue.charges import Charge, ChargeStatus
from mamo_revenue.errors import ChargeDataError, CurrencyPolicyError
from mamo_revenue.events import (
    CHARGE_STATE_COLUMNS,
    KIND_DTYPE,
    NEW_EVENT_COLUMNS,
    SNAPSHOT_COLUMNS,
    charge_state_frame,
    charges_frame,
    derive_events,
    empty_events,
    event_key,
    event_keys,
    events_frame,
    mul_div_half_up,
    typed_frame,
)
from mamo_revenue.money import div_round_half_up
from mamo_revenue.periods import Frequency, Period

P = Period(date(2026, 11, 20), Frequency.DAILY)
BEFORE = P.previous()
AFTER = P.next()


def charge(
    cid="c1",
    *,
    status=ChargeStatus.CAPTURED,
    at=datetime(2026, 11, 20, 9, 15),
    currency="AED",
    amount=10500,
    refund=0,
    settlement_currency="AED",
    settlement=10075,
    fee=405,
    fee_vat=20,
    fee_currency="AED",
    problems=(),
) -> Charge:
    return Charge(
        cid,
        status,
        at,
        currency,
        amount,
        refund,
        settlement_currency,
        settlement,
        None,
        fee_currency if fee is not None or fee_vat is not None else None,
        fee,
        fee_vat,
        tuple(problems),
    )


def state(charges, recorded=None) -> pd.DataFrame:
    return charge_state_frame(charges_frame(charges), empty_events() if recorded is None else recorded)


def derive(charges, recorded=None, *, period=P, closed=(), base="AED", company="acme"):
    return derive_events(
        state(charges, recorded),
        period=period,
        base_currency=base,
        closed_periods=set(closed),
        company=company,
    )


def table(events: pd.DataFrame) -> set[tuple[str, int]]:
    return set(zip(event_keys(events), events["amount_minor"].astype(int), strict=True))


def record(*frames) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)


# --- frames ---------------------------------------------------------------------------------------------


def test_charges_frame_has_the_contract_columns_and_dtypes():
    frame = charges_frame(
        [
            charge(),
            charge(
                "c2",
                fee=None,
                fee_vat=None,
                settlement=None,
                problems=[("amount", "bad"), ("status", "worse")],
            ),
        ]
    )
    assert tuple(frame.columns) == SNAPSHOT_COLUMNS
    assert str(frame["created_local"].dtype) == "datetime64[ns]"
    assert frame["amount_minor"].dtype == np.int64 and frame["refund_minor"].dtype == np.int64
    assert all(str(frame[c].dtype) == "Int64" for c in ("settlement_minor", "fee_minor", "fee_vat_minor"))
    assert frame["charge_id"].dtype == object
    text = ("status", "currency", "settlement_currency", "fee_currency", "problems")
    assert all(str(frame[c].dtype) == "category" for c in text)
    assert frame["fee_minor"].isna().tolist() == [False, True]
    assert frame["problems"].tolist() == ["", "amount: bad; status: worse"]
    assert frame["status"].tolist() == ["captured", "captured"]


def test_empty_inputs():
    assert tuple(charges_frame([]).columns) == SNAPSHOT_COLUMNS
    assert tuple(state([]).columns) == CHARGE_STATE_COLUMNS
    events = derive([])
    assert tuple(events.columns) == NEW_EVENT_COLUMNS and len(events) == 0


# --- sales, fees, fee VAT -------------------------------------------------------------------------------


def test_sale_fee_and_fee_vat_of_the_period():
    events = derive([charge()])
    assert table(events) == {("sale:c1", 10500), ("fee:c1", 405), ("fee_vat:c1", 20)}
    assert set(events["period_key"]) == {"20261120"}
    assert events["cumulative_refund_minor"].isna().all()
    assert tuple(events.columns) == NEW_EVENT_COLUMNS
    assert events["kind"].dtype == KIND_DTYPE and str(events["period_key"].dtype) == "category"
    assert events["charge_id"].dtype == object and events["amount_minor"].dtype == np.int64


@pytest.mark.parametrize(
    "status",
    [ChargeStatus.FAILED, ChargeStatus.PROCESSING, ChargeStatus.CONFIRMATION_REQUIRED, ChargeStatus.VOIDED],
)
def test_non_sale_statuses_are_not_revenue(status):
    assert len(derive([charge(status=status, settlement=None, fee=None, fee_vat=None)])) == 0


@pytest.mark.parametrize(
    ("at", "taken"),
    [
        pytest.param(datetime(2026, 11, 20, 0, 0, 0), True, id="first-second"),
        pytest.param(datetime(2026, 11, 20, 23, 59, 59), True, id="last-second"),
        pytest.param(datetime(2026, 11, 21, 0, 0, 1), False, id="next-day-00-00-01"),
        pytest.param(datetime(2026, 11, 19, 23, 59, 59), False, id="day-before-not-closed"),
    ],
)
def test_day_boundaries(at, taken):
    assert (len(derive([charge(at=at)])) > 0) is taken


def test_charge_after_period_is_never_taken():
    later = charge(at=datetime(2026, 11, 21, 0, 0, 1), refund=100)
    assert len(derive([later], closed=[])) == 0


def test_late_capture_of_a_closed_period_lands_in_the_period_synced():
    events = derive([charge(at=datetime(2026, 11, 19, 10, 0))], closed=[BEFORE.key])
    assert set(events["kind"]) == {"sale", "fee", "fee_vat"}
    assert set(events["period_key"]) == {P.key}


def test_charge_of_an_earlier_open_period_waits_for_its_own_run():
    assert len(derive([charge(at=datetime(2026, 11, 19, 10, 0))], closed=["20261118"])) == 0


def test_recorded_events_are_not_recorded_again():
    first = derive([charge()])
    assert len(derive([charge()], first, period=AFTER, closed=[P.key])) == 0


def test_fee_filled_later_is_recorded_in_the_period_synced():
    day1 = derive([charge(fee=None, fee_vat=None)])
    assert table(day1) == {("sale:c1", 10500)}
    day2 = derive([charge()], day1, period=AFTER, closed=[P.key])
    assert table(day2) == {("fee:c1", 405), ("fee_vat:c1", 20)}
    assert set(day2["period_key"]) == {AFTER.key}


def test_zero_fee_is_not_an_event():
    assert table(derive([charge(fee=0, fee_vat=0)])) == {("sale:c1", 10500)}


# --- currency -------------------------------------------------------------------------------------------


def test_foreign_charge_gross_from_settlement_fee_and_vat():
    c4 = charge("c4", currency="USD", amount=1000, settlement=3431, fee=207, fee_vat=10)
    assert table(derive([c4])) == {("sale:c4", 3648), ("fee:c4", 207), ("fee_vat:c4", 10)}


def test_foreign_charge_without_settlement_yet_is_deferred_not_an_error():
    c4 = charge("c4", currency="USD", amount=1000, settlement=None, fee=None, fee_vat=None)
    assert len(derive([c4])) == 0
    later = derive(
        [charge("c4", currency="USD", amount=1000, settlement=3431, fee=207, fee_vat=10)],
        period=AFTER,
        closed=[P.key],
    )
    assert ("sale:c4", 3648) in table(later)


def test_foreign_settlement_currency_fails_naming_every_charge():
    bad = [
        charge(
            "e1",
            currency="EUR",
            amount=1000,
            settlement_currency="EUR",
            settlement=900,
            fee=50,
            fee_vat=3,
            fee_currency="EUR",
        ),
        charge(
            "e2",
            currency="USD",
            amount=1000,
            settlement_currency="USD",
            settlement=900,
            fee=50,
            fee_vat=3,
            fee_currency="USD",
        ),
        charge("ok"),
    ]
    with pytest.raises(CurrencyPolicyError) as caught:
        derive(bad)
    message = str(caught.value)
    assert "e1" in message and "e2" in message and "acme" in message and "2026-11-20" in message
    assert "2 charge(s)" in message


def test_ledger_in_another_base_currency_fails():
    with pytest.raises(CurrencyPolicyError, match="USD"):
        derive([charge()], base="USD")


def test_fee_in_another_currency_fails():
    with pytest.raises(CurrencyPolicyError, match="c1"):
        derive([charge(fee_currency="USD")])


# --- refunds -------------------------------------------------------------------------------------------


def test_refund_increase_is_keyed_by_cumulative_and_recognised_when_first_seen():
    day1 = derive([charge()])
    day2 = derive([charge(refund=2100, status=ChargeStatus.REFUNDED)], day1, period=AFTER, closed=[P.key])
    assert table(day2) == {("refund:c1:2100", 2100)}
    assert day2["cumulative_refund_minor"].tolist() == [2100]
    assert day2["period_key"].tolist() == [AFTER.key]
    day3 = Period(date(2026, 11, 22), Frequency.DAILY)
    again = derive([charge(refund=2100)], record(day1, day2), period=day3, closed=[P.key, AFTER.key])
    assert len(again) == 0
    more = derive([charge(refund=5000)], record(day1, day2), period=day3, closed=[P.key, AFTER.key])
    assert table(more) == {("refund:c1:5000", 2900)}


def test_refund_of_a_sale_of_the_same_period():
    assert ("refund:c1:500", 500) in table(derive([charge(refund=500, status=ChargeStatus.REFUND_INITIATED)]))


def test_refund_on_an_earlier_open_period_is_recognised_now():
    # The sale waits for its own period's run; the refund is first seen now and never dated earlier.
    events = derive([charge(at=datetime(2026, 11, 19, 10, 0), refund=300)])
    assert table(events) == {("refund:c1:300", 300)}


def test_refund_on_a_later_charge_waits():
    assert len(derive([charge(at=datetime(2026, 11, 21, 8, 0), refund=300)])) == 0


def test_refund_on_a_foreign_charge_uses_its_own_rate():
    # gross 3648 fils for USD 10.00: USD 3.33 refunded → round_half_up(333 × 3648 / 1000) = 1215
    c4 = charge("c4", currency="USD", amount=1000, settlement=3431, fee=207, fee_vat=10, refund=333)
    assert ("refund:c4:333", div_round_half_up(333 * 3648, 1000)) in table(derive([c4]))


def test_foreign_refund_increments_add_up_to_the_converted_total():
    c = dict(currency="USD", amount=999, settlement=3431, fee=207, fee_vat=10)
    recorded, total = derive([charge("u", **c)]), 0
    periods = list(P.iter_until(Period(date(2026, 11, 24), Frequency.DAILY)))
    for step, (period, cumulative) in enumerate(zip(periods[1:], (1, 2, 500, 999), strict=True)):
        closed = {p.key for p in periods[: step + 1]}
        new = derive([charge("u", refund=cumulative, **c)], recorded, period=period, closed=closed)
        total += int(new["amount_minor"].sum())
        recorded = record(recorded, new)
    assert total == div_round_half_up(999 * 3648, 999)


def test_refund_going_down_is_a_data_error():
    recorded = record(derive([charge(refund=2100)]))
    with pytest.raises(ChargeDataError) as caught:
        derive([charge(refund=1000)], recorded, period=AFTER, closed=[P.key])
    assert (caught.value.charge_id, caught.value.field) == ("c1", "refund_amount")
    assert caught.value.company == "acme" and caught.value.period == "2026-11-21"


# --- bad data ---------------------------------------------------------------------------------------------


def test_bad_charge_of_the_period_fails_the_run_naming_charge_field_and_count():
    bad = [
        charge("b1", problems=[("amount", "33.99 was parsed as a float")]),
        charge("b2", problems=[("status", "unknown status 'x'")]),
        charge("ok"),
    ]
    with pytest.raises(ChargeDataError) as caught:
        derive(bad)
    error = caught.value
    assert (error.charge_id, error.field, error.company, error.period) == (
        "b1",
        "amount",
        "acme",
        "2026-11-20",
    )
    assert "1 more bad charge(s)" in str(error) and "b2" in str(error)


def test_bad_charge_of_another_period_is_skipped():
    events = derive(
        [charge("b1", at=datetime(2026, 11, 19, 10), problems=[("amount", "bad")]), charge("ok")],
        closed=[BEFORE.key],
    )
    assert set(events["charge_id"]) == {"ok"}


def test_bad_failed_charge_of_the_period_still_fails_it():
    with pytest.raises(ChargeDataError):
        derive([charge(status=ChargeStatus.FAILED, problems=[("settlement_date", "bad")])])


def test_duplicate_charge_ids_are_refused_by_the_in_memory_join():
    # The product DB's primary key makes them impossible there; the in-memory join still refuses them.
    with pytest.raises(ValueError, match="more than once"):
        derive([charge(), charge()])


def test_a_closed_period_is_never_derived_again():
    with pytest.raises(ValueError, match="closed"):
        derive([charge()], closed=[P.key])


def test_float_minor_units_are_refused():
    frame = state([charge()])
    frame["amount_minor"] = frame["amount_minor"].astype(float)
    with pytest.raises(TypeError, match="amount_minor"):
        derive_events(frame, period=P, base_currency="AED", closed_periods=set(), company="acme")


# --- weekly companies ---------------------------------------------------------------------------------------


def test_weekly_period_takes_monday_to_sunday_and_closed_weeks():
    week = Period(date(2026, 11, 16), Frequency.WEEKLY)
    charges = [
        charge("mon", at=datetime(2026, 11, 16, 0, 0, 0)),
        charge("sun", at=datetime(2026, 11, 22, 23, 59, 59)),
        charge("next-mon", at=datetime(2026, 11, 23, 0, 0, 0)),
        charge("late", at=datetime(2026, 11, 12, 9, 0, 0)),  # week 46, closed
    ]
    events = derive(charges, period=week, closed=["2026W46"])
    assert set(events["charge_id"]) == {"mon", "sun", "late"}
    assert set(events["period_key"]) == {"2026W47"}


# --- integer helper --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "den"),
    [
        pytest.param([0, 1, 5, 333, 10**6], [3648, 3648, 3648, 3648, 3648], [1000] * 5, id="rates"),
        pytest.param([10, 21, 10500], 1, 21, id="vat-fraction"),
        pytest.param([2**40, 7], [2**30, 5], [2**20 + 1, 3], id="overflow-falls-back-to-exact"),
    ],
)
def test_mul_div_half_up_matches_the_scalar_rule(a, b, den):
    got = mul_div_half_up(np.array(a), np.array(b), np.array(den))
    a_, b_, d_ = np.broadcast_arrays(
        np.array(a, dtype=object), np.array(b, dtype=object), np.array(den, dtype=object)
    )
    expected = [div_round_half_up(int(x) * int(y), int(z)) for x, y, z in zip(a_, b_, d_, strict=True)]
    assert got.dtype == np.int64 and got.tolist() == expected


def test_mul_div_half_up_refuses_negative_inputs():
    with pytest.raises(ValueError):
        mul_div_half_up(np.array([-1]), 1, 2)


# --- the charge state frame ------------------------------------------------------------------------------


def test_recorded_events_are_matched_on_non_ascii_ids():
    first = derive([charge("chargé")])
    assert len(derive([charge("chargé")], first, period=AFTER, closed=[P.key])) == 0


def test_refund_worth_zero_fils_waits_for_the_next_increase():
    # TRY 10.00 settled as AED 1.00 gross: 1 kuruş refunded is worth 0.1 fils, nothing to record yet.
    weak = dict(currency="TRY", amount=1000, settlement=90, fee=9, fee_vat=1)
    day1 = derive([charge("t", **weak)])
    assert len(derive([charge("t", refund=1, **weak)], day1, period=AFTER, closed=[P.key])) == 0
    later = derive([charge("t", refund=10, **weak)], day1, period=AFTER, closed=[P.key])
    assert table(later) == {("refund:t:10", 1)}


def test_recorded_needs_only_charge_kind_and_cumulative_columns():
    first = derive([charge(refund=100)])
    slim = first[["charge_id", "kind", "cumulative_refund_minor"]]
    assert len(derive([charge(refund=100)], slim, period=AFTER, closed=[P.key])) == 0


def test_charge_state_frame_joins_what_is_recorded_per_charge():
    snapshots = charges_frame([charge("c1"), charge("c2"), charge("c3"), charge("c4")])
    recorded = events_frame(
        ["sale", "fee", "refund", "refund", "fee_vat", "refund", "sale"],
        ["c1", "c1", "c1", "c1", "c2", "c3", "gone"],
        ["20261120"] * 7,
        [10500, 405, 100, 400, 20, 7, 1],
        [None, None, 500, 100, None, 7, None],
    )
    frame = charge_state_frame(snapshots, recorded)
    assert tuple(frame.columns) == CHARGE_STATE_COLUMNS
    assert frame[list(SNAPSHOT_COLUMNS)].equals(snapshots)
    assert frame[["sale_recorded", "fee_recorded", "fee_vat_recorded"]].to_numpy().tolist() == [
        [True, True, False],
        [False, False, True],
        [False, False, False],
        [False, False, False],
    ]
    assert frame["refund_recorded_minor"].tolist() == [500, 0, 7, 0]  # the largest cumulative, 0 when none
    assert all(frame[c].dtype == bool for c in ("sale_recorded", "fee_recorded", "fee_vat_recorded"))
    assert frame["refund_recorded_minor"].dtype == np.int64


def test_a_recorded_refund_without_cumulative_is_refused():
    recorded = events_frame(["refund"], ["c1"], ["20261120"], [100], [None])
    with pytest.raises(ValueError, match="cumulative_refund_minor"):
        state([charge()], recorded)


def test_derive_needs_the_recorded_state_columns():
    with pytest.raises(ValueError, match="refund_recorded_minor"):
        derive_events(
            charges_frame([charge()]), period=P, base_currency="AED", closed_periods=set(), company="acme"
        )


def test_object_text_columns_give_the_same_events_as_categories():
    charges = [
        charge("a"),
        charge("b", status=ChargeStatus.REFUNDED, refund=300, at=datetime(2026, 11, 19, 10)),
        charge("c", currency="USD", amount=1000, settlement=3431, fee=207, fee_vat=10, refund=333),
        charge("d", status=ChargeStatus.FAILED, settlement=None, fee=None, fee_vat=None),
    ]
    frame = state(charges, derive([charges[0]]).iloc[:1])
    plain = frame.astype({c: object for c in ("status", "currency", "settlement_currency", "fee_currency")})
    plain["problems"] = plain["problems"].astype(object)
    kwargs = dict(period=P, base_currency="AED", closed_periods={BEFORE.key}, company="acme")
    by_code, by_text = derive_events(frame, **kwargs), derive_events(plain, **kwargs)
    assert by_code.astype(object).equals(by_text.astype(object))
    assert sorted(event_keys(by_code)) == [
        "fee:a",
        "fee:b",
        "fee:c",
        "fee_vat:a",
        "fee_vat:b",
        "fee_vat:c",
        "refund:b:300",
        "refund:c:333",
        "sale:b",
        "sale:c",
    ]


def test_event_key_is_the_stores_key():
    assert event_key("sale", "c1") == "sale:c1"
    assert event_key("fee_vat", "c1") == "fee_vat:c1"
    assert event_key("refund", "c1", np.int64(2100)) == "refund:c1:2100"
    with pytest.raises(ValueError, match="cumulative"):
        event_key("refund", "c1")
    with pytest.raises(ValueError):
        event_key("bonus", "c1")


def test_typed_frame_refuses_floats_and_nulls_in_minor_units():
    with pytest.raises(TypeError, match="amount_minor"):
        typed_frame({"amount_minor": [105.5]}, {"amount_minor": "int64"})
    with pytest.raises(TypeError, match="amount_minor"):
        typed_frame({"amount_minor": [None]}, {"amount_minor": "int64"})
    with pytest.raises(TypeError, match="sale_recorded"):
        typed_frame({"sale_recorded": [2]}, {"sale_recorded": "bool"})
    flags = typed_frame({"sale_recorded": [0, 1]}, {"sale_recorded": "bool"})  # SQL's MAX(CASE …)
    assert flags["sale_recorded"].tolist() == [False, True]


def test_events_come_out_the_same_in_runs_of_any_size(monkeypatch):
    charges = [
        charge(f"c{i}", amount=1000 + i, refund=i % 3 * 100, fee=None if i % 4 == 0 else 405 + i)
        for i in range(23)
    ]
    whole = derive(charges)
    monkeypatch.setattr(events_module, "_RUN_ROWS", 2)
    in_runs = derive(charges)
    assert len(in_runs) == len(whole)
    assert table(in_runs) == table(whole)
    assert sorted(event_keys(in_runs)) == sorted(event_keys(whole))
    refunds = in_runs["kind"] == "refund"
    assert refunds.to_numpy()[-int(refunds.sum()) :].all()  # refunds come last


# --- refunds dated by Mamo's webhooks (refunds_as_of) -------------------------------------------------------

END = pd.Timestamp("2026-11-20 20:00", tz="UTC")  # 2026-11-21 00:00 in Dubai: the end of P


def announced(*rows) -> pd.DataFrame:
    """(charge id, cumulative refund minor, minutes after P's end; negative = before)."""
    return events_module.announcements_frame(
        {(cid, cumulative): (END + pd.Timedelta(minutes=minutes)).to_pydatetime() for cid, cumulative, minutes in rows})


def refunds_of(frame: pd.DataFrame) -> dict[str, int]:
    return dict(zip(frame["charge_id"], frame["refund_minor"].astype(int), strict=True))


def test_a_refund_announced_after_the_period_is_held_back_until_its_own_run():
    states = state([charge("c1", refund=2100), charge("c2", refund=500)])
    seen = events_module.refunds_as_of(states, announced(("c1", 2100, 30)), END)
    assert refunds_of(seen) == {"c1": 0, "c2": 500}, "c2 has no announcement: polling's rule"
    assert table(derive_events(seen, period=P, base_currency="AED", closed_periods=set(), company="acme")
                 .query("kind == 'refund'")) == {("refund:c2:500", 500)}
    assert refunds_of(states) == {"c1": 2100, "c2": 500}, "the input frame is not changed"
    # the next period's run, with the same announcement, records it once
    later = events_module.refunds_as_of(states, announced(("c1", 2100, 30)), END + pd.Timedelta(days=1))
    assert refunds_of(later)["c1"] == 2100


def test_partial_refunds_keep_the_part_announced_before_the_end():
    states = state([charge("c1", refund=3000)])
    seen = events_module.refunds_as_of(states, announced(("c1", 1000, -60), ("c1", 3000, 90)), END)
    assert refunds_of(seen) == {"c1": 1000}


def test_never_below_what_is_recorded_and_never_above_what_mamo_shows():
    recorded = record(events_frame(["refund"], ["c1"], [BEFORE.key], [1500], [1500]))
    states = state([charge("c1", refund=3000)], recorded)
    assert refunds_of(events_module.refunds_as_of(states, announced(("c1", 3000, 5)), END)) == {"c1": 1500}
    # Mamo's list does not show the later refund yet: nothing to hold back
    stale = state([charge("c1", refund=1500)], recorded)
    assert events_module.refunds_as_of(stale, announced(("c1", 3000, 5)), END) is stale


def test_announcements_all_before_the_end_change_nothing():
    states = state([charge("c1", refund=2100)])
    assert events_module.refunds_as_of(states, announced(("c1", 2100, -1)), END) is states
    assert events_module.refunds_as_of(states, events_module.announcements_frame({}), END) is states
