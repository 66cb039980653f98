"""The Mamo sandbox's data: columnar charge storage, a seeded generator and the JSON renderer.

Written from MAMO_API.md, not from the extractor's code: the sandbox is the other side of the wire.

- Storage is columnar (one ``array`` per field), so a million charges take tens of megabytes.
  Money is integer minor units; ``NULL`` (-1) marks an absent amount, day 0 an absent date.
- Charge ids are ``MPB-CHRG-`` + ten hex digits: a bijective scramble of (business number, row),
  so an id finds its row without a dictionary and ids never collide across businesses.
- The descriptive part of a charge (payer, card, link, custom data) comes from small pools chosen
  by a per-charge 32-bit ``profile``; their JSON is rendered once per pool entry, and a charge's JSON
  is a join of ready fragments and a few numbers.
- Anything the columns cannot hold (an explicit id, a malformed value, a field set by a test) lives
  in ``overrides`` and is written verbatim over the rendered field.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import time
import zlib
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
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


# --- pools for the descriptive fields -----------------------------------------------------------

CUSTOMERS = [
    ("Aisha Al Marri", "aisha.almarri@example.ae", "+971501234501", "-"),
    ("Omar Haddad", "omar.haddad@example.com", "+971552345602", ""),
    ("Fatima Khan", "fatima.khan@example.ae", "+971563456703", "Please gift wrap"),
    ("John Doe", "support@mamopay.com", "-", "-"),
    ("Priya Nair", "priya.nair@example.in", "+971504567804", "-"),
    ("Lukas Meyer", "lukas.meyer@example.de", "+4915112345678", ""),
    ("", "", "-", "-"),
    ("Mariam Saeed", "mariam.saeed@example.ae", "+971585678905", "Deliver after 6pm"),
    ("Chen Wei", "chen.wei@example.cn", "+971526789006", "-"),
    ("Sara Ahmed", "sara.ahmed@example.ae", "+971507890107", ""),
    ("Mamo User", "email@mamopay.com", "+971551234567", "Dolore voluptate possimus et."),
    ("Hassan Rahimi", "hassan.r@example.com", "+971568901208", "-"),
    ("Emily Clarke", "emily.clarke@example.co.uk", "+447700900123", ""),
    ("Yousef Al Habtoor", "yousef@example.ae", "+971509012309", "-"),
    ("Ananya Iyer", "ananya.iyer@example.in", "+971551012310", "Invoice to company"),
    ("Khalid Mansour", "k.mansour@example.sa", "+966501234567", "-"),
]
CARDS = [
    ("CREDIT VISA", "•••• 4242"),
    ("DEBIT VISA", "1111"),
    ("CREDIT MASTERCARD", "•••• 5454"),
    ("DEBIT MASTERCARD", "4444"),
    ("CREDIT AMERICAN EXPRESS", "•••• 0005"),
    ("DEBIT VISA", "•••• 1881"),
    ("CREDIT VISA", "3220"),
    ("PREPAID MASTERCARD", "•••• 9900"),
]
CUSTOM_DATA = [
    {},
    {},
    {},
    {"channel": "web"},
    {"channel": "pos", "terminal": "T-03"},
    {"internal_customer_id": "0114120d-c394-4cce-9cdb-4ccbae605748", "val1": True, "val2": "custom value"},
    {"order_ref": "web-checkout"},
    {},
]
DECLINES = [
    ("generic", "Unknown reason - user should contact their bank to find out"),
    ("insufficient_funds", "Insufficient funds"),
    ("do_not_honor", "Do not honor - user should contact their bank"),
    ("expired_card", "The card has expired"),
    ("3ds_authentication_failed", "3D Secure authentication failed"),
]
LINKS_PER_BUSINESS = 16


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


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


# --- rendering -----------------------------------------------------------------------------------


def number_compact(minor: int) -> str:
    """``100`` for whole amounts, two decimals otherwise (``33.99``, ``12.50``)."""
    whole, cents = divmod(minor, 100)
    return str(whole) if cents == 0 else f"{whole}.{cents:02d}"


def number_float(minor: int) -> str:
    """Ruby's Float#to_s: ``390.0``, ``12.5``, ``33.99``."""
    whole, cents = divmod(minor, 100)
    if cents % 10 == 0:
        return f"{whole}.{cents // 10}"
    return f"{whole}.{cents:02d}"


def two_decimals(minor: int) -> str:
    whole, cents = divmod(minor, 100)
    return f"{whole}.{cents:02d}"


@dataclass(frozen=True)
class Business:
    """Who a key belongs to, and the pre-rendered fragments of its charges."""

    number: int
    api_key: str
    business_name: str
    business_tag: str
    website: str

    @property
    def descriptor(self) -> str:
        letters = "".join(ch for ch in self.business_name if ch.isalnum())[:13] or "Merchant"
        return f"Mamo*{letters}"

    def link(self, index: int) -> tuple[str, str]:
        digest = zlib.crc32(f"{self.business_tag}/{index}".encode())
        return (
            f"MB-LINK-{digest:08X}{index:02X}",
            f"https://business.mamopay.com/pay/{self.business_tag}-{digest & 0xFFFFFF:06x}",
        )


class Renderer:
    """Charge JSON for one business under one set of wire settings and one "today".

    ``settings`` is read once here (duck-typed: the sandbox's ``MamoSettings``); build a new renderer
    when it changes. Every method returns JSON text for one charge, in the key order of
    MAMO_API.md's Example 1 (list items) or Example 2 (single charge, webhook bodies).
    """

    def __init__(self, business: Business, table: ChargeTable, settings, today: date):
        self.business, self.table, self.settings = business, table, settings
        self.today_ordinal = today.toordinal()
        self.zone = ZoneClock(settings.created_date_zone)
        self.number = number_float if settings.number_style == "float" else number_compact
        self.descriptor = _dumps(business.descriptor)
        self._links = [tuple(_dumps(v) for v in business.link(i)) for i in range(LINKS_PER_BUSINESS)]
        self._people: dict[tuple[int, bool, bool], tuple[str, str]] = {}
        self._custom = [_dumps(d) for d in CUSTOM_DATA]
        self._declines = [(_dumps(c), _dumps(m)) for c, m in DECLINES]
        self._day_prefix: dict[int, str] = {}
        self._settle_text: dict[int, str] = {}
        # the list fast path serves rows without overrides when no per-row option is on
        self.fast_list = not settings.refunds_array

    # pieces

    def money_string(self, minor: int, currency: str = "AED") -> str:
        whole, cents = divmod(minor, 100)
        if self.settings.money_thousands_separator:
            return f'"{currency} {whole:,}.{cents:02d}"'
        return f'"{currency} {whole}.{cents:02d}"'

    def _person(self, profile: int, international: bool, with_card_id: bool) -> tuple[str, str]:
        """JSON of ``customer_details`` and ``payment_method``, rendered once per pool entry."""
        key = (profile & 0x3FF, international, with_card_id)
        texts = self._people.get(key)
        if texts is None:
            name, email, phone, comment = CUSTOMERS[profile % len(CUSTOMERS)]
            card_type, last4 = CARDS[(profile >> 4) % len(CARDS)]
            method = {"type": card_type, "card_holder_name": name or "-", "card_last4": last4}
            method["origin"] = "International card" if international else "UAE card"
            if with_card_id:
                method = {"card_id": None, **method}
            details = {"name": name, "email": email, "phone_number": phone, "comment": comment}
            texts = self._people[key] = (_dumps(details), _dumps(method))
        return texts

    def _settled(self, row: int) -> bool:
        day = self.table.settle_day[row]
        return day != 0 and day <= self.today_ordinal

    def _settlement_date(self, row: int, webhook: bool) -> str:
        day = self.table.settle_day[row]
        if day == 0 or (self.settings.settlement_date_before_payout == "null" and day > self.today_ordinal):
            return "null"
        return self._date_text(day, webhook)

    def _date_text(self, day: int, webhook: bool) -> str:
        fmt = self.settings.settlement_date_format
        iso = fmt == "iso" or (fmt == "default" and webhook)
        d = date.fromordinal(day)
        return f'"{d.isoformat()}"' if iso else f'"{d.day:02d}/{d.month:02d}/{d.year:04d}"'

    def _settlement_amount(self, row: int, webhook: bool) -> str:
        value = self.table.settlement[row]
        if value == NULL or (self.settings.settlement_fields_filled == "after_settlement" and not self._settled(row)):
            return "null"
        style = self.settings.settlement_amount_type
        as_string = (
            style == "string"
            or (style == "default" and webhook)
            or (style == "mixed" and self.table.profile[row] & 0x80000000)
        )
        return f'"{two_decimals(value)}"' if as_string else self.number(value)

    def _fee(self, column: array, row: int) -> str:
        value = column[row]
        if value == NULL or (self.settings.settlement_fields_filled == "after_settlement" and not self._settled(row)):
            return "null"
        return self.money_string(value)

    def _refund_amount(self, row: int, in_list: bool) -> str:
        value = self.table.refund[row]
        if in_list and self.settings.refund_amount_type == "default":
            return f'"{number_float(value)}"'  # the list example's "0.0"
        return self.number(value)

    def refund_status(self, row: int) -> str:
        if self.table.refund[row] == 0:
            return '"No refund"'
        if self.table.status[row] == REFUND_INITIATED:
            return _dumps(self.settings.refund_status_initiated)
        return _dumps(self.settings.refund_status_refunded)

    def _subscription(self, row: int) -> tuple[str, str]:
        profile = self.table.profile[row]
        if (profile >> 12) % 32 != 0:
            return "null", "null"
        sub = f'"MPB-SUB-{zlib.crc32(self.table.id_of(row).encode()) & 0xFFFFFFFFFF:010X}"'
        created = self.zone.local_date(self.table.created[row])
        nxt = (created.replace(day=1) + timedelta(days=32)).replace(day=min(created.day, 28))
        return sub, f'"{nxt.day:02d}/{nxt.month:02d}/{nxt.year:04d}"'

    def _refunds_array(self, row: int) -> tuple[str, str]:
        t = self.table
        currency = CURRENCIES[t.currency[row]]
        entries = t.refund_log.get(row)
        if entries is None:
            entries = [(f"MPB-RFND-{t.id_of(row)[-10:]}", t.refund[row])] if t.refund[row] else []
        items = [
            f'{{"id":{_dumps(ref_id)},"amount":{self.number(amount)},"amount_currency":"{currency}",'
            f'"billing_amount":{self.number(amount)},"billing_amount_currency":"{currency}"}}'
            for ref_id, amount in entries
        ]
        refundable = t.amount[row] - t.refund[row] if t.status[row] in PAID_CODES else 0
        return "[" + ",".join(items) + "]", self.number(refundable)

    # whole charges

    def fields(self, row: int, kind: str, event_type: str | None = None) -> dict[str, str]:
        """Key → JSON text of one charge; ``kind`` is ``list``, ``single`` or ``webhook``."""
        t = self.table
        status = t.status[row]
        currency = CURRENCIES[t.currency[row]]
        profile = t.profile[row]
        webhook = kind == "webhook"
        international = currency != "AED" or bool(profile & 0x400)
        subscription_id, next_payment = self._subscription(row)
        link_id, link_url = self._links[(profile >> 18) % LINKS_PER_BUSINESS]
        if status == FAILED:
            error_code, error_message = self._declines[(profile >> 22) % len(self._declines)]
        else:
            error_code = error_message = "null"
        out: dict[str, str] = {
            "status": f'"{STATUSES[status]}"',
            "id": _dumps(t.id_of(row)),
            "amount": self.number(t.amount[row]),
            "amount_currency": f'"{currency}"',
            "refund_amount": self._refund_amount(row, kind == "list"),
            "refund_status": self.refund_status(row),
        }
        if not webhook:
            out["billing_descriptor"] = self.descriptor
        out["custom_data"] = self._custom[(profile >> 8) % len(self._custom)]
        out["created_date"] = f'"{self.zone.local_text(t.created[row])}"'
        out["subscription_id"] = subscription_id
        if kind == "list":
            out["next_payment_date"] = next_payment
        out["settlement_amount"] = self._settlement_amount(row, webhook)
        out["settlement_currency"] = '"AED"'
        out["settlement_date"] = self._settlement_date(row, webhook)
        out["customer_details"], out["payment_method"] = self._person(profile, international, kind != "list")
        if kind != "single" or self.settings.fee_fields_on_single:
            out["settlement_fee"] = self._fee(t.fee, row)
            out["settlement_vat"] = self._fee(t.vat, row)
            out["payment_link_id"], out["payment_link_url"] = link_id, link_url
        if kind != "list":
            out["external_id"] = "null"
        out["error_code"], out["error_message"] = error_code, error_message
        if kind != "list":
            out["next_payment_date"] = next_payment
        if webhook:
            out["event_type"] = _dumps(event_type or "charge.succeeded")
        if self.settings.refunds_array:
            out["refunds"], out["max_refund_amount"] = self._refunds_array(row)
        overrides = t.overrides.get(row)
        if overrides:
            for key, value in overrides.items():
                if value is ABSENT:
                    out.pop(key, None)
                else:
                    out[key] = _dumps(value)
        return out

    def render(self, row: int, kind: str = "list", event_type: str | None = None) -> str:
        if kind == "list" and self.fast_list and row not in self.table.overrides:
            return self.list_item(row)
        return "{" + ",".join(f'"{key}":{value}' for key, value in self.fields(row, kind, event_type).items()) + "}"

    def list_item(self, row: int) -> str:
        """``render(row, "list")`` for a row without overrides, in one format: the paging hot path.

        Must equal the general path byte for byte (tested); ``fields`` is the reference.
        """
        t = self.table
        status = t.status[row]
        currency = CURRENCIES[t.currency[row]]
        profile = t.profile[row]
        epoch = t.created[row]
        local = epoch + self.zone.offset(epoch)
        day, seconds = divmod(local, 86400)
        prefix = self._day_prefix.get(day)
        if prefix is None:
            d = date.fromordinal(EPOCH_ORDINAL + day)
            prefix = self._day_prefix[day] = f"{d.year:04d}-{d.month:02d}-{d.day:02d}"
        hours, seconds = divmod(seconds, 3600)
        minutes, seconds = divmod(seconds, 60)
        if (profile >> 12) % 32 == 0:
            subscription_id, next_payment = self._subscription(row)
        else:
            subscription_id = next_payment = "null"
        settle_day = t.settle_day[row]
        settlement_date = self._settle_text.get(settle_day)
        if settlement_date is None:
            settlement_date = self._settle_text[settle_day] = self._date_text(settle_day, False) if settle_day else "null"
        if settle_day > self.today_ordinal and self.settings.settlement_date_before_payout == "null":
            settlement_date = "null"
        details, method = self._person(profile, currency != "AED" or bool(profile & 0x400), False)
        link_id, link_url = self._links[(profile >> 18) % LINKS_PER_BUSINESS]
        if status == FAILED:
            error_code, error_message = self._declines[(profile >> 22) % len(self._declines)]
        else:
            error_code = error_message = "null"
        refund = t.refund[row]
        if refund == 0:
            refund_status = '"No refund"'
        else:
            refund_status = self.refund_status(row)
        return (
            f'{{"status":"{STATUSES[status]}","id":"{t.id_of(row)}","amount":{self.number(t.amount[row])},'
            f'"amount_currency":"{currency}","refund_amount":{self._refund_amount(row, True)},'
            f'"refund_status":{refund_status},"billing_descriptor":{self.descriptor},'
            f'"custom_data":{self._custom[(profile >> 8) % len(self._custom)]},'
            f'"created_date":"{prefix}-{hours:02d}-{minutes:02d}-{seconds:02d}",'
            f'"subscription_id":{subscription_id},"next_payment_date":{next_payment},'
            f'"settlement_amount":{self._settlement_amount(row, False)},"settlement_currency":"AED",'
            f'"settlement_date":{settlement_date},"customer_details":{details},"payment_method":{method},'
            f'"settlement_fee":{self._fee(t.fee, row)},"settlement_vat":{self._fee(t.vat, row)},'
            f'"payment_link_id":{link_id},"payment_link_url":{link_url},'
            f'"error_code":{error_code},"error_message":{error_message}}}'
        )


def utc_now_epoch(now: datetime) -> int:
    return int(now.astimezone(UTC).timestamp())
