"""Charge snapshots (what Mamo said, upserted by id) and revenue events (append-only).

Snapshots: the latest state of every charge ever seen, so any period can be rebuilt and audited.
Events: each revenue fact recorded exactly once per ``(company_id, event_key)``; a second run
recording the same event inserts nothing (``ON CONFLICT DO NOTHING``), so concurrent or repeated
runs can never double-count. The code never updates or deletes an event.

Both bulk writes use the dialect's own ``INSERT … ON CONFLICT`` (PostgreSQL and SQLite), sent in
chunks through SQLAlchemy's batched executemany, sorted by key so concurrent writers take row
locks in the same order.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from mamo_revenue.charges import Charge
from mamo_revenue.db.models import ChargeSnapshot, EventKind, RevenueEvent, utcnow
from mamo_revenue.db.session import insert_for, reader
from mamo_revenue.events import (
    CHARGE_STATE_COLUMNS,
    EVENT_COLUMNS,
    SNAPSHOT_COLUMNS,
    SNAPSHOT_DTYPES,
    event_key,
    typed_frame,
)

CHUNK_ROWS = 5_000

#: The frames' columns and dtypes are defined once, in ``mamo_revenue.events`` (DESIGN.md).
RECORDED_FLAGS: tuple[tuple[str, EventKind], ...] = (
    ("sale_recorded", EventKind.SALE),
    ("fee_recorded", EventKind.FEE),
    ("fee_vat_recorded", EventKind.FEE_VAT),
)

Bind = Session | Connection | Engine


# --- helpers -----------------------------------------------------------------------------------------


def _chunks(rows: Sequence[dict], size: int = CHUNK_ROWS) -> Iterator[Sequence[dict]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


@contextmanager
def _reading(bind: Bind) -> Iterator[Session | Connection]:
    """Run reads on the caller's session/connection, or in a read-only transaction of an engine."""
    if isinstance(bind, Engine):
        with reader(bind).connect() as conn:
            yield conn
    else:
        yield bind


def raw_json(raw: Any) -> str | None:
    """JSON text of a charge as Mamo sent it: ``Decimal`` numbers are written exactly, never via float."""
    if raw is None:
        return None
    return _dump(raw)


def _dump(value: Any) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_dump(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _int_or_none(value: Any) -> int | None:
    """An integer count of minor units (or None); a float or a bool is a bug upstream, never rounded."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float | np.floating | bool | Decimal | str):
        raise TypeError(f"amount {value!r} is not an integer count of minor units")
    return int(value)


def problems_text(problems: Iterable[tuple[str, str]]) -> str:
    """``"field: problem; field: problem"``; empty when none."""
    return "; ".join(f"{field}: {problem}" for field, problem in problems)


# --- snapshots ---------------------------------------------------------------------------------------


def _snapshot_row(company_id: str, charge: Charge, seen_at: datetime) -> dict[str, Any]:
    return {
        "company_id": company_id,
        "charge_id": charge.id,
        "status": str(charge.status),
        "currency": charge.currency,
        "amount_minor": _int_or_none(charge.amount_minor),
        "refund_minor": _int_or_none(charge.refund_minor),
        "created_local": charge.created_local,
        "settlement_currency": charge.settlement_currency,
        "settlement_minor": _int_or_none(charge.settlement_minor),
        "settlement_date": charge.settlement_date,
        "fee_currency": charge.fee_currency,
        "fee_minor": _int_or_none(charge.fee_minor),
        "fee_vat_minor": _int_or_none(charge.fee_vat_minor),
        "problems": problems_text(charge.problems),
        "raw": raw_json(charge.raw),
        "first_seen_at": seen_at,
        "last_seen_at": seen_at,
    }


def upsert_snapshots(
    session: Session | Connection, company_id: str, charges: Iterable[Charge], seen_at: datetime
) -> int:
    """Store the latest state of each charge; returns how many distinct charges were written.

    Invariant: one row per (company, charge id) holding what Mamo said last; ``first_seen_at``
    is set once and never moves, ``last_seen_at`` becomes ``seen_at``. Idempotent: upserting the
    same charges again changes nothing but ``last_seen_at``. If a charge id appears twice in
    ``charges`` the last one wins.

    PostgreSQL (psycopg2) streams the rows with ``COPY`` into a temporary table and upserts them
    with one ``INSERT … SELECT … ON CONFLICT DO UPDATE``; other backends send batched
    ``INSERT … ON CONFLICT DO UPDATE`` statements. 100k charges take a few seconds either way.
    """
    if seen_at.tzinfo is None:
        raise ValueError("seen_at must be an aware datetime (UTC)")
    latest: dict[str, Charge] = {}
    for charge in charges:
        latest[charge.id] = charge
    if not latest:
        return 0
    ordered = [latest[charge_id] for charge_id in sorted(latest)]
    dialect = session.get_bind().dialect if isinstance(session, Session) else session.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg2":
        return _upsert_by_copy(session, company_id, ordered, seen_at)
    return _upsert_by_insert(session, company_id, ordered, seen_at)


_SNAPSHOT_TABLE = ChargeSnapshot.__table__
_WRITTEN_COLUMNS = tuple(c.name for c in _SNAPSHOT_TABLE.columns)
_UPDATED_COLUMNS = tuple(c for c in _WRITTEN_COLUMNS if c not in ("company_id", "charge_id", "first_seen_at"))


def _upsert_by_insert(
    session: Session | Connection, company_id: str, charges: list[Charge], seen_at: datetime
) -> int:
    insert = insert_for(session)(_SNAPSHOT_TABLE)
    # RETURNING is what lets SQLAlchemy batch an executemany of ON CONFLICT DO UPDATE into
    # multi-row VALUES statements ("insertmanyvalues"); without it a driver may get one row per
    # round trip (SQLAlchemy 2.1, sqlalchemy#13130).
    statement = insert.on_conflict_do_update(
        index_elements=["company_id", "charge_id"], set_={c: insert.excluded[c] for c in _UPDATED_COLUMNS}
    ).returning(_SNAPSHOT_TABLE.c.charge_id)
    written = 0
    for chunk in _chunks(charges):
        rows = [_snapshot_row(company_id, charge, seen_at) for charge in chunk]
        written += len(session.execute(statement, rows).all())
    return written


def _csv_field(value: Any) -> str:
    """One COPY CSV field: NULL is the unquoted empty string, every value is quoted."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        value = value.isoformat()
    return '"' + str(value).replace('"', '""') + '"'


def _upsert_by_copy(
    session: Session | Connection, company_id: str, charges: list[Charge], seen_at: datetime
) -> int:
    conn = session.connection() if isinstance(session, Session) else session
    temp = f"tmp_charge_snapshots_{uuid.uuid4().hex[:12]}"
    columns = ", ".join(_WRITTEN_COLUMNS)
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {temp} (LIKE charge_snapshots) ON COMMIT DROP")
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        for chunk in _chunks(charges, 20_000):
            buffer = io.StringIO()
            for charge in chunk:
                row = _snapshot_row(company_id, charge, seen_at)
                buffer.write(",".join(_csv_field(row[c]) for c in _WRITTEN_COLUMNS))
                buffer.write("\n")
            buffer.seek(0)
            cursor.copy_expert(f"COPY {temp} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)
    finally:
        cursor.close()
    updates = ", ".join(f"{c} = excluded.{c}" for c in _UPDATED_COLUMNS)
    written = conn.exec_driver_sql(
        f"INSERT INTO charge_snapshots ({columns}) SELECT {columns} FROM {temp} ORDER BY charge_id "
        f"ON CONFLICT (company_id, charge_id) DO UPDATE SET {updates}"
    ).rowcount
    conn.exec_driver_sql(f"DROP TABLE {temp}")
    return written


def load_snapshots_frame(
    bind: Bind,
    company_id: str,
    created_from: datetime | date | None = None,
    created_before: datetime | date | None = None,
) -> pd.DataFrame:
    """The company's charge snapshots as the DataFrame of DESIGN.md "Snapshots DataFrame".

    ``created_from`` (inclusive) and ``created_before`` (exclusive) bound ``created_local``, the
    wall-clock time in the company's zone. Rows are sorted by (created_local, charge_id). Dtypes
    are ``events.SNAPSHOT_DTYPES``: ``charge_id`` object, other text ``category`` (NaN when
    absent), ``amount_minor``/``refund_minor`` int64, settlement and fee amounts nullable Int64,
    ``created_local`` datetime64, ``problems`` "" when none.
    """
    table = ChargeSnapshot.__table__
    query = _bounded(
        sa.select(*(table.c[name] for name in SNAPSHOT_COLUMNS)), company_id, created_from, created_before
    )
    with _reading(bind) as conn:
        rows = conn.execute(query).all()
    return typed_frame(_columns(rows, SNAPSHOT_COLUMNS), SNAPSHOT_DTYPES)


def load_charge_state_frame(
    bind: Bind,
    company_id: str,
    created_from: datetime | date | None = None,
    created_before: datetime | date | None = None,
) -> pd.DataFrame:
    """Each snapshot of ``load_snapshots_frame`` joined, in SQL, with what is recorded for its charge.

    The input of ``events.derive_events`` (DESIGN.md "Snapshots DataFrame", the charge state
    frame): the snapshot columns, then ``sale_recorded``, ``fee_recorded``, ``fee_vat_recorded``
    (bool: an event of that kind is recorded for the charge) and ``refund_recorded_minor`` (int64:
    the largest cumulative refund recorded, 0 when none). One query: a LEFT JOIN of the bounded
    snapshots onto an aggregate of the company's ``revenue_events`` per charge id, on PostgreSQL
    and SQLite alike; it gives the same frame as ``events.charge_state_frame(snapshots, events)``.
    The snapshots' primary key (company, charge id) makes every charge appear once.
    """
    snapshots, events = ChargeSnapshot.__table__, RevenueEvent.__table__

    def has(kind: EventKind) -> sa.ColumnElement:
        return sa.func.max(sa.case((events.c.kind == kind.value, 1), else_=0))

    is_refund = events.c.kind == EventKind.REFUND.value
    recorded = (
        sa.select(
            events.c.charge_id,
            *(has(kind).label(name) for name, kind in RECORDED_FLAGS),
            sa.func.max(sa.case((is_refund, events.c.cumulative_refund_minor))).label(
                "refund_recorded_minor"
            ),
            sa.func.sum(
                sa.case((sa.and_(is_refund, events.c.cumulative_refund_minor.is_(None)), 1), else_=0)
            ).label("unkeyed_refunds"),
        )
        .where(events.c.company_id == company_id)
        .group_by(events.c.charge_id)
        .subquery("recorded")
    )
    query = _bounded(
        sa.select(
            *(snapshots.c[name] for name in SNAPSHOT_COLUMNS),
            *(sa.func.coalesce(recorded.c[name], 0).label(name) for name, _ in RECORDED_FLAGS),
            sa.func.coalesce(recorded.c.refund_recorded_minor, 0).label("refund_recorded_minor"),
            sa.func.coalesce(recorded.c.unkeyed_refunds, 0).label("unkeyed_refunds"),
        ).select_from(snapshots.outerjoin(recorded, recorded.c.charge_id == snapshots.c.charge_id)),
        company_id,
        created_from,
        created_before,
    )
    with _reading(bind) as conn:
        rows = conn.execute(query).all()
    data = _columns(rows, (*CHARGE_STATE_COLUMNS, "unkeyed_refunds"))
    if any(data["unkeyed_refunds"]):
        raise ValueError("a recorded refund event has no cumulative_refund_minor")
    return typed_frame(data)


def _bounded(
    query: sa.Select,
    company_id: str,
    created_from: datetime | date | None,
    created_before: datetime | date | None,
) -> sa.Select:
    """``query`` restricted to the company's snapshots within the bounds, by (created_local, charge_id)."""
    table = ChargeSnapshot.__table__
    query = query.where(table.c.company_id == company_id)
    if created_from is not None:
        query = query.where(table.c.created_local >= _as_datetime(created_from))
    if created_before is not None:
        query = query.where(table.c.created_local < _as_datetime(created_before))
    return query.order_by(table.c.created_local, table.c.charge_id)


def _columns(rows: Sequence[Sequence[Any]], names: Sequence[str]) -> dict[str, Sequence[Any]]:
    """Result rows as one sequence per column."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return dict(zip(names, columns, strict=True))


def _as_datetime(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise ValueError("created_local bounds are local wall-clock times: pass a naive datetime")
        return value
    return datetime.combine(value, time.min)


def _objects(values: Iterable[Any]) -> pd.Series:
    return pd.Series(list(values), dtype=object)


# --- events ------------------------------------------------------------------------------------------

_EVENT_KINDS = frozenset(k.value for k in EventKind)


def _event_rows(
    company_id: str, events: pd.DataFrame, run_id: str | None, recorded_at: datetime
) -> list[dict]:
    """The rows to insert, one per key (built here: ``events.event_key``), sorted by key.

    ``events`` is a new-events frame (``events.NEW_EVENT_COLUMNS``); an ``event_key`` column, if
    present, must hold the very keys built here.
    """
    missing = [c for c in ("kind", "charge_id", "period_key", "amount_minor") if c not in events.columns]
    if missing:
        raise ValueError(f"events frame lacks column(s) {', '.join(missing)}")
    for column in ("amount_minor", "cumulative_refund_minor"):
        if column in events.columns and events[column].dtype.kind == "f":
            raise TypeError(f"events column {column!r} is float; it must hold integer minor units")
    size = len(events)
    cumulative = (
        events["cumulative_refund_minor"].tolist()
        if "cumulative_refund_minor" in events.columns
        else [None] * size
    )
    given = events["event_key"].tolist() if "event_key" in events.columns else [None] * size
    rows: dict[str, dict] = {}
    for kind, charge_id, period_key, amount, total, given_key in zip(
        events["kind"].tolist(),
        events["charge_id"].tolist(),
        events["period_key"].tolist(),
        events["amount_minor"].tolist(),
        cumulative,
        given,
        strict=True,
    ):
        if kind not in _EVENT_KINDS:
            raise ValueError(
                f"event of charge {charge_id!r}: kind {kind!r} must be one of {', '.join(sorted(_EVENT_KINDS))}"
            )
        total = _int_or_none(total)
        key = event_key(kind, str(charge_id), total)
        if amount is None or amount is pd.NA:
            raise ValueError(f"event {key!r}: amount_minor is missing")
        if given_key is not None and given_key != key:
            raise ValueError(f"event {key!r}: its event_key column says {given_key!r}")
        rows.setdefault(
            key,
            {
                "company_id": company_id,
                "event_key": key,
                "kind": str(kind),
                "charge_id": str(charge_id),
                "period_key": str(period_key),
                "amount_minor": _int_or_none(amount),
                "cumulative_refund_minor": total,
                "recorded_at": recorded_at,
                "run_id": run_id,
            },
        )
    return [rows[key] for key in sorted(rows)]


def record_events(
    session: Session | Connection,
    company_id: str,
    events: pd.DataFrame,
    run_id: str | None,
    *,
    recorded_at: datetime | None = None,
) -> int:
    """Append the events not yet recorded; returns how many rows were inserted.

    ``events`` is what ``events.derive_events`` returns (no keys): the keys ``sale:<id>``,
    ``fee:<id>``, ``fee_vat:<id>`` and ``refund:<id>:<cumulative minor>`` are built here, for
    these rows only. A refund without ``cumulative_refund_minor`` is refused (``ValueError``).
    Invariant: at most one row per (company, event_key), whatever runs record concurrently; an
    event already recorded keeps its original period, amount and run (``ON CONFLICT DO NOTHING``).
    """
    if events is None or len(events) == 0:
        return 0
    rows = _event_rows(company_id, events, run_id, recorded_at or utcnow())
    statement = (
        insert_for(session)(RevenueEvent.__table__)
        .on_conflict_do_nothing(index_elements=["company_id", "event_key"])
        .returning(RevenueEvent.__table__.c.id)
    )
    inserted = 0
    for chunk in _chunks(rows):
        inserted += len(session.execute(statement, list(chunk)).all())
    return inserted


def _events_frame(bind: Bind, query: sa.Select) -> pd.DataFrame:
    with _reading(bind) as conn:
        rows = conn.execute(query).all()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(EVENT_COLUMNS)
    data = dict(zip(EVENT_COLUMNS, columns, strict=True))
    return pd.DataFrame(
        {
            "event_key": _objects(data["event_key"]),
            "kind": _objects(data["kind"]),
            "charge_id": _objects(data["charge_id"]),
            "period_key": _objects(data["period_key"]),
            "amount_minor": pd.Series(data["amount_minor"], dtype="int64"),
            "cumulative_refund_minor": pd.Series(data["cumulative_refund_minor"], dtype="Int64"),
        },
        columns=list(EVENT_COLUMNS),
    )


def _events_query(company_id: str) -> sa.Select:
    table = RevenueEvent.__table__
    return (
        sa.select(*(table.c[name] for name in EVENT_COLUMNS))
        .where(table.c.company_id == company_id)
        .order_by(table.c.id)
    )


def load_events_frame(bind: Bind, company_id: str) -> pd.DataFrame:
    """Every recorded event of the company (DESIGN.md "Events" columns), in recording order."""
    return _events_frame(bind, _events_query(company_id))


def events_for_period(bind: Bind, company_id: str, period_key: str) -> pd.DataFrame:
    """The company's events recognised in one period (DESIGN.md "Events" columns)."""
    return _events_frame(
        bind, _events_query(company_id).where(RevenueEvent.__table__.c.period_key == period_key)
    )
