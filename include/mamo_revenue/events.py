"""Charge states → the revenue events a run for one period records (ACCOUNTING.md, "Events").

``derive_events`` is a pure function of one frame, the *charge state* frame: each charge as Mamo
shows it now joined with what is already recorded for it (sale, fee and fee VAT recorded or not,
the largest cumulative refund recorded). The product DB computes that join in SQL
(``db.snapshots.load_charge_state_frame``); ``charge_state_frame`` computes the same frame from
snapshots and recorded events in memory (tests, tools). Given the period being synced and the set
of periods already closed, it returns only NEW events, every one of them recognised in the period
being synced, so that:

* a sale, its fee and its fee VAT are recorded once per charge, in the charge's own period, or in
  the period being synced when the charge's own period is already closed (a posted journal is
  never changed);
* a refund is recorded once per (charge, cumulative refund), and the refund events of a charge add
  up to its cumulative refund converted to base currency;
* every amount is a positive count of base-currency minor units, computed in int64 (never floats).

New events carry no ``event_key``: ``event_key`` builds the append-only store's keys
(``sale:<id>``, ``fee:<id>``, ``fee_vat:<id>``, ``refund:<id>:<cumulative>``), and
``db.snapshots.record_events`` builds them only for the rows it inserts.

The choices the contract left open are written down in ``docs/POLICY_CHOICES.md`` ("Events").
Everything here is vectorised: no Python loop runs per charge, and no text is compared per row
(the loader hands low-cardinality text over as ``category`` columns, compared by code).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from mamo_revenue.charges import CAPTURED_STATUSES, Charge
from mamo_revenue.errors import ChargeDataError, CurrencyPolicyError
from mamo_revenue.money import format_minor
from mamo_revenue.periods import Frequency, Period


class EventKind(StrEnum):
    SALE = "sale"
    FEE = "fee"
    FEE_VAT = "fee_vat"
    REFUND = "refund"


#: The snapshots DataFrame: column → dtype (DESIGN.md, "Snapshots DataFrame"). Text other than the
#: charge id is ``category`` (null: NaN); minor units int64, nullable ``Int64`` where Mamo may
#: send null.
SNAPSHOT_DTYPES: Mapping[str, Any] = {
    "charge_id": object,
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
#: What is already recorded for each charge (DESIGN.md, "Snapshots DataFrame").
RECORDED_DTYPES: Mapping[str, Any] = {
    "sale_recorded": "bool",
    "fee_recorded": "bool",
    "fee_vat_recorded": "bool",
    "refund_recorded_minor": "int64",
}
#: The charge state frame, input of ``derive_events``: a snapshot row and its recorded state.
CHARGE_STATE_DTYPES: Mapping[str, Any] = {**SNAPSHOT_DTYPES, **RECORDED_DTYPES}
SNAPSHOT_COLUMNS = tuple(SNAPSHOT_DTYPES)
RECORDED_COLUMNS = tuple(RECORDED_DTYPES)
CHARGE_STATE_COLUMNS = tuple(CHARGE_STATE_DTYPES)
#: Events as the product DB stores and returns them (``revenue_events``).
EVENT_COLUMNS = ("event_key", "kind", "charge_id", "period_key", "amount_minor", "cumulative_refund_minor")
#: Events ``derive_events`` returns: not recorded yet, so without a key.
NEW_EVENT_COLUMNS = ("charge_id", "kind", "period_key", "amount_minor", "cumulative_refund_minor")
#: ``kind`` of new events: a category, codes in this order.
KIND_DTYPE = pd.CategoricalDtype([kind.value for kind in EventKind])

_NS_PER_DAY = 86_400 * 10**9
_EPOCH = date(1970, 1, 1)
_INT64_MAX = 2**63 - 1
#: More distinct days than this in one run's snapshots: look periods up per unique day instead.
_MAX_DAY_TABLE = 200_000
_SALE_STATUSES = tuple(sorted(str(status) for status in CAPTURED_STATUSES))
#: New events go out in runs of this many charges (see the end of ``derive_events``).
_RUN_ROWS = 16_384


# --- frames ------------------------------------------------------------------------------------------


def typed_frame(data: Mapping[str, Any], dtypes: Mapping[str, Any] = CHARGE_STATE_DTYPES) -> pd.DataFrame:
    """Columns (sequences of Python values, as a DB driver returns them, or arrays) → a frame of
    ``dtypes``: the one place the snapshot and charge state frames get their dtypes.

    Text columns become ``category`` (None → NaN), except ``charge_id`` (object) and ``problems``
    (None → ""); minor units int64 or nullable ``Int64`` (a float or, in int64, a null raises
    ``TypeError``); recorded flags bool (from booleans or 0/1).
    """
    columns: dict[str, Any] = {}
    for name, dtype in dtypes.items():
        values = data[name]
        if dtype is object:
            columns[name] = _objects(values)
        elif dtype == "category":
            categorical = pd.Categorical(_objects(values))
            if name == "problems" and (categorical.codes < 0).any():
                if "" not in categorical.categories:
                    categorical = categorical.add_categories([""])
                categorical = categorical.fillna("")
            columns[name] = categorical
        elif dtype == "datetime64[ns]":
            columns[name] = pd.Series(values, dtype="datetime64[ns]").array
        elif dtype == "Int64":
            columns[name] = pd.array(values, dtype="Int64")
        else:  # int64 (minor units) or bool (0/1 from SQL, or booleans): never a float, never a null
            array = np.asarray(values)
            if array.size and (
                array.dtype.kind not in ("iu" if dtype == "int64" else "iub")
                or (array.dtype.kind in "iu" and dtype == "bool" and (array.min() < 0 or array.max() > 1))
            ):
                raise TypeError(f"column {name} must hold {dtype} values, not {array.dtype}")
            columns[name] = array.astype(dtype, copy=False)
    return pd.DataFrame(columns, columns=list(dtypes), copy=False)


def charges_frame(charges: Iterable[Charge]) -> pd.DataFrame:
    """Parsed charges as the snapshots DataFrame (DESIGN.md, "Snapshots DataFrame").

    ``problems`` is ``"field: problem; …"``, empty when the charge is clean.
    """
    rows = [
        (c.id, str(c.status), c.created_local, c.currency, c.amount_minor, c.refund_minor, c.settlement_currency,
         c.settlement_minor, c.fee_minor, c.fee_vat_minor, c.fee_currency,
         "; ".join(f"{field}: {problem}" for field, problem in c.problems))
        for c in charges
    ]  # fmt: skip
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(SNAPSHOT_COLUMNS)
    return typed_frame(dict(zip(SNAPSHOT_COLUMNS, columns, strict=True)), SNAPSHOT_DTYPES)


def charge_state_frame(snapshots: pd.DataFrame, recorded: pd.DataFrame) -> pd.DataFrame:
    """Each snapshot row joined with what ``recorded`` (events) holds for its charge.

    The in-memory twin of ``db.snapshots.load_charge_state_frame`` (which joins in SQL): adds
    ``sale_recorded``, ``fee_recorded``, ``fee_vat_recorded`` (a recorded event of that kind) and
    ``refund_recorded_minor`` (the largest cumulative refund recorded, 0 when none). Of
    ``recorded`` only ``charge_id``, ``kind`` and ``cumulative_refund_minor`` are read; events of
    charges not in ``snapshots`` are ignored. Raises ``ValueError`` when a charge id appears twice
    in ``snapshots`` (the product DB keeps one snapshot per charge) or a matched refund event has
    no cumulative amount.
    """
    ids = pd.Index(snapshots["charge_id"].to_numpy(dtype=object), dtype=object)
    if not ids.is_unique:
        duplicated = ids[ids.duplicated()].unique()[:10].tolist()
        raise ValueError(f"snapshots hold a charge more than once: {duplicated}")
    size = len(ids)
    flags = {kind: np.zeros(size, dtype=bool) for kind in (EventKind.SALE, EventKind.FEE, EventKind.FEE_VAT)}
    previous = np.zeros(size, dtype=np.int64)
    if len(recorded):
        position = ids.get_indexer(pd.Index(recorded["charge_id"].to_numpy(dtype=object), dtype=object))
        kind = recorded["kind"].to_numpy(dtype=object)
        seen = position >= 0
        for event_kind, done in flags.items():
            done[position[seen & (kind == event_kind.value)]] = True
        refunds = np.flatnonzero(seen & (kind == EventKind.REFUND.value))
        if refunds.size:
            cumulative, known = _ints(recorded["cumulative_refund_minor"], "cumulative_refund_minor", refunds)
            if not known.all():
                raise ValueError("a recorded refund event has no cumulative_refund_minor")
            np.maximum.at(previous, position[refunds], cumulative)
    frame = snapshots.loc[:, list(SNAPSHOT_COLUMNS)].reset_index(drop=True)
    frame["sale_recorded"] = flags[EventKind.SALE]
    frame["fee_recorded"] = flags[EventKind.FEE]
    frame["fee_vat_recorded"] = flags[EventKind.FEE_VAT]
    frame["refund_recorded_minor"] = previous
    return frame


#: Refund announcements (Mamo webhooks): when Mamo first announced each (charge, cumulative refund).
ANNOUNCEMENT_COLUMNS = ("charge_id", "cumulative_refund_minor", "received_at")


def refunds_as_of(charges: pd.DataFrame, announcements: pd.DataFrame, cutoff) -> pd.DataFrame:
    """``charges`` with each refund Mamo announced at or after ``cutoff`` held back.

    A run for period P reads every charge as Mamo shows it *now*, which is after P ended: polling
    alone would put a refund made at 01:00 the next day (or, in a backfill, months later) into P.
    A webhook says when a refund happened. For a charge with an announcement received at or after
    ``cutoff`` (P's end, UTC) whose cumulative the charge already shows, the cumulative refund this
    run may record is capped at the largest one announced before ``cutoff`` (never below what is
    already recorded): the later refund waits for the run of its own period, so it is dated when it
    happened and still recorded exactly once. Charges without announcements keep polling's rule
    (the run that first sees a refund records it). ``announcements`` has ``ANNOUNCEMENT_COLUMNS``,
    ``received_at`` timezone-aware; returns ``charges`` itself when nothing is held back, else a copy.
    """
    if len(charges) == 0 or len(announcements) == 0:
        return charges
    received = pd.to_datetime(announcements["received_at"], utc=True)
    cutoff = pd.Timestamp(cutoff)
    cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
    cumulative = announcements["cumulative_refund_minor"].astype("int64").to_numpy()
    ids = announcements["charge_id"].to_numpy(dtype=object)
    late = (received >= cutoff).to_numpy()
    if not late.any():
        return charges
    first_late = pd.Series(cumulative[late], dtype="Int64").groupby(ids[late]).min()  # Int64: reindex keeps ints
    last_early = pd.Series(cumulative[~late], dtype="Int64").groupby(ids[~late]).max()
    index = pd.Index(charges["charge_id"].to_numpy(dtype=object), dtype=object)
    late_min = first_late.reindex(index).fillna(_INT64_MAX).to_numpy(dtype="int64")  # max: no late announcement
    early_max = last_early.reindex(index).fillna(0).to_numpy(dtype="int64")
    refund = charges["refund_minor"].to_numpy(dtype="int64")
    held = refund >= late_min
    if not held.any():
        return charges
    recorded = charges["refund_recorded_minor"].to_numpy(dtype="int64")
    capped = np.minimum(refund, np.maximum(recorded, early_max))
    out = charges.copy()
    out["refund_minor"] = np.where(held, capped, refund)
    return out


def announcements_frame(announced: Mapping[tuple[str, int], Any]) -> pd.DataFrame:
    """``{(charge id, cumulative refund minor): first received}`` → an ``ANNOUNCEMENT_COLUMNS`` frame."""
    rows = [(charge_id, int(cumulative), when) for (charge_id, cumulative), when in announced.items()]
    columns = list(zip(*rows, strict=True)) if rows else [(), (), ()]
    return pd.DataFrame({
        "charge_id": pd.array(columns[0], dtype=object),
        "cumulative_refund_minor": np.asarray(columns[1], dtype="int64"),
        "received_at": pd.to_datetime(list(columns[2]), utc=True),
    })


def event_key(kind: str, charge_id: str, cumulative_refund_minor: int | None = None) -> str:
    """The append-only store's key: ``sale:<id>``, ``fee:<id>``, ``fee_vat:<id>``,
    ``refund:<id>:<cumulative minor units>``."""
    kind = EventKind(kind)
    if kind is EventKind.REFUND:
        if cumulative_refund_minor is None or cumulative_refund_minor is pd.NA:
            raise ValueError(f"refund event of charge {charge_id!r} has no cumulative_refund_minor")
        return f"refund:{charge_id}:{int(cumulative_refund_minor)}"
    return f"{kind.value}:{charge_id}"


def event_keys(events: pd.DataFrame) -> list[str]:
    """``event_key`` of every row of an events frame (one Python call per row: not for hot paths)."""
    cumulative = (
        events["cumulative_refund_minor"].tolist()
        if "cumulative_refund_minor" in events.columns
        else [None] * len(events)
    )
    return [
        event_key(kind, charge_id, value)
        for kind, charge_id, value in zip(events["kind"], events["charge_id"], cumulative, strict=True)
    ]


def events_frame(kind, charge_id, period_key, amount_minor, cumulative_refund_minor=None) -> pd.DataFrame:
    """A new-events DataFrame (``NEW_EVENT_COLUMNS``) from arrays or lists, all of one length.

    Text columns are object here (any kind is accepted; ``build_journal`` refuses unknown ones).
    ``cumulative_refund_minor`` is None (all null) or a sequence with None/NA for non-refunds.
    Amounts must be integers: a float is refused, never truncated.
    """
    amount = np.asarray(amount_minor)
    if amount.size and amount.dtype.kind not in "iu":
        raise TypeError(f"amount_minor must be integer minor units, not {amount.dtype}")
    amount = amount.astype(np.int64)
    if cumulative_refund_minor is None:
        cumulative = pd.arrays.IntegerArray(
            np.zeros(amount.size, dtype=np.int64), np.ones(amount.size, dtype=bool)
        )
    else:
        cumulative = pd.array(cumulative_refund_minor, dtype="Int64")
    return pd.DataFrame(
        {
            "charge_id": _objects(charge_id),
            "kind": _objects(kind),
            "period_key": _objects(period_key),
            "amount_minor": amount,
            "cumulative_refund_minor": cumulative,
        }
    )


def empty_events(period_key: str | None = None) -> pd.DataFrame:
    """No new events, with the dtypes ``derive_events`` returns."""
    none = np.zeros(0, dtype=np.int64)
    return _new_events(period_key, np.zeros(0, dtype=object), none.astype(np.int8), none, none)


def _objects(values) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values
    if isinstance(values, pd.Series | pd.Index | pd.api.extensions.ExtensionArray):
        return np.asarray(values.astype(object))
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


def text_in(column: pd.Series, values: Iterable[str]) -> np.ndarray:
    """Per row, whether a text column holds one of ``values`` (a null never does).

    A ``category`` column is compared once per category and then by integer code; an object
    column row by row.
    """
    wanted = [str(value) for value in values]
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        hits = np.flatnonzero(column.cat.categories.isin(wanted)).tolist()  # Python ints: int8 stays int8
        mask = codes == hits[0] if hits else np.zeros(codes.size, dtype=bool)
        for code in hits[1:]:
            mask |= codes == code
        return mask
    return column.isin(wanted).to_numpy(dtype=bool)


def _non_empty(column: pd.Series) -> np.ndarray:
    """Per row, whether a text column holds a non-empty text ("" and nulls do not)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        mask = codes >= 0
        for code in np.flatnonzero(column.cat.categories == "").tolist():
            mask &= codes != code
        return mask
    return column.to_numpy(dtype=object).astype(bool)


def _texts(column: pd.Series, rows: np.ndarray) -> list[str | None]:
    """The text of a few rows, None where null (for error messages)."""
    return [None if pd.isna(value) else str(value) for value in column.iloc[rows].tolist()]


# --- integer helpers -------------------------------------------------------------------------------


def mul_div_half_up(a: np.ndarray, b, denominator) -> np.ndarray:
    """round_half_up(a × b / denominator) element-wise, exactly, for a, b ≥ 0 and denominator > 0.

    The vector form of ``money.div_round_half_up(a * b, denominator)``. int64 throughout; when
    ``2·a·b + denominator`` could overflow int64 it falls back to Python integers, so the result
    is exact for any input.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    den = np.asarray(denominator, dtype=np.int64)
    if a.size == 0:
        return np.zeros(np.broadcast(a, b, den).shape, dtype=np.int64)
    if a.min() < 0 or b.min() < 0 or den.min() <= 0:
        raise ValueError("mul_div_half_up needs a, b ≥ 0 and a positive denominator")
    if 2 * int(a.max()) * int(b.max()) + int(den.max()) <= _INT64_MAX:
        return (2 * a * b + den) // (2 * den)
    exact = (2 * a.astype(object) * b.astype(object) + den.astype(object)) // (2 * den.astype(object))
    if max(exact.flat) > _INT64_MAX:
        raise OverflowError("an amount does not fit in int64 minor units")
    return exact.astype(np.int64)


def _ints(column: pd.Series, name: str, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values with nulls as 0, known mask) of an integer column, at ``rows`` (all when None).

    Floats are refused, not rounded: a float in a minor-units column is a defect upstream.
    """
    dtype = column.dtype
    if not (pd.api.types.is_integer_dtype(dtype) or (len(column) == 0)):
        raise TypeError(f"column {name} must hold integer minor units, not {dtype}")
    if isinstance(dtype, pd.api.extensions.ExtensionDtype):
        array = column.array
        if rows is not None:
            array = array.take(rows)
        known = ~np.asarray(array.isna())
        values = array.to_numpy(dtype=np.int64, na_value=0)
        return values, known
    values = column.to_numpy(dtype=np.int64)
    if rows is not None:
        values = values[rows]
    return values, np.ones(values.size, dtype=bool)


def _flags(column: pd.Series, name: str) -> np.ndarray:
    """A recorded-state flag column; it must be boolean, without nulls."""
    if not pd.api.types.is_bool_dtype(column.dtype):
        raise TypeError(f"column {name} must be boolean, not {column.dtype}")
    if column.hasnans:
        raise ValueError(f"column {name} has nulls")
    return column.to_numpy(dtype=bool)


def _local_ns(column: pd.Series) -> np.ndarray:
    values = column.to_numpy(dtype="datetime64[ns]")
    if np.isnat(values).any():
        raise ValueError("created_local has nulls: every snapshot needs a parsed created_date")
    return values.view(np.int64)


# --- derivation ------------------------------------------------------------------------------------


def derive_events(
    charges: pd.DataFrame,
    *,
    period: Period,
    base_currency: str,
    closed_periods: set[str],
    company: str,
) -> pd.DataFrame:
    """The events a run for ``period`` records now, given each charge's state (``CHARGE_STATE_COLUMNS``).

    ``charges`` holds one row per charge (the snapshots' primary key guarantees it; not re-checked
    here) with what is already recorded for it, as ``load_charge_state_frame`` or
    ``charge_state_frame`` build it. ``closed_periods`` holds the keys of the periods whose run has
    finished (posted or nothing to post): their journals never change, so late data of those
    periods lands in ``period``. Raises ``ChargeDataError`` when a charge of ``period`` is
    malformed or a cumulative refund went down, and ``CurrencyPolicyError`` (naming every offending
    charge) when an amount to be recorded cannot be expressed in ``base_currency``. On error
    nothing is returned.

    Returns ``NEW_EVENT_COLUMNS``: ``charge_id`` object, ``kind`` category (``KIND_DTYPE``),
    ``period_key`` category, ``amount_minor`` int64, ``cumulative_refund_minor`` Int64 (refunds only).
    """
    label = period.label
    if period.key in closed_periods:
        raise ValueError(f"company {company}, period {label} is closed: a posted journal never changes")
    missing = [name for name in CHARGE_STATE_COLUMNS if name not in charges.columns]
    if missing:
        raise ValueError(
            f"the charge state frame lacks {', '.join(missing)}: build it with "
            "db.snapshots.load_charge_state_frame or events.charge_state_frame"
        )
    if len(charges) == 0:
        return empty_events(period.key)
    base = base_currency.upper()
    created = _local_ns(charges["created_local"])
    start = _ns(period.first_day)
    in_period = (created >= start) & (created < _ns(period.end_day))
    before = created < start

    has_problem = _non_empty(charges["problems"])
    _raise_for_bad_charges(charges, in_period & has_problem, company=company, label=label)

    # Own period ≤ P, clean, with a sale status: the only charges that can produce events. Every
    # array below is one value per row of ``charges`` (no gathers); ``live`` masks the rest out.
    live = text_in(charges["status"], _SALE_STATUSES) & ~has_problem & (in_period | before)
    if not live.any():
        return empty_events(period.key)
    takes_once = live & in_period  # sale, fee and fee VAT: the own period, or a closed earlier one
    late = np.flatnonzero(live & before)
    if late.size:
        takes_once[late] = _closed_days(created[late] // _NS_PER_DAY, period, closed_periods)

    amount, _ = _ints(charges["amount_minor"], "amount_minor")
    refund, _ = _ints(charges["refund_minor"], "refund_minor")
    settlement, settlement_known = _ints(charges["settlement_minor"], "settlement_minor")
    fee, fee_known = _ints(charges["fee_minor"], "fee_minor")
    fee_vat, fee_vat_known = _ints(charges["fee_vat_minor"], "fee_vat_minor")
    in_base = text_in(charges["currency"], [base])
    gross_known = in_base | (settlement_known & fee_known & fee_vat_known)
    gross = np.where(in_base, amount, settlement + fee + fee_vat)

    previous, known = _ints(charges["refund_recorded_minor"], "refund_recorded_minor")
    if not known.all():
        raise ValueError("refund_recorded_minor has nulls: 0 means no refund recorded")
    _raise_if_refunds_went_down(
        charges, live & (refund < previous), refund, previous, company=company, label=label
    )

    new_sale = takes_once & gross_known & (gross > 0) & ~_flags(charges["sale_recorded"], "sale_recorded")
    new_fee = takes_once & fee_known & (fee > 0) & ~_flags(charges["fee_recorded"], "fee_recorded")
    new_fee_vat = (
        takes_once & fee_vat_known & (fee_vat > 0) & ~_flags(charges["fee_vat_recorded"], "fee_vat_recorded")
    )
    rising = live & gross_known & (refund > previous)
    foreign_gross, new_fees = (new_sale | rising) & ~in_base, new_fee | new_fee_vat
    _check_currencies(charges, foreign_gross, new_fees, base, company=company, label=label)

    rising = np.flatnonzero(rising)
    increase = _refund_increase(
        refund[rising], previous[rising], gross[rising], amount[rising], in_base[rising]
    )
    worth = increase > 0  # an increase worth 0 fils waits for the next one
    new_refund = rising[worth]
    # Sales, fees and fee VAT go out in runs of charges (``_RUN_ROWS``), each run's three kinds
    # together, so the charge-id objects a run references are still in cache when the second and
    # third kind take them; the refunds come last. Kind codes follow ``KIND_DTYPE``.
    once = [np.flatnonzero(mask) for mask in (new_sale, new_fee, new_fee_vat)]
    values = [gross[once[0]], fee[once[1]], fee_vat[once[2]]]
    edges = np.arange(0, len(charges) + _RUN_ROWS, _RUN_ROWS)
    bounds = [np.searchsorted(rows, edges).tolist() for rows in once]
    runs = [(kind, bounds[kind][i], bounds[kind][i + 1]) for i in range(edges.size - 1) for kind in range(3)]
    rows = np.concatenate([once[kind][start:end] for kind, start, end in runs] + [new_refund])
    amounts = np.concatenate([values[kind][start:end] for kind, start, end in runs] + [increase[worth]])
    kinds = np.repeat(
        np.array([kind for kind, _, _ in runs] + [3], dtype=np.int8),
        [end - start for _, start, end in runs] + [new_refund.size],
    )
    charge_ids = charges["charge_id"].to_numpy(dtype=object)[rows]
    return _new_events(period.key, charge_ids, kinds, amounts, refund[new_refund])


def _raise_if_refunds_went_down(charges, went_down, refund, previous, *, company: str, label: str) -> None:
    """A cumulative refund below one already recorded (rows ``went_down``) needs an accountant."""
    rows = np.flatnonzero(went_down)
    if rows.size:
        first = rows[0]
        more = f" ({rows.size - 1} more charge(s) alike)" if rows.size > 1 else ""
        raise ChargeDataError(
            str(charges["charge_id"].iloc[first]),
            "refund_amount",
            f"cumulative refund went down from {format_minor(int(previous[first]))} to "
            f"{format_minor(int(refund[first]))} after refunds were recorded; a reversal needs an "
            f"accountant's journal{more}",
        ).in_context(company=company, period=label)


def _ns(day: date) -> int:
    return (day - _EPOCH).days * _NS_PER_DAY


def _raise_for_bad_charges(charges: pd.DataFrame, bad: np.ndarray, *, company: str, label: str):
    """Raise ``ChargeDataError`` for the first malformed charge of the period, counting the others."""
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    shown = rows[:11]
    ids, problems = _texts(charges["charge_id"], shown), _texts(charges["problems"], shown)
    field, _, problem = str(problems[0]).split("; ")[0].partition(": ")
    if rows.size > 1:
        others = ", ".join(f"{ids[i]} ({problems[i]})" for i in range(1, shown.size))
        problem += f"; {rows.size - 1} more bad charge(s) in this period: {others}"
        if rows.size > 11:
            problem += ", …"
    raise ChargeDataError(str(ids[0]), field, problem).in_context(company=company, period=label)


def _closed_days(days: np.ndarray, period: Period, closed_periods: set[str]) -> np.ndarray:
    """For each day number (days since 1970-01-01), whether its period is in ``closed_periods``."""
    if days.size == 0 or not closed_periods:
        return np.zeros(days.size, dtype=bool)
    first, last = int(days.min()), int(days.max())
    if last - first < _MAX_DAY_TABLE:
        table = np.array(
            [
                _is_closed(first + offset, period.frequency, closed_periods)
                for offset in range(last - first + 1)
            ],
            dtype=bool,
        )
        return table[days - first]
    unique, inverse = np.unique(days, return_inverse=True)
    table = np.array([_is_closed(int(d), period.frequency, closed_periods) for d in unique], dtype=bool)
    return table[inverse]


def _is_closed(day_number: int, frequency: Frequency, closed_periods: set[str]) -> bool:
    return Period.containing(_EPOCH + timedelta(days=day_number), frequency).key in closed_periods


def _check_currencies(charges, foreign_gross, new_fees, base: str, *, company: str, label: str):
    """Every amount to record must be in ``base``: raise naming ALL the charges that are not.

    A foreign-currency charge's gross (sale or refund) comes from Mamo's settlement figures, so
    its settlement and fee currencies must be ``base``; a fee or fee VAT to record must be too.
    Only the rows about to be recorded are compared (``foreign_gross``, ``new_fees`` masks).
    """
    fee_in_base = text_in(charges["fee_currency"], [base])
    bad = new_fees & ~fee_in_base
    if foreign_gross.any():
        bad |= foreign_gross & ~(text_in(charges["settlement_currency"], [base]) & fee_in_base)
    rows = np.flatnonzero(bad)
    if rows.size == 0:
        return
    listed = ", ".join(
        f"{charge_id} (settles in {settlement}, fees in {fee})"
        for charge_id, settlement, fee in zip(
            _texts(charges["charge_id"], rows),
            _texts(charges["settlement_currency"], rows),
            _texts(charges["fee_currency"], rows),
            strict=True,
        )
    )
    raise CurrencyPolicyError(
        f"company {company}, period {label}: {rows.size} charge(s) cannot be converted to the base "
        f"currency {base} (Mamo's settlement and fee currencies must be {base}): {listed}; nothing recorded"
    )


def _refund_increase(refund, previous, gross, amount, in_base) -> np.ndarray:
    """conv(new cumulative) − conv(recorded cumulative) for rising refunds.

    conv(x) = x for a base-currency charge, else round_half_up(x × gross in base / amount):
    each charge's own effective rate (ACCOUNTING.md, "Currency"), so the increases of a charge
    always add up to conv(final cumulative).
    """
    increase = refund - previous
    foreign = ~in_base
    if foreign.any():
        rate_num, rate_den = gross[foreign], amount[foreign]
        increase[foreign] = mul_div_half_up(refund[foreign], rate_num, rate_den) - mul_div_half_up(
            previous[foreign], rate_num, rate_den
        )
    return increase


def _new_events(
    period_key: str | None,
    charge_ids: np.ndarray,
    kind_codes: np.ndarray,
    amounts: np.ndarray,
    cumulative: np.ndarray,
) -> pd.DataFrame:
    """The new-events frame; ``kind_codes`` index ``KIND_DTYPE`` (refunds, code 3, come last and
    ``cumulative`` holds their cumulative refunds). ``kind`` and ``period_key`` are categories built
    from codes: no per-row Python object is created."""
    total = kind_codes.size
    values = np.zeros(total, dtype=np.int64)
    values[total - cumulative.size :] = cumulative
    null = np.ones(total, dtype=bool)
    null[total - cumulative.size :] = False
    period = pd.Categorical.from_codes(
        np.zeros(total, dtype=np.int8), categories=[] if period_key is None else [period_key]
    )
    return pd.DataFrame(
        {
            "charge_id": charge_ids,
            "kind": pd.Categorical.from_codes(kind_codes, dtype=KIND_DTYPE),
            "period_key": period,
            "amount_minor": amounts.astype(np.int64, copy=False),
            "cumulative_refund_minor": pd.arrays.IntegerArray(values, null),
        },
        copy=False,
    )
