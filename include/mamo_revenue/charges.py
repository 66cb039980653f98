"""The Mamo charge as the posting policy reads it: typed, in minor units, zone-less local time.

``parse_charge`` turns one raw charge object (list item, single charge or webhook body) into a
``Charge``. A ``created_date`` that does not parse raises ``ChargeDateError`` at once (the charge
cannot be placed in any period, so every run that sees it fails). Any other malformed field is
kept in ``Charge.problems`` and raised only by the run of the charge's own period
(ACCOUNTING.md, "Bad records").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from mamo_revenue.errors import ChargeDataError, ChargeDateError
from mamo_revenue.money import MINOR_PER_MAJOR, MoneyFormatError, format_minor, parse_money_string, to_minor


class ChargeStatus(StrEnum):
    CONFIRMATION_REQUIRED = "confirmation_required"
    PROCESSING = "processing"
    CAPTURED = "captured"
    FAILED = "failed"
    REFUND_INITIATED = "refund_initiated"
    REFUNDED = "refunded"
    VOIDED = "voided"


#: Statuses that show the payment was captured: a sale (ACCOUNTING.md, "Events").
CAPTURED_STATUSES = frozenset({ChargeStatus.CAPTURED, ChargeStatus.REFUND_INITIATED, ChargeStatus.REFUNDED})


@dataclass(frozen=True, slots=True)
class Charge:
    id: str
    status: ChargeStatus | str  # the raw text when unknown (then also a problem of field "status")
    created_local: datetime  # wall-clock time in the company's zone, naive
    currency: str  # amount_currency
    amount_minor: int
    refund_minor: int  # cumulative refund so far, in ``currency``
    settlement_currency: str | None = None
    settlement_minor: int | None = None
    settlement_date: date | None = None
    fee_currency: str | None = None
    fee_minor: int | None = None  # settlement_fee, before VAT
    fee_vat_minor: int | None = None  # settlement_vat
    #: (field, problem) for every malformed field other than created_date
    problems: tuple[tuple[str, str], ...] = ()
    raw: dict | None = field(default=None, compare=False, repr=False)

    @property
    def is_sale(self) -> bool:
        return self.status in CAPTURED_STATUSES


# --- parsing --------------------------------------------------------------------------------------

_STATUS_BY_VALUE: dict[str, ChargeStatus] = {status.value: status for status in ChargeStatus}


def parse_charge(raw: dict, *, tz: str = "Asia/Dubai", company_tz: str | None = None) -> Charge:
    """One raw Mamo charge object (list item, single charge or webhook body) as a ``Charge``.

    ``raw`` must come from ``json.loads(..., parse_float=Decimal)``. ``tz`` is the zone Mamo's
    zone-less ``created_date`` is read in; ``company_tz`` (default: the same zone) is the zone of
    the company's periods, and ``created_local`` is wall-clock time there.

    Raises ``ChargeDataError`` (charge id ``<missing>``) when there is no usable id (missing,
    blank, or with control characters) and
    ``ChargeDateError`` when ``created_date`` does not parse. Every other malformed field becomes
    a ``(field, problem)`` entry of ``Charge.problems``; absent and null fields are ``None`` (a
    null ``refund_amount`` is 0). Unknown fields are ignored; ``Charge.raw`` is ``raw`` itself.
    """
    if not isinstance(raw, dict):
        raise ChargeDataError("<missing>", "charge", f"a charge is a JSON object, not {type(raw).__name__}")
    charge_id = raw.get("id")
    if not isinstance(charge_id, str) or not charge_id.strip() or not charge_id.isprintable():
        problem = "missing" if charge_id is None or charge_id == "" else f"{charge_id!r} is not a charge id"
        raise ChargeDataError("<missing>", "id", problem)
    created_local = _parse_created(charge_id, raw.get("created_date"), tz, company_tz)

    problems: list[tuple[str, str]] = []
    get = raw.get

    status_text = get("status")
    status = _STATUS_BY_VALUE.get(status_text) if isinstance(status_text, str) else None
    if status is None:
        problems.append(("status", "missing" if status_text is None else f"unknown status {status_text!r}"))
        status = status_text if isinstance(status_text, str) else ""

    currency = get("amount_currency")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha() and currency.isascii()):
        problems.append(
            ("amount_currency", "missing" if currency is None else f"{currency!r} is not a currency code")
        )
        currency = currency if isinstance(currency, str) else ""
    else:
        currency = currency.upper()

    raw_amount = get("amount")
    amount_minor = _amount(raw_amount, "amount", problems)
    if amount_minor is None:
        if raw_amount is None:
            problems.append(("amount", "missing"))
        amount_minor = 0
        amount_ok = False
    else:
        amount_ok = True

    refund_minor = _amount(get("refund_amount"), "refund_amount", problems) or 0
    if amount_ok and refund_minor > amount_minor:
        problems.append(
            ("refund_amount", f"refund {refund_minor} exceeds the amount {amount_minor} (minor units)")
        )

    settlement_currency = get("settlement_currency")
    if settlement_currency is not None:
        if (
            isinstance(settlement_currency, str)
            and len(settlement_currency) == 3
            and settlement_currency.isalpha()
        ):
            settlement_currency = settlement_currency.upper()
        else:
            problems.append(("settlement_currency", f"{settlement_currency!r} is not a currency code"))
            settlement_currency = None
    settlement_minor = _amount(get("settlement_amount"), "settlement_amount", problems)

    fee_currency, fee_minor = _money_string(get("settlement_fee"), "settlement_fee", problems)
    vat_currency, fee_vat_minor = _money_string(get("settlement_vat"), "settlement_vat", problems)
    if fee_currency is None:
        fee_currency = vat_currency
    elif vat_currency is not None and vat_currency != fee_currency:
        problems.append(("settlement_vat", f"currency {vat_currency} differs from the fee's {fee_currency}"))

    settlement_date = _settlement_date(get("settlement_date"), problems)

    return Charge(
        charge_id,
        status,
        created_local,
        currency,
        amount_minor,
        refund_minor,
        settlement_currency,
        settlement_minor,
        settlement_date,
        fee_currency,
        fee_minor,
        fee_vat_minor,
        tuple(problems),
        raw,
    )


def _parse_created(charge_id: str, text: object, tz: str, company_tz: str | None) -> datetime:
    """``YYYY-MM-DD-HH-MM-SS`` → naive wall-clock time in the company's zone, or ``ChargeDateError``."""
    if not (
        type(text) is str
        and len(text) == 19
        and text[4] == "-"
        and text[7] == "-"
        and text[10] == "-"
        and text[13] == "-"
        and text[16] == "-"
        and text.isascii()
    ):
        problem = "missing" if text is None else f"{text!r} is not YYYY-MM-DD-HH-MM-SS"
        raise ChargeDateError(charge_id, "created_date", problem)
    try:  # fromisoformat is C-fast and refuses non-digits in the fixed positions
        local = datetime.fromisoformat(f"{text[:10]}T{text[11:13]}:{text[14:16]}:{text[17:]}")
    except ValueError:
        raise ChargeDateError(charge_id, "created_date", f"{text!r} is not a valid date and time") from None
    if company_tz is not None and company_tz != tz:
        local = local.replace(tzinfo=ZoneInfo(tz)).astimezone(ZoneInfo(company_tz)).replace(tzinfo=None)
    return local


def _amount(value: object, name: str, problems: list[tuple[str, str]]) -> int | None:
    """A non-negative exact amount (number or numeric string) in minor units; ``None`` when null.

    The fast paths cover what Mamo sends (``Decimal`` from the JSON parser, ``int``, plain
    ``"31.99"`` strings); anything else goes through ``money.to_minor`` for its exact message.
    """
    if value is None:
        return None
    kind = type(value)
    minor = None
    if kind is Decimal:
        try:
            numerator, denominator = value.as_integer_ratio()
        except (ValueError, OverflowError):  # NaN, Infinity
            numerator, denominator = 0, 0
        if denominator and MINOR_PER_MAJOR % denominator == 0:
            minor = numerator * (MINOR_PER_MAJOR // denominator)
    elif kind is int:
        minor = value * MINOR_PER_MAJOR
    elif kind is str:
        minor = _plain_text_minor(value)
    if minor is None:
        try:
            minor = to_minor(value)
        except MoneyFormatError as exc:
            problems.append((name, _float_hint(value, str(exc))))
            return None
    if minor < 0:
        problems.append((name, f"negative amount {format_minor(minor)}"))
        return None
    return minor


def _plain_text_minor(text: str) -> int | None:
    """``"31.99"`` / ``"0.0"`` / ``"100"`` → minor units; ``None`` for anything less plain."""
    whole, dot, fraction = text.partition(".")
    if not (whole.isdigit() and whole.isascii()):
        return None
    if not dot:
        return int(whole) * MINOR_PER_MAJOR
    if len(fraction) == 2 and fraction.isdigit() and fraction.isascii():
        return int(whole) * MINOR_PER_MAJOR + int(fraction)
    if len(fraction) == 1 and fraction.isdigit() and fraction.isascii():
        return int(whole) * MINOR_PER_MAJOR + int(fraction) * 10
    return None


def _money_string(value: object, name: str, problems: list[tuple[str, str]]) -> tuple[str | None, int | None]:
    """``"AED 1.90"`` → ``("AED", 190)``; ``(None, None)`` when null or malformed."""
    if value is None:
        return None, None
    if type(value) is str:  # fast path: "AED 1.90"
        currency, space, number = value.partition(" ")
        if space and len(currency) == 3 and currency.isupper() and currency.isalpha():
            minor = _plain_text_minor(number)
            if minor is not None:
                return currency, minor
    try:
        currency, minor = parse_money_string(value)
    except MoneyFormatError as exc:
        problems.append((name, _float_hint(value, str(exc))))
        return None, None
    if minor < 0:
        problems.append((name, f"negative amount {value!r}"))
        return None, None
    return currency, minor


def _settlement_date(value: object, problems: list[tuple[str, str]]) -> date | None:
    """``DD/MM/YYYY`` (day first, MAMO_API.md §5.1) or ``YYYY-MM-DD``; ``None`` when null."""
    if value is None:
        return None
    if type(value) is str and len(value) == 10 and value.isascii():
        try:
            if value[2] == "/" and value[5] == "/":
                return date.fromisoformat(f"{value[6:]}-{value[3:5]}-{value[:2]}")
            if value[4] == "-" and value[7] == "-":
                return date.fromisoformat(value)
        except ValueError:
            pass
    problems.append(("settlement_date", f"{value!r} is not DD/MM/YYYY or YYYY-MM-DD"))
    return None


def _float_hint(value: object, message: str) -> str:
    if isinstance(value, float):
        return f"{value!r} was parsed as a float; parse Mamo JSON with json.loads(..., parse_float=Decimal)"
    return message
