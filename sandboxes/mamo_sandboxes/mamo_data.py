"""The Mamo sandbox's data: columnar charge storage and a seeded generator of realistic charges.

Written from MAMO_API.md, not from the extractor's code: the sandbox is the other side of the wire.

- Storage is columnar (one ``array`` per field), so a million charges take tens of megabytes.
  Money is integer minor units; ``NULL`` (-1) marks an absent amount, day 0 an absent date.
- Charge ids are ``MPB-CHRG-`` + ten hex digits: a bijective scramble of (business number, row),
  so an id finds its row without a dictionary and ids never collide across businesses.
- Each charge has a 32-bit ``profile`` that picks its payer, card, link and custom data from the
  pools of ``mamo_render``.
- Anything the columns cannot hold (an explicit id, a malformed value, a field set by a test) lives
  in ``ChargeTable.overrides`` and is written verbatim over the rendered field.
"""

from __future__ import annotations

import bisect
import math
import random
import time
import zlib
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

NULL = -1
#: an override value that removes the field from the charge (MAMO_API.md §5.1 rule 7)
ABSENT = type("Absent", (), {"__repr__": lambda self: "ABSENT", "__slots__": ()})()

STATUSES = (
    "captured",
    "failed",
    "processing",
    "refund_initiated",
    "refunded",
    "confirmation_required",
    "voided",
)
STATUS_CODE = {name: code for code, name in enumerate(STATUSES)}
CAPTURED, FAILED, PROCESSING, REFUND_INITIATED, REFUNDED = 0, 1, 2, 3, 4
#: statuses of a charge that was paid: it has fees and a settlement, and may be refunded
PAID_CODES = frozenset({CAPTURED, REFUND_INITIATED, REFUNDED})

#: Every currency Mamo's sandbox validator listed (§9); all have two decimals.
CURRENCIES = ("AED", "USD", "EUR", "GBP", "SAR", "RON", "TRY", "AUD", "CAD", "CHF", "DZD", "EGP")
CURRENCY_CODE = {name: code for code, name in enumerate(CURRENCIES)}

#: AED per unit, roughly mid-2026 rates plus Mamo's "small buffer"; a setting may replace them.
DEFAULT_FX_RATES = {
    "AED": "1", "USD": "3.6725", "EUR": "3.9810", "GBP": "4.6420", "SAR": "0.9790", "RON": "0.8010",
    "TRY": "0.0890", "AUD": "2.4150", "CAD": "2.6730", "CHF": "4.1560", "DZD": "0.0275", "EGP": "0.0745",
}  # fmt: skip

#: UAE public holidays (approximate for the lunar ones) used for T+5 settlement dates.
DEFAULT_HOLIDAYS = tuple(
    date.fromisoformat(day)
    for day in (
        "2023-01-01", "2023-04-20", "2023-04-21", "2023-04-24", "2023-06-27", "2023-06-28", "2023-06-29",
        "2023-06-30", "2023-07-21", "2023-09-29", "2023-12-01", "2023-12-02", "2023-12-03",
        "2024-01-01", "2024-04-08", "2024-04-09", "2024-04-10", "2024-04-11", "2024-04-12", "2024-06-15",
        "2024-06-16", "2024-06-17", "2024-06-18", "2024-07-07", "2024-09-15", "2024-12-02", "2024-12-03",
        "2025-01-01", "2025-03-30", "2025-03-31", "2025-04-01", "2025-06-05", "2025-06-06", "2025-06-07",
        "2025-06-08", "2025-06-26", "2025-09-04", "2025-12-02", "2025-12-03",
        "2026-01-01", "2026-03-20", "2026-03-21", "2026-03-22", "2026-05-26", "2026-05-27", "2026-05-28",
        "2026-05-29", "2026-06-16", "2026-08-25", "2026-12-02", "2026-12-03",
        "2027-01-01", "2027-03-09", "2027-03-10", "2027-03-11", "2027-05-15", "2027-05-16", "2027-05-17",
        "2027-05-18", "2027-06-06", "2027-08-14", "2027-12-02", "2027-12-03",
    )
)  # fmt: skip

DUBAI = "Asia/Dubai"


# --- money ---------------------------------------------------------------------------------------


def half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero (numerator ≥ 0 here)."""
    quotient, remainder = divmod(numerator, denominator)
    return quotient + (1 if 2 * remainder >= denominator else 0)


def fraction(value: Decimal | str | int) -> tuple[int, int]:
    return Decimal(str(value)).as_integer_ratio()


@dataclass(frozen=True)
class FeePlan:
    """Per-transaction fee: ``percent`` % of the AED gross plus ``fixed_minor`` fils, then VAT on it."""

    percent: Decimal = Decimal("2.9")
    fixed_minor: int = 100
    vat_percent: Decimal = Decimal("5")

    def fee_and_vat(self, gross_aed_minor: int) -> tuple[int, int]:
        num, den = fraction(self.percent)
        fee = half_up(gross_aed_minor * num, den * 100) + self.fixed_minor
        vnum, vden = fraction(self.vat_percent)
        return fee, half_up(fee * vnum, vden * 100)


GROWTH = FeePlan()
PLANS = {
    "growth": GROWTH,
    "premium": FeePlan(Decimal("2.7"), 80),
    "ultra": FeePlan(Decimal("1.9"), 80),
}


def to_aed(amount_minor: int, currency: str, fx_rates: Mapping[str, object]) -> int:
    if currency == "AED":
        return amount_minor
    num, den = fraction(fx_rates[currency])
    return half_up(amount_minor * num, den)


def parse_minor(value: object) -> int | None:
    """Minor units of a JSON amount (Decimal, int or numeric string, ``"AED 1,234.50"`` too); None if not one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 4 and text[:3].isalpha() and text[3] == " ":
            text = text[4:]
        try:
            value = Decimal(text.replace(",", ""))
        except ArithmeticError:
            return None
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, int):
        value = Decimal(value)
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        return None
    scaled = value * 100
    return int(scaled) if scaled == scaled.to_integral_value() else None


# --- calendar ------------------------------------------------------------------------------------


def add_business_days(day: date, days: int, holidays: frozenset[date]) -> date:
    """``day`` plus ``days`` Monday–Friday business days that are not holidays."""
    while days:
        day += timedelta(days=1)
        if day.isoweekday() <= 5 and day not in holidays:
            days -= 1
    return day


class ZoneClock:
    """UTC epoch seconds ↔ wall-clock in one zone, with the offset cached per hour."""

    def __init__(self, tz: str):
        self.tz = tz
        self.zone = ZoneInfo(tz)
        self._offsets: dict[int, int] = {}

    def offset(self, epoch: int) -> int:
        hour = epoch // 3600
        offset = self._offsets.get(hour)
        if offset is None:
            local = datetime.fromtimestamp(hour * 3600, self.zone)
            offset = self._offsets[hour] = int(local.utcoffset().total_seconds())
        return offset

    def local_text(self, epoch: int) -> str:
        """Mamo's ``created_date``: ``YYYY-MM-DD-HH-MM-SS`` wall-clock, no zone."""
        t = time.gmtime(epoch + self.offset(epoch))
        return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}-{t.tm_hour:02d}-{t.tm_min:02d}-{t.tm_sec:02d}"

    def local_date(self, epoch: int) -> date:
        return date.fromordinal(EPOCH_ORDINAL + (epoch + self.offset(epoch)) // 86400)

    def to_epoch(self, local: datetime) -> int:
        """A wall-clock (naive) or aware datetime → UTC epoch seconds."""
        if local.tzinfo is None:
            local = local.replace(tzinfo=self.zone)
        return int(local.timestamp())


EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def parse_created_date(text: object) -> datetime | None:
    """``YYYY-MM-DD-HH-MM-SS`` → naive datetime, or None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d-%H-%M-%S")
    except ValueError:
        return None


def parse_settlement_date(text: object) -> date | None:
    if not isinstance(text, str):
        return None
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    return None


# --- charge ids ----------------------------------------------------------------------------------

_ID_BITS = 40
_ID_MASK = (1 << _ID_BITS) - 1
_ID_A, _ID_B = 0x9E3779B97F & _ID_MASK | 1, 0xC2B2AE3D27 & _ID_MASK | 1
_ID_A_INV, _ID_B_INV = pow(_ID_A, -1, 1 << _ID_BITS), pow(_ID_B, -1, 1 << _ID_BITS)
_ROW_BITS = 32
CHARGE_ID_PREFIX = "MPB-CHRG-"


def _scramble(value: int) -> int:
    value = (value * _ID_A) & _ID_MASK
    value ^= value >> 20
    return (value * _ID_B) & _ID_MASK


def _unscramble(value: int) -> int:
    value = (value * _ID_B_INV) & _ID_MASK
    value ^= value >> 20
    return (value * _ID_A_INV) & _ID_MASK


def encode_charge_id(business_no: int, row: int) -> str:
    return f"{CHARGE_ID_PREFIX}{_scramble((business_no << _ROW_BITS) | row):010X}"


def decode_charge_id(charge_id: str) -> tuple[int, int] | None:
    if not charge_id.startswith(CHARGE_ID_PREFIX) or len(charge_id) != len(CHARGE_ID_PREFIX) + 10:
        return None
    try:
        value = _unscramble(int(charge_id[len(CHARGE_ID_PREFIX) :], 16))
    except ValueError:
        return None
    return value >> _ROW_BITS, value & ((1 << _ROW_BITS) - 1)


# --- columns and the table -----------------------------------------------------------------------

_COLUMNS = (
    ("created", "q"),  # UTC epoch seconds
    ("status", "b"),  # index into STATUSES
    ("currency", "b"),  # index into CURRENCIES
    ("amount", "q"),  # minor units of ``currency``
    ("refund", "q"),  # cumulative refund, minor units of ``currency``
    ("settlement", "q"),  # net in AED fils, NULL when absent
    ("fee", "q"),  # AED fils before VAT, NULL when absent
    ("vat", "q"),  # AED fils, NULL when absent
    ("settle_day", "i"),  # date ordinal of settlement_date, 0 when absent
    ("profile", "L"),  # 32 bits choosing payer, card, link, custom data, decline
)


@dataclass
class ChargeColumns:
    """A batch of charges, one ``array`` per field (see ``_COLUMNS``)."""

    created: array = field(default_factory=lambda: array("q"))
    status: array = field(default_factory=lambda: array("b"))
    currency: array = field(default_factory=lambda: array("b"))
    amount: array = field(default_factory=lambda: array("q"))
    refund: array = field(default_factory=lambda: array("q"))
    settlement: array = field(default_factory=lambda: array("q"))
    fee: array = field(default_factory=lambda: array("q"))
    vat: array = field(default_factory=lambda: array("q"))
    settle_day: array = field(default_factory=lambda: array("i"))
    profile: array = field(default_factory=lambda: array("L"))

    def __len__(self) -> int:
        return len(self.created)

    def append(self, *, created, status, currency, amount, refund, settlement, fee, vat, settle_day, profile):
        self.created.append(created)
        self.status.append(status)
        self.currency.append(currency)
        self.amount.append(amount)
        self.refund.append(refund)
        self.settlement.append(settlement)
        self.fee.append(fee)
        self.vat.append(vat)
        self.settle_day.append(settle_day)
        self.profile.append(profile)

    def extend(self, other: ChargeColumns) -> None:
        for name, _ in _COLUMNS:
            getattr(self, name).extend(getattr(other, name))

    def nbytes(self) -> int:
        return sum(getattr(self, name).itemsize * len(getattr(self, name)) for name, _ in _COLUMNS)


class ChargeTable(ChargeColumns):
    """One business's charges: the columns, sparse extras, and the orders the list can be served in.

    Invariant: ``version`` changes whenever anything a rendered charge depends on changes, and
    ``cache[row]`` is either None or the row's rendered list item for the current renderer.
    """

    def __init__(self, business_no: int):
        super().__init__()
        self.business_no = business_no
        self.explicit_ids: dict[int, str] = {}
        self.rows_by_explicit_id: dict[str, int] = {}
        self.overrides: dict[int, dict[str, object]] = {}
        self.refund_log: dict[int, list[tuple[str, int]]] = {}  # refunds made through the API
        self._ascending: array | None = None
        self._unordered: array | None = None
        self.cache: list[str | None] = []
        self.cache_key: object = None

    # ids

    def id_of(self, row: int) -> str:
        explicit = self.explicit_ids.get(row)
        return explicit if explicit is not None else encode_charge_id(self.business_no, row)

    def row_of(self, charge_id: str) -> int | None:
        row = self.rows_by_explicit_id.get(charge_id)
        if row is not None:
            return row
        decoded = decode_charge_id(charge_id)
        if decoded is None:
            return None
        business_no, row = decoded
        if business_no != self.business_no or row >= len(self) or row in self.explicit_ids:
            return None
        return row

    # growth

    def add_rows(self, columns: ChargeColumns, explicit_ids: Iterable[str | None] = ()) -> range:
        first = len(self)
        self.extend(columns)
        rows = range(first, len(self))
        for row, charge_id in zip(rows, explicit_ids, strict=False):
            if charge_id is not None:
                self.explicit_ids[row] = charge_id
                self.rows_by_explicit_id[charge_id] = row
        self.cache.extend([None] * len(rows))
        if len(rows) > 64:
            self._ascending = self._unordered = None
        else:
            for row in rows:
                if self._ascending is not None:
                    self._ascending.insert(bisect.bisect(self._ascending, self._sort_key(row), key=self._sort_key), row)
                if self._unordered is not None:
                    self._unordered.insert(
                        bisect.bisect(self._unordered, self._shuffle_key(row), key=self._shuffle_key), row
                    )
        return rows

    def touch(self, row: int) -> None:
        """Forget the row's rendered JSON (a refund, a status change, an override)."""
        self.cache[row] = None

    def set_created(self, row: int, epoch: int) -> None:
        self.created[row] = epoch
        self._ascending = None

    # orders

    def _sort_key(self, row: int) -> tuple[int, str]:
        return self.created[row], self.id_of(row)

    def _shuffle_key(self, row: int) -> tuple[int, str]:
        charge_id = self.id_of(row)
        return zlib.crc32(charge_id.encode()), charge_id

    def ascending(self) -> array:
        """Rows by (created, id), oldest first; newest first is this read backwards."""
        if self._ascending is None:
            self._ascending = array("L", sorted(range(len(self)), key=self._sort_key))
        return self._ascending

    def unordered(self) -> array:
        """A stable order unrelated to time: by a hash of the id."""
        if self._unordered is None:
            self._unordered = array("L", sorted(range(len(self)), key=self._shuffle_key))
        return self._unordered

    def page_rows(self, order: str, start: int, stop: int) -> list[int]:
        """Rows at list positions ``start:stop`` (0-based) in the given order."""
        n = len(self)
        if order == "oldest_first":
            return list(self.ascending()[start:stop])
        if order == "unordered":
            return list(self.unordered()[start:stop])
        rows = self.ascending()[max(n - stop, 0) : max(n - start, 0)]
        return list(reversed(rows))


# --- generator -----------------------------------------------------------------------------------

#: (status, weight): mostly captured, some declined, a few refunded partially or fully
DEFAULT_STATUS_WEIGHTS = {
    "captured": 84.0,
    "failed": 6.0,
    "processing": 1.0,
    "refunded": 5.0,
    "refund_initiated": 2.0,
    "confirmation_required": 1.0,
    "voided": 1.0,
}
DEFAULT_CURRENCY_WEIGHTS = {"AED": 85.0, "USD": 7.0, "EUR": 3.0, "GBP": 3.0, "SAR": 2.0}
_WHOLE_AMOUNTS = (10, 20, 25, 50, 100, 150, 200, 250, 390, 500, 1000)


def _cumulative(weights: Mapping[str, float], codes: Mapping[str, int]) -> tuple[list[float], list[int]]:
    total = sum(weights.values())
    bounds, values, running = [], [], 0.0
    for name, weight in weights.items():
        running += weight / total
        bounds.append(running)
        values.append(codes[name])
    bounds[-1] = 1.0
    return bounds, values


def generate(
    seed: int,
    count: int,
    start: datetime,
    end: datetime,
    *,
    tz: str = DUBAI,
    plan: FeePlan = GROWTH,
    fx_rates: Mapping[str, object] = DEFAULT_FX_RATES,
    holidays: Iterable[date] = DEFAULT_HOLIDAYS,
    settlement_days: int = 5,
    status_weights: Mapping[str, float] = DEFAULT_STATUS_WEIGHTS,
    currency_weights: Mapping[str, float] = DEFAULT_CURRENCY_WEIGHTS,
    boundary_share: float = 0.01,
) -> ChargeColumns:
    """``count`` realistic charges created in ``[start, end)`` (wall-clock in ``tz`` when naive), oldest first.

    The same arguments always give the same charges. A share of them sit exactly on a day boundary
    (00:00:00 or 23:59:59 local). Paid charges carry plan fees on their AED gross (foreign amounts
    converted at ``fx_rates`` first), VAT on the fee, the net as settlement and a settlement date
    ``settlement_days`` business days after the local creation day; others have none of these.
    """
    clock = ZoneClock(tz)
    first, last = clock.to_epoch(start), clock.to_epoch(end)
    if last <= first:
        raise ValueError(f"empty range: {start} .. {end}")
    if count < 0:
        raise ValueError("count must be ≥ 0")
    rng = random.Random(seed)
    randrange, rand, getrandbits = rng.randrange, rng.random, rng.getrandbits
    created = sorted(randrange(first, last) for _ in range(count))
    boundaries = 0 if count < 10 else max(2, int(count * boundary_share))
    for k in range(boundaries):
        index = randrange(count)
        day = clock.local_date(created[index])
        if k % 2 == 0:
            moment = datetime.combine(day, datetime.min.time())
        else:
            moment = datetime.combine(day, datetime.max.time().replace(microsecond=0))
        epoch = clock.to_epoch(moment)
        if first <= epoch < last:
            created[index] = epoch
    created.sort()

    status_bounds, status_codes = _cumulative(status_weights, STATUS_CODE)
    currency_bounds, currency_codes = _cumulative(currency_weights, CURRENCY_CODE)
    holidays = frozenset(holidays)
    settle_days: dict[int, int] = {}
    fx = {code: fraction(fx_rates[name]) for name, code in CURRENCY_CODE.items() if name in fx_rates}
    fee_num, fee_den = fraction(plan.percent)
    vat_num, vat_den = fraction(plan.vat_percent)
    log_low, log_high = math.log(500), math.log(200_000)

    out = ChargeColumns()
    out.created.extend(created)
    status_col, currency_col, amount_col, refund_col = out.status, out.currency, out.amount, out.refund
    settlement_col, fee_col, vat_col, day_col, profile_col = (
        out.settlement, out.fee, out.vat, out.settle_day, out.profile
    )  # fmt: skip
    for epoch in created:
        status = status_codes[bisect.bisect(status_bounds, rand())]
        currency = currency_codes[bisect.bisect(currency_bounds, rand())]
        pick = rand()
        if pick < 0.002:
            amount = randrange(3_500_000, 12_000_000)  # large: fees reach four digits
        elif pick < 0.10:
            amount = _WHOLE_AMOUNTS[randrange(len(_WHOLE_AMOUNTS))] * 100
        else:
            amount = int(math.exp(log_low + (log_high - log_low) * rand()))
        refund = 0
        if status == REFUNDED or status == REFUND_INITIATED:
            refund = amount if rand() < 0.5 else randrange(100, max(amount, 101))
        if status in PAID_CODES:
            if currency == 0:
                gross = amount
            else:
                num, den = fx[currency]
                gross = half_up(amount * num, den)
            fee = half_up(gross * fee_num, fee_den * 100) + plan.fixed_minor
            vat = half_up(fee * vat_num, vat_den * 100)
            settlement = gross - fee - vat
            local_day = (epoch + clock.offset(epoch)) // 86400
            day = settle_days.get(local_day)
            if day is None:
                created_day = date.fromordinal(EPOCH_ORDINAL + local_day)
                day = settle_days[local_day] = add_business_days(created_day, settlement_days, holidays).toordinal()
        else:
            fee = vat = settlement = NULL
            day = 0
        status_col.append(status)
        currency_col.append(currency)
        amount_col.append(amount)
        refund_col.append(refund)
        settlement_col.append(settlement)
        fee_col.append(fee)
        vat_col.append(vat)
        day_col.append(day)
        profile_col.append(getrandbits(32))
    return out
