"""Charge snapshots → the revenue events a run for one period records (ACCOUNTING.md, "Events").

``derive_events`` is a pure function of the snapshots Mamo shows now, the events already recorded
for the company, the period being synced and the set of periods already closed. It returns only
NEW events, every one of them recognised in the period being synced, so that:

* a sale, its fee and its fee VAT are recorded once per charge (keys ``sale:<id>``, ``fee:<id>``,
  ``fee_vat:<id>``), in the charge's own period, or in the period being synced when the charge's
  own period is already closed (a posted journal is never changed);
* a refund is recorded once per (charge, cumulative refund) (key ``refund:<id>:<cumulative>``),
  and the refund events of a charge add up to its cumulative refund converted to base currency;
* every amount is a positive count of base-currency minor units, computed in int64 (never floats).

The choices the contract left open are written down in ``docs/POLICY_CHOICES.md`` ("Events").
Everything here is vectorised: no Python loop runs per charge.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from enum import StrEnum

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


#: The snapshots DataFrame: column → dtype (DESIGN.md, "Snapshots DataFrame").
SNAPSHOT_DTYPES = {
    "charge_id": object,
    "status": object,
    "created_local": "datetime64[ns]",
    "currency": object,
    "amount_minor": "int64",
    "refund_minor": "int64",
    "settlement_currency": object,
    "settlement_minor": "Int64",
    "fee_minor": "Int64",
    "fee_vat_minor": "Int64",
    "fee_currency": object,
    "problems": object,
}
SNAPSHOT_COLUMNS = tuple(SNAPSHOT_DTYPES)
EVENT_COLUMNS = ("event_key", "kind", "charge_id", "period_key", "amount_minor", "cumulative_refund_minor")

_NS_PER_DAY = 86_400 * 10**9
_EPOCH = date(1970, 1, 1)
_INT64_MAX = 2**63 - 1
#: More distinct days than this in one run's snapshots: look periods up per unique day instead.
_MAX_DAY_TABLE = 200_000


# --- frames ------------------------------------------------------------------------------------------


def charges_frame(charges: Iterable[Charge]) -> pd.DataFrame:
    """Parsed charges as the snapshots DataFrame (DESIGN.md, "Snapshots DataFrame").

    Minor units are int64 (nullable ``Int64`` where Mamo may send null); ``problems`` is
    ``"field: problem; …"``, empty when the charge is clean.
    """
    rows = [
        (c.id, str(c.status), c.created_local, c.currency, c.amount_minor, c.refund_minor, c.settlement_currency,
         c.settlement_minor, c.fee_minor, c.fee_vat_minor, c.fee_currency,
         "; ".join(f"{field}: {problem}" for field, problem in c.problems))
        for c in charges
    ]  # fmt: skip
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(SNAPSHOT_COLUMNS)
    return pd.DataFrame(
        {
            name: pd.Series(values, dtype=SNAPSHOT_DTYPES[name])
            for name, values in zip(SNAPSHOT_COLUMNS, columns, strict=True)
        }
    )


def events_frame(
    event_key, kind, charge_id, period_key, amount_minor, cumulative_refund_minor=None
) -> pd.DataFrame:
    """An events DataFrame with the contract's dtypes; arrays or lists, all of one length.

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
            "event_key": _objects(event_key),
            "kind": _objects(kind),
            "charge_id": _objects(charge_id),
            "period_key": _objects(period_key),
            "amount_minor": amount,
            "cumulative_refund_minor": cumulative,
        }
    )


def empty_events() -> pd.DataFrame:
    return events_frame([], [], [], [], [])


def _objects(values) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


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
    if (a < 0).any() or (b < 0).any() or (den <= 0).any():
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
        known = ~np.asarray(array.isna())
        values = array.to_numpy(dtype=np.int64, na_value=0)
    else:
        values = column.to_numpy(dtype=np.int64)
        known = None
    if rows is not None:
        values = values[rows]
        known = None if known is None else known[rows]
    return values, (np.ones(values.size, dtype=bool) if known is None else known)


def _local_ns(column: pd.Series) -> np.ndarray:
    values = column.to_numpy(dtype="datetime64[ns]")
    if np.isnat(values).any():
        raise ValueError("created_local has nulls: every snapshot needs a parsed created_date")
    return values.view(np.int64)


# --- derivation ------------------------------------------------------------------------------------


def derive_events(
    snapshots: pd.DataFrame,
    recorded: pd.DataFrame,
    *,
    period: Period,
    base_currency: str,
    closed_periods: set[str],
    company: str,
) -> pd.DataFrame:
    """The events a run for ``period`` records now; none already in ``recorded``.

    ``closed_periods`` holds the keys of the periods whose run has finished (posted or nothing to
    post): their journals never change, so late data of those periods lands in ``period``.
    Raises ``ChargeDataError`` when a charge of ``period`` is malformed or a cumulative refund
    went down, and ``CurrencyPolicyError`` (naming every offending charge) when an amount to be
    recorded cannot be expressed in ``base_currency``. On error nothing is returned.

    Of ``recorded`` only ``charge_id``, ``kind`` and ``cumulative_refund_minor`` are read, so a
    caller may load just those columns (they are most of the run's memory for a long history).
    """
    label = period.label
    if period.key in closed_periods:
        raise ValueError(f"company {company}, period {label} is closed: a posted journal never changes")
    if len(snapshots) == 0:
        return empty_events()
    base = base_currency.upper()
    created = _local_ns(snapshots["created_local"])
    start = _ns(period.first_day)
    in_period = (created >= start) & (created < _ns(period.end_day))
    before = created < start

    all_ids = snapshots["charge_id"].to_numpy(dtype=object)
    problems = snapshots["problems"].to_numpy(dtype=object)
    has_problem = problems.astype(bool)  # "" and None: clean
    _raise_for_bad_charges(all_ids, problems, in_period & has_problem, company=company, label=label)

    sale_status = snapshots["status"].isin([str(s) for s in CAPTURED_STATUSES]).to_numpy()
    live = np.flatnonzero(sale_status & ~has_problem & (in_period | before))  # own period ≤ P, clean sales
    if live.size == 0:
        return empty_events()
    ids = all_ids[live]
    takes_once = in_period[live]  # sale, fee and fee VAT: the own period, or a closed earlier one
    live_before = before[live]
    if live_before.any():
        takes_once |= live_before & _closed_days(created[live] // _NS_PER_DAY, period, closed_periods)

    amount, _ = _ints(snapshots["amount_minor"], "amount_minor", live)
    refund, _ = _ints(snapshots["refund_minor"], "refund_minor", live)
    settlement, settlement_known = _ints(snapshots["settlement_minor"], "settlement_minor", live)
    fee, fee_known = _ints(snapshots["fee_minor"], "fee_minor", live)
    fee_vat, fee_vat_known = _ints(snapshots["fee_vat_minor"], "fee_vat_minor", live)
    in_base = snapshots["currency"].to_numpy(dtype=object)[live] == base
    gross_known = in_base | (settlement_known & fee_known & fee_vat_known)
    gross = np.where(in_base, amount, settlement + fee + fee_vat)

    sale_done, fee_done, fee_vat_done, previous = _recorded_state(ids, recorded)
    _raise_if_refunds_went_down(ids, refund, previous, company=company, label=label)

    new_sale = takes_once & gross_known & ~sale_done & (gross > 0)
    new_fee = takes_once & fee_known & ~fee_done & (fee > 0)
    new_fee_vat = takes_once & fee_vat_known & ~fee_vat_done & (fee_vat > 0)
    rising = gross_known & (refund > previous)
    foreign_gross, new_fees = (new_sale | rising) & ~in_base, new_fee | new_fee_vat
    _check_currencies(snapshots, live, ids, foreign_gross, new_fees, base, company=company, label=label)

    new_sale, new_fee, new_fee_vat, rising = (
        np.flatnonzero(m) for m in (new_sale, new_fee, new_fee_vat, rising)
    )
    increase = _refund_increase(
        refund[rising], previous[rising], gross[rising], amount[rising], in_base[rising]
    )
    worth = increase > 0  # an increase worth 0 fils waits for the next one
    new_refund, increase = rising[worth], increase[worth]
    parts = (
        (EventKind.SALE, new_sale, gross[new_sale]),
        (EventKind.FEE, new_fee, fee[new_fee]),
        (EventKind.FEE_VAT, new_fee_vat, fee_vat[new_fee_vat]),
        (EventKind.REFUND, new_refund, increase),
    )
    return _events(period.key, ids, parts, refund[new_refund])


def _raise_if_refunds_went_down(ids, refund, previous, *, company: str, label: str) -> None:
    """A cumulative refund below one already recorded needs an accountant, not the pipeline."""
    went_down = np.flatnonzero(refund < previous)
    if went_down.size:
        first = went_down[0]
        more = f" ({went_down.size - 1} more charge(s) alike)" if went_down.size > 1 else ""
        raise ChargeDataError(
            ids[first],
            "refund_amount",
            f"cumulative refund went down from {format_minor(int(previous[first]))} to "
            f"{format_minor(int(refund[first]))} after refunds were recorded; a reversal needs an "
            f"accountant's journal{more}",
        ).in_context(company=company, period=label)


def _ns(day: date) -> int:
    return (day - _EPOCH).days * _NS_PER_DAY


def _raise_for_bad_charges(
    ids: np.ndarray, problems: np.ndarray, bad: np.ndarray, *, company: str, label: str
):
    """Raise ``ChargeDataError`` for the first malformed charge of the period, counting the others."""
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    first_problem = str(problems[rows[0]]).split("; ")[0]
    field, _, problem = first_problem.partition(": ")
    if rows.size > 1:
        others = ", ".join(f"{ids[i]} ({problems[i]})" for i in rows[1:11])
        problem += f"; {rows.size - 1} more bad charge(s) in this period: {others}"
        if rows.size > 11:
            problem += ", …"
    raise ChargeDataError(ids[rows[0]], field, problem).in_context(company=company, period=label)


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


def _recorded_state(ids: np.ndarray, recorded: pd.DataFrame):
    """Per charge: sale, fee and fee-VAT already recorded, and the largest cumulative refund recorded.

    One exact join of the recorded events' charge ids onto the snapshot rows; then flags by kind.
    """
    n = ids.size
    sale_done, fee_done, fee_vat_done = (np.zeros(n, dtype=bool) for _ in range(3))
    previous = np.zeros(n, dtype=np.int64)
    if len(recorded) == 0:
        _require_unique(pd.Index(ids, dtype=object))
        return sale_done, fee_done, fee_vat_done, previous
    position = _positions(ids, recorded["charge_id"].to_numpy(dtype=object))
    kind = recorded["kind"].to_numpy(dtype=object)
    seen = position >= 0
    for done, name in (
        (sale_done, EventKind.SALE),
        (fee_done, EventKind.FEE),
        (fee_vat_done, EventKind.FEE_VAT),
    ):
        done[position[seen & (kind == name.value)]] = True
    refunds = np.flatnonzero(seen & (kind == EventKind.REFUND.value))
    if refunds.size:
        cumulative, known = _ints(recorded["cumulative_refund_minor"], "cumulative_refund_minor", refunds)
        if not known.all():
            raise ValueError("a recorded refund event has no cumulative_refund_minor")
        np.maximum.at(previous, position[refunds], cumulative)
    return sale_done, fee_done, fee_vat_done, previous


def _require_unique(index: pd.Index) -> pd.Index:
    if not index.is_unique:
        duplicated = index[index.duplicated()].unique()[:10].tolist()
        raise ValueError(f"snapshots hold a charge more than once: {duplicated}")
    return index


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """For each of ``wanted``, its row in ``ids`` (which must be unique), or -1. Exact.

    Hashing millions of fresh Python strings is the slowest step of a run, so ASCII ids are
    joined as bytes: a 64-bit fingerprint per id, an integer hash join, then a byte-for-byte
    comparison of every match (a fingerprint collision can never pass it). Non-ASCII ids, or
    fingerprints that are not unique among ``ids``, take the plain object join. Charge ids never
    end in NUL characters (``parse_charge`` refuses control characters), which bytes would drop.
    """
    try:
        left, right = ids.astype(np.bytes_), wanted.astype(np.bytes_)
    except (UnicodeEncodeError, TypeError, ValueError):
        return _require_unique(pd.Index(ids, dtype=object)).get_indexer(pd.Index(wanted, dtype=object))
    width = max(left.dtype.itemsize, right.dtype.itemsize)
    left, right = left.astype(f"S{width}"), right.astype(f"S{width}")
    index = pd.Index(_fingerprints(left))
    if not index.is_unique:
        return _require_unique(pd.Index(ids, dtype=object)).get_indexer(pd.Index(wanted, dtype=object))
    position = index.get_indexer(_fingerprints(right))
    matched = np.flatnonzero(position >= 0)
    collided = left[position[matched]] != right[matched]
    position[matched[collided]] = -1
    return position


def _fingerprints(fixed: np.ndarray) -> np.ndarray:
    """A 64-bit FNV-style fingerprint of each fixed-width byte string (NUL-padded to 8-byte words)."""
    width = fixed.dtype.itemsize
    octets = fixed.view(np.uint8).reshape(fixed.size, width)
    padding = (-width) % 8
    if padding:
        octets = np.concatenate([octets, np.zeros((fixed.size, padding), dtype=np.uint8)], axis=1)
    words = np.ascontiguousarray(octets).view(np.uint64)
    fingerprint = np.full(fixed.size, 0xCBF29CE484222325, dtype=np.uint64)
    for column in range(words.shape[1]):
        fingerprint ^= words[:, column]
        fingerprint *= np.uint64(0x100000001B3)
        fingerprint ^= fingerprint >> np.uint64(29)
    return fingerprint


def _check_currencies(snapshots, live, ids, foreign_gross, new_fees, base: str, *, company: str, label: str):
    """Every amount to record must be in ``base``: raise naming ALL the charges that are not.

    A foreign-currency charge's gross (sale or refund) comes from Mamo's settlement figures, so
    its settlement and fee currencies must be ``base``; a fee or fee VAT to record must be too.
    Only the rows about to be recorded are compared (``foreign_gross``, ``new_fees`` masks).
    """
    settlement_currency = snapshots["settlement_currency"].to_numpy(dtype=object)
    fee_currency = snapshots["fee_currency"].to_numpy(dtype=object)
    gross_rows, fee_rows = np.flatnonzero(foreign_gross), np.flatnonzero(new_fees)
    bad_gross = gross_rows[
        (settlement_currency[live[gross_rows]] != base) | (fee_currency[live[gross_rows]] != base)
    ]
    bad_fee = fee_rows[fee_currency[live[fee_rows]] != base]
    if bad_gross.size == 0 and bad_fee.size == 0:
        return
    offending = np.unique(np.concatenate([bad_gross, bad_fee]))
    listed = ", ".join(
        f"{ids[i]} (settles in {settlement_currency[live[i]]}, fees in {fee_currency[live[i]]})"
        for i in offending
    )
    raise CurrencyPolicyError(
        f"company {company}, period {label}: {offending.size} charge(s) cannot be converted to the base "
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


def _events(period_key: str, ids: np.ndarray, parts, cumulative: np.ndarray) -> pd.DataFrame:
    """One events frame from (kind, rows, amounts) parts; the refund part comes last."""
    sizes = [rows.size for _, rows, _ in parts]
    total = sum(sizes)
    charge_ids = np.concatenate([ids[rows] for _, rows, _ in parts])
    kind = np.empty(total, dtype=object)
    keys = np.empty(total, dtype=object)
    start = 0
    for (event_kind, _, _), size in zip(parts, sizes, strict=True):
        end = start + size
        kind[start:end] = event_kind.value
        keys[start:end] = (event_kind.value + ":") + charge_ids[start:end]
        start = end
    if cumulative.size:  # the refund key also names the cumulative amount
        keys[total - cumulative.size :] += ":" + cumulative.astype(str).astype(object)
    period = np.empty(total, dtype=object)
    period[:] = period_key
    others = total - cumulative.size
    cumulative_column = pd.arrays.IntegerArray(
        np.concatenate([np.zeros(others, dtype=np.int64), cumulative.astype(np.int64)]),
        np.concatenate([np.ones(others, dtype=bool), np.zeros(cumulative.size, dtype=bool)]),
    )
    return pd.DataFrame(
        {
            "event_key": keys,
            "kind": kind,
            "charge_id": charge_ids,
            "period_key": period,
            "amount_minor": np.concatenate([np.asarray(a, dtype=np.int64) for _, _, a in parts]),
            "cumulative_refund_minor": cumulative_column,
        },
        copy=False,
    )
