"""Charge snapshots (upsert by id) and revenue events (append-only, unique keys)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from mamo_revenue.charges import ChargeStatus
from mamo_revenue.db.companies import upsert_company
from mamo_revenue.db.models import ChargeSnapshot, RevenueEvent
from mamo_revenue.db.session import session_scope
from mamo_revenue.db.snapshots import (
    EVENT_COLUMNS,
    SNAPSHOT_COLUMNS,
    events_for_period,
    load_charge_state_frame,
    load_events_frame,
    load_snapshots_frame,
    record_events,
    upsert_snapshots,
)
from mamo_revenue.events import (
    CHARGE_STATE_COLUMNS,
    NEW_EVENT_COLUMNS,
    charge_state_frame,
    derive_events,
    event_keys,
)
from mamo_revenue.periods import Frequency, Period

T0 = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
SNAPSHOT_DTYPES = {
    "charge_id": "object",
    "status": "category",
    "created_local": "datetime64[ns]",
    "currency": "category",
    "amount_minor": "int64",
    "refund_minor": "int64",
    "settlement_currency": "category",
    "settlement_minor": "Int64",
    "fee_minor": "Int64",
    "fee_vat_minor": "Int64",
    "fee_currency": "category",
    "problems": "category",
}
CHARGE_STATE_DTYPES = {
    **SNAPSHOT_DTYPES,
    "sale_recorded": "bool",
    "fee_recorded": "bool",
    "fee_vat_recorded": "bool",
    "refund_recorded_minor": "int64",
}
EVENT_DTYPES = {
    "event_key": "object",
    "kind": "object",
    "charge_id": "object",
    "period_key": "object",
    "amount_minor": "int64",
    "cumulative_refund_minor": "Int64",
}


def _snapshot_rows(engine, company):
    with session_scope(engine, read_only=True) as session:
        return {
            row.charge_id: row
            for row in session.scalars(sa.select(ChargeSnapshot).where(ChargeSnapshot.company_id == company))
        }


# --- snapshots -----------------------------------------------------------------------------------------


def test_upsert_is_idempotent_and_keeps_first_seen(engine, company, charge):
    batch = [charge("c1"), charge("c2", amount=5_250, fee=None, fee_vat=None, settlement=None)]
    with session_scope(engine) as session:
        assert upsert_snapshots(session, company, batch, T0) == 2
    later = T0 + timedelta(days=1)
    with session_scope(engine) as session:
        assert upsert_snapshots(session, company, batch, later) == 2

    rows = _snapshot_rows(engine, company)
    assert sorted(rows) == ["c1", "c2"]
    assert rows["c1"].first_seen_at == T0 and rows["c1"].last_seen_at == later
    assert rows["c2"].fee_minor is None and rows["c2"].amount_minor == 5_250


def test_upsert_takes_mamos_latest_state(engine, company, charge):
    with session_scope(engine) as session:
        upsert_snapshots(session, company, [charge("c1")], T0)
    refunded = charge(
        "c1", status=ChargeStatus.REFUNDED, refund=2_100, problems=(("settlement_date", "not a date"),)
    )
    with session_scope(engine) as session:
        # the same id twice in one batch: the last one wins (and PostgreSQL does not choke on it)
        assert upsert_snapshots(session, company, [charge("c1"), refunded], T0 + timedelta(hours=1)) == 1

    row = _snapshot_rows(engine, company)["c1"]
    assert (row.status, row.refund_minor, row.problems) == ("refunded", 2_100, "settlement_date: not a date")
    assert row.first_seen_at == T0


def test_raw_charge_is_kept_as_sent(engine, company, charge):
    raw = {
        "id": "c1",
        "amount": Decimal("105.00"),
        "fee": {"amount": Decimal("4.05")},
        "tags": ["a", None, True],
    }
    with session_scope(engine) as session:
        upsert_snapshots(session, company, [charge("c1", raw=raw)], T0)

    text = _snapshot_rows(engine, company)["c1"].raw
    assert '"amount": 105.00' in text  # the number as Mamo wrote it, never via float
    assert json.loads(text, parse_float=Decimal) == raw


def test_snapshots_frame_has_exactly_the_design_columns(engine, company, charge):
    with session_scope(engine) as session:
        upsert_snapshots(
            session,
            company,
            [
                charge(
                    "c2", created=datetime(2026, 11, 20, 23, 59, 59), fee=None, fee_vat=None, settlement=None
                ),
                charge("c1", problems=(("fee", "not money"), ("settlement_amount", "missing"))),
                charge("c0", created=datetime(2026, 11, 19, 23, 59, 59)),
            ],
            T0,
        )
    frame = load_snapshots_frame(engine, company, datetime(2026, 11, 20))

    assert tuple(frame.columns) == SNAPSHOT_COLUMNS
    assert {c: str(t) for c, t in frame.dtypes.items()} == SNAPSHOT_DTYPES
    assert list(frame["charge_id"]) == ["c1", "c2"]  # sorted by created_local; c0 is before the bound
    first, second = frame.iloc[0], frame.iloc[1]
    assert first["created_local"] == pd.Timestamp("2026-11-20 09:15:00")
    assert first["problems"] == "fee: not money; settlement_amount: missing"
    assert second["problems"] == ""
    assert second["fee_minor"] is pd.NA and pd.isna(second["settlement_currency"])
    assert first["amount_minor"] == 10_500 and first["fee_minor"] == 405


def test_empty_snapshots_frame_keeps_its_dtypes(engine, company):
    frame = load_snapshots_frame(engine, company, datetime(2026, 11, 20))
    assert frame.empty and tuple(frame.columns) == SNAPSHOT_COLUMNS
    assert {c: str(t) for c, t in frame.dtypes.items()} == SNAPSHOT_DTYPES


def test_snapshots_frame_upper_bound_and_session_bind(engine, company, charges):
    with session_scope(engine) as session:
        upsert_snapshots(session, company, charges(100), T0)  # 7 s apart from 2026-11-01 00:00
        frame = load_snapshots_frame(session, company, datetime(2026, 11, 1), datetime(2026, 11, 1, 0, 1))
    assert len(frame) == 9  # 0, 7, …, 56 seconds


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_copy_and_insert_paths_store_the_same_rows(engine, company, charge):
    """PostgreSQL writes through COPY; the portable INSERT … ON CONFLICT path must agree with it."""
    from mamo_revenue.db.snapshots import _upsert_by_copy, _upsert_by_insert

    awkward = {
        "id": "c1",
        "description": 'Order "42", size M,\nnote: 50% off \\ back-slash',
        "amount": Decimal("105.00"),
    }
    batch = [
        charge("c1", raw=awkward, problems=(("fee", 'bad "value", really'),)),
        charge("c2", fee=None, fee_vat=None, settlement=None, status=ChargeStatus.FAILED),
    ]
    with session_scope(engine) as session:
        assert _upsert_by_copy(session, company, batch, T0) == 2
    by_copy = {
        k: {c: getattr(v, c) for c in ChargeSnapshot.__table__.columns.keys()}
        for k, v in _snapshot_rows(engine, company).items()
    }
    with session_scope(engine) as session:
        session.execute(sa.delete(ChargeSnapshot))
        assert _upsert_by_insert(session, company, batch, T0) == 2
    by_insert = {
        k: {c: getattr(v, c) for c in ChargeSnapshot.__table__.columns.keys()}
        for k, v in _snapshot_rows(engine, company).items()
    }

    assert by_copy == by_insert
    assert json.loads(by_copy["c1"]["raw"], parse_float=Decimal) == awkward
    assert by_copy["c1"]["problems"] == 'fee: bad "value", really'
    assert by_copy["c2"]["fee_minor"] is None and by_copy["c2"]["problems"] == ""


def test_bulk_upsert_is_fast(engine, company, charges):
    """20k charges insert and then update in well under the 100k-in-seconds budget."""
    batch = charges(20_000)
    started = time.perf_counter()
    with session_scope(engine) as session:
        assert upsert_snapshots(session, company, batch, T0) == 20_000
    with session_scope(engine) as session:
        assert upsert_snapshots(session, company, batch, T0 + timedelta(hours=1)) == 20_000
    elapsed = time.perf_counter() - started
    frame = load_snapshots_frame(engine, company, datetime(2026, 11, 1))
    assert len(frame) == 20_000 and frame["amount_minor"].sum() == sum(c.amount_minor for c in batch)
    assert elapsed < 10, f"two upserts of 20k charges took {elapsed:.1f}s"


# --- events --------------------------------------------------------------------------------------------


def _events(*rows) -> pd.DataFrame:
    """New events as ``derive_events`` returns them: no ``event_key`` (``record_events`` builds it)."""
    frame = pd.DataFrame(rows, columns=list(NEW_EVENT_COLUMNS))
    frame["amount_minor"] = frame["amount_minor"].astype("int64")
    frame["cumulative_refund_minor"] = frame["cumulative_refund_minor"].astype("Int64")
    return frame


DAY_ONE = _events(
    ("c1", "sale", "20261120", 10_500, None),
    ("c1", "fee", "20261120", 405, None),
    ("c1", "fee_vat", "20261120", 20, None),
)
REFUND = _events(("c1", "refund", "20261121", 2_100, 2_100))


def test_recording_the_same_events_twice_inserts_nothing(engine, company):
    with session_scope(engine) as session:
        assert record_events(session, company, DAY_ONE, "run-1") == 3
    with session_scope(engine) as session:
        assert record_events(session, company, pd.concat([DAY_ONE, REFUND]), "run-2") == 1
    with session_scope(engine) as session:
        assert record_events(session, company, pd.concat([DAY_ONE, REFUND]), "run-3") == 0
    with session_scope(engine, read_only=True) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(RevenueEvent)) == 4


def test_record_events_builds_the_stores_keys(engine, company):
    with session_scope(engine) as session:
        assert record_events(session, company, pd.concat([DAY_ONE, REFUND]), "run-1") == 4
    with session_scope(engine, read_only=True) as session:
        stored = {
            e.event_key: (e.kind, e.charge_id, e.cumulative_refund_minor)
            for e in session.scalars(sa.select(RevenueEvent))
        }
    assert stored == {
        "sale:c1": ("sale", "c1", None),
        "fee:c1": ("fee", "c1", None),
        "fee_vat:c1": ("fee_vat", "c1", None),
        "refund:c1:2100": ("refund", "c1", 2_100),
    }
    # A frame that carries the very same keys (as the DB returns events) is accepted: nothing new.
    with session_scope(engine) as session:
        assert record_events(session, company, load_events_frame(engine, company), "run-2") == 0


def test_a_recorded_event_is_never_changed(engine, company):
    with session_scope(engine) as session:
        record_events(session, company, REFUND, "run-1")
    moved = REFUND.assign(period_key="20261125", amount_minor=np.int64(9_999))
    with session_scope(engine) as session:
        assert record_events(session, company, moved, "run-2") == 0
    with session_scope(engine, read_only=True) as session:
        event = session.scalars(sa.select(RevenueEvent)).one()
    assert (event.period_key, event.amount_minor, event.run_id) == ("20261121", 2_100, "run-1")


def test_events_frames(engine, company):
    with session_scope(engine) as session:
        record_events(session, company, pd.concat([DAY_ONE, REFUND]), "run-1")
        record_events(session, "acme", DAY_ONE.iloc[:0], "run-1")  # an empty frame is fine

    everything = load_events_frame(engine, company)
    assert tuple(everything.columns) == EVENT_COLUMNS
    assert {c: str(t) for c, t in everything.dtypes.items()} == EVENT_DTYPES
    assert len(everything) == 4

    refunds = events_for_period(engine, company, "20261121")
    assert refunds.to_dict("records") == [
        {
            "event_key": "refund:c1:2100",
            "kind": "refund",
            "charge_id": "c1",
            "period_key": "20261121",
            "amount_minor": 2_100,
            "cumulative_refund_minor": 2_100,
        }
    ]
    empty = events_for_period(engine, company, "20261122")
    assert empty.empty and {c: str(t) for c, t in empty.dtypes.items()} == EVENT_DTYPES


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (DAY_ONE.assign(amount_minor=DAY_ONE["amount_minor"].astype(float)), TypeError),
        (DAY_ONE.assign(kind="chargeback"), ValueError),
        (DAY_ONE.drop(columns=["period_key"]), ValueError),
        (DAY_ONE.assign(amount_minor=pd.array([1, None, 3], dtype="Int64")), ValueError),
        (REFUND.assign(cumulative_refund_minor=pd.array([None], dtype="Int64")), ValueError),
        (DAY_ONE.assign(event_key=["sale:c1", "fee:c1", "fee_vat:c2"]), ValueError),
    ],
    ids=[
        "float-amounts",
        "unknown-kind",
        "missing-column",
        "missing-amount",
        "refund-without-cumulative",
        "wrong-key",
    ],
)
def test_bad_event_frames_are_refused(engine, company, frame, error):
    with pytest.raises(error), session_scope(engine) as session:
        record_events(session, company, frame, "run-1")


def test_concurrent_runs_record_each_event_once(engine, company):
    events = _events(*((f"c{i}", "sale", "20261120", 100 + i, None) for i in range(300)))
    inserted: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run(run_id: str):
        try:
            barrier.wait(5)
            with session_scope(engine) as session:
                inserted.append(
                    record_events(session, company, events.sample(frac=1, random_state=len(run_id)), run_id)
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"run-{'x' * i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sum(inserted) == 300
    assert len(load_events_frame(engine, company)) == 300


# --- the charge state frame: the SQL join -------------------------------------------------------------

P = Period(datetime(2026, 11, 20).date(), Frequency.DAILY)
WINDOW = (datetime(2026, 11, 19), datetime(2026, 11, 22))


def _state_fixture(engine, company, charge):
    """Snapshots and events that exercise every branch of the join, for ``company`` and another one."""
    with session_scope(engine) as session:
        upsert_company(session, "other", name="Other LLC")
        upsert_snapshots(
            session,
            company,
            [
                charge("c0", created=datetime(2026, 11, 18, 23, 59, 59)),  # before the window
                charge("c1", status=ChargeStatus.REFUNDED, refund=1_200),
                charge("c2"),
                charge("c3", currency="USD", amount=1_000, fee=None, fee_vat=None, settlement=None),
                charge("c4", created=datetime(2026, 11, 21, 0, 0, 1)),
                charge("c5", problems=(("amount", "bad"),)),
                charge("c6", status=ChargeStatus.FAILED, fee=None, fee_vat=None, settlement=None),
                charge("chargé-7", created=datetime(2026, 11, 20, 10)),
            ],
            T0,
        )
        upsert_snapshots(session, "other", [charge("c4"), charge("c2")], T0)
        record_events(
            session,
            company,
            _events(
                ("c0", "sale", "20261118", 10_500, None),
                ("c1", "sale", "20261120", 10_500, None),
                ("c1", "fee", "20261120", 405, None),
                ("c1", "fee_vat", "20261120", 20, None),
                ("c1", "refund", "20261120", 500, 500),
                ("c1", "refund", "20261121", 700, 1_200),
                ("c2", "fee_vat", "20261120", 20, None),
                ("chargé-7", "sale", "20261120", 10_500, None),
                ("ghost", "refund", "20261120", 5, 5),  # no snapshot: ignored
            ),
            "run-1",
        )
        record_events(  # another company's events never leak into acme's state
            session,
            "other",
            _events(("c4", "sale", "20261121", 1, None), ("c2", "refund", "20261121", 9, 9_999)),
            "run-1",
        )


def test_sql_join_gives_the_charge_state_frame(engine, company, charge):
    _state_fixture(engine, company, charge)
    joined = load_charge_state_frame(engine, company, *WINDOW)

    assert tuple(joined.columns) == CHARGE_STATE_COLUMNS
    assert {c: str(t) for c, t in joined.dtypes.items()} == CHARGE_STATE_DTYPES
    state = joined.set_index("charge_id")[
        ["sale_recorded", "fee_recorded", "fee_vat_recorded", "refund_recorded_minor"]
    ]
    assert {k: tuple(v) for k, v in zip(state.index, state.itertuples(index=False), strict=True)} == {
        "c1": (True, True, True, 1_200),
        "c2": (False, False, True, 0),
        "c3": (False, False, False, 0),
        "c4": (False, False, False, 0),
        "c5": (False, False, False, 0),
        "c6": (False, False, False, 0),
        "chargé-7": (True, False, False, 0),
    }


@pytest.mark.parametrize(
    "bounds", [WINDOW, (None, None), (datetime(2026, 11, 20, 12), None)], ids=["window", "all", "from"]
)
def test_sql_join_and_in_memory_join_agree(engine, company, charge, bounds):
    _state_fixture(engine, company, charge)
    in_memory = charge_state_frame(
        load_snapshots_frame(engine, company, *bounds), load_events_frame(engine, company)
    )
    with session_scope(engine, read_only=True) as session:  # a session bind works too
        in_sql = load_charge_state_frame(session, company, *bounds)
    pd.testing.assert_frame_equal(in_sql, in_memory)


def test_empty_charge_state_frame_keeps_its_dtypes(engine, company):
    frame = load_charge_state_frame(engine, company)
    assert frame.empty and tuple(frame.columns) == CHARGE_STATE_COLUMNS
    assert {c: str(t) for c, t in frame.dtypes.items()} == CHARGE_STATE_DTYPES
    pd.testing.assert_frame_equal(
        frame, charge_state_frame(load_snapshots_frame(engine, company), load_events_frame(engine, company))
    )


def test_runs_through_the_db_post_each_refund_once(engine, company, charge):
    """derive on the SQL join, record, close: reruns and later periods record nothing twice."""
    day2 = P.next()

    def run(period, closed, charges):
        with session_scope(engine) as session:
            upsert_snapshots(session, company, charges, T0)
        new = derive_events(
            load_charge_state_frame(engine, company, datetime(2026, 11, 1)),
            period=period,
            base_currency="AED",
            closed_periods=closed,
            company=company,
        )
        with session_scope(engine) as session:
            assert record_events(session, company, new, f"run-{period.key}") == len(new)
        return sorted(event_keys(new))

    assert run(P, set(), [charge("c1", refund=500, status=ChargeStatus.REFUND_INITIATED)]) == [
        "fee:c1",
        "fee_vat:c1",
        "refund:c1:500",
        "sale:c1",
    ]
    assert run(P, set(), [charge("c1", refund=500)]) == []  # a rerun of the same period
    assert run(day2, {P.key}, [charge("c1", refund=2_100, status=ChargeStatus.REFUNDED)]) == [
        "refund:c1:2100"
    ]
    assert run(day2, {P.key}, [charge("c1", refund=2_100, status=ChargeStatus.REFUNDED)]) == []
    refunds = load_events_frame(engine, company).query("kind == 'refund'")
    assert refunds["amount_minor"].sum() == 2_100 and refunds["period_key"].tolist() == [
        "20261120",
        "20261121",
    ]
