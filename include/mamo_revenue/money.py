"""Money as integer minor units (fils for AED) from parsing to the ledger call. Never a float.

Every Mamo currency is a two-decimal currency (MAMO_API.md §9), so one exponent serves all.
Helpers refuse floats: a float near money is a defect, not an input.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

MINOR_PER_MAJOR = 100
_MONEY_STRING = re.compile(r"^\s*([A-Za-z]{3})\s+(-?[0-9][0-9,]*(?:\.[0-9]+)?)\s*$")


class MoneyFormatError(ValueError):
    """A value is not an amount the policy can read; the caller names the record and field."""


def to_minor(value: object) -> int:
    """Minor units of a major-unit amount given as ``Decimal``, ``int`` or numeric string.

    More than two decimals is an error, not a rounding: Mamo's amounts are exact.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyFormatError(f"{value!r} is a {type(value).__name__}, not an exact amount")
    if isinstance(value, int):
        return value * MINOR_PER_MAJOR
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        if not text:
            raise MoneyFormatError("empty amount")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise MoneyFormatError(f"{text!r} is not a number") from None
    if not isinstance(value, Decimal):
        raise MoneyFormatError(f"{value!r} is not an amount")
    if not value.is_finite():
        raise MoneyFormatError(f"{value!r} is not a finite amount")
    scaled = value * MINOR_PER_MAJOR
    if scaled != scaled.to_integral_value():
        raise MoneyFormatError(f"{value} has more than two decimals")
    return int(scaled)


def parse_money_string(value: object) -> tuple[str, int]:
    """``"AED 1.90"`` (or ``"AED 1,234.50"``) → ``("AED", 190)``."""
    if not isinstance(value, str):
        raise MoneyFormatError(f"{value!r} is not a '<CUR> <amount>' string")
    match = _MONEY_STRING.match(value)
    if not match:
        raise MoneyFormatError(f"{value!r} is not a '<CUR> <amount>' string")
    return match.group(1).upper(), to_minor(match.group(2))


def to_decimal(minor: int) -> Decimal:
    """Major units as an exact two-decimal ``Decimal``, for a ledger request body."""
    if not isinstance(minor, int) or isinstance(minor, bool):
        raise MoneyFormatError(f"{minor!r} is not a count of minor units")
    return Decimal(minor).scaleb(-2).quantize(Decimal("0.01"))


def format_minor(minor: int) -> str:
    """``18491`` → ``"184.91"``; for logs, tables and ledger bodies."""
    return str(to_decimal(minor))


def div_round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero, in exact integer arithmetic."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return sign * quotient


def vat_rate_fraction(rate: Decimal | str) -> tuple[int, int]:
    """A VAT rate such as ``Decimal("0.05")`` as an exact fraction ``(5, 100)``."""
    rate = Decimal(str(rate))
    if rate < 0 or rate >= 1:
        raise ValueError(f"VAT rate {rate} is outside [0, 1)")
    numerator, denominator = rate.as_integer_ratio()
    return numerator, denominator


def vat_inside(gross_minor: int, rate: Decimal | str) -> int:
    """VAT carved out of a VAT-inclusive amount: round_half_up(gross × rate / (1 + rate))."""
    num, den = vat_rate_fraction(rate)
    return div_round_half_up(gross_minor * num, den + num)
