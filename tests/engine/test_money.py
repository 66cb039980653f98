"""money: integer minor units from parsing to the ledger call; never a float."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mamo_revenue.money import (
    MoneyFormatError,
    div_round_half_up,
    format_minor,
    parse_money_string,
    to_decimal,
    to_minor,
    vat_inside,
    vat_rate_fraction,
)


@pytest.mark.parametrize(
    ("value", "minor"),
    [
        pytest.param(Decimal("33.99"), 3399, id="decimal"),
        pytest.param(Decimal("390.0"), 39000, id="decimal-trailing-zero"),
        pytest.param(Decimal("52.5"), 5250, id="decimal-one-place"),
        pytest.param(100, 10000, id="int"),
        pytest.param(0, 0, id="zero"),
        pytest.param("31.99", 3199, id="string"),
        pytest.param("0.0", 0, id="string-zero"),
        pytest.param(" 1,234.50 ", 123450, id="string-thousands"),
        pytest.param("-2.10", -210, id="negative-string"),
    ],
)
def test_to_minor_reads_exact_amounts(value, minor):
    assert to_minor(value) == minor


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(33.99, id="float"),
        pytest.param(True, id="bool"),
        pytest.param(Decimal("1.005"), id="three-decimals"),
        pytest.param("1.005", id="three-decimals-string"),
        pytest.param("", id="empty"),
        pytest.param("abc", id="not-a-number"),
        pytest.param(Decimal("NaN"), id="nan"),
        pytest.param(None, id="none"),
        pytest.param([1], id="list"),
    ],
)
def test_to_minor_refuses_what_is_not_an_exact_amount(value):
    with pytest.raises(MoneyFormatError):
        to_minor(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("AED 1.90", ("AED", 190), id="fee"),
        pytest.param("AED 0.10", ("AED", 10), id="vat"),
        pytest.param("AED 1,234.50", ("AED", 123450), id="thousands"),
        pytest.param("aed 2", ("AED", 200), id="lower-case-whole"),
    ],
)
def test_parse_money_string(text, expected):
    assert parse_money_string(text) == expected


@pytest.mark.parametrize("text", ["1.90", "AED", "AED1.90", "AED 1.905", "AE 1.90", 1.9, None])
def test_parse_money_string_refuses_other_shapes(text):
    with pytest.raises(MoneyFormatError):
        parse_money_string(text)


def test_to_decimal_and_format_minor():
    assert to_decimal(18491) == Decimal("184.91")
    assert str(to_decimal(-169)) == "-1.69"
    assert format_minor(5) == "0.05"
    with pytest.raises(MoneyFormatError):
        to_decimal(1.5)


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        pytest.param(5, 2, 3, id="half-up"),
        pytest.param(-5, 2, -3, id="half-away-from-zero"),
        pytest.param(4, 3, 1, id="down"),
        pytest.param(5, 3, 2, id="up"),
        pytest.param(0, 7, 0, id="zero"),
        pytest.param(10**30 + 1, 2, 5 * 10**29 + 1, id="big-ints-exact"),
    ],
)
def test_div_round_half_up(numerator, denominator, expected):
    assert div_round_half_up(numerator, denominator) == expected


def test_div_round_half_up_needs_positive_denominator():
    with pytest.raises(ValueError):
        div_round_half_up(1, 0)


@pytest.mark.parametrize(
    ("gross", "vat"),
    [
        pytest.param(10500, 500, id="c1-105.00"),
        pytest.param(5250, 250, id="c2-52.50"),
        pytest.param(3648, 174, id="c4-36.48-rounds-up"),
        pytest.param(2100, 100, id="c5-21.00"),
        pytest.param(10, 0, id="tiny-rounds-down"),
        pytest.param(21, 1, id="exactly-1"),
    ],
)
def test_vat_inside_worked_example(gross, vat):
    assert vat_inside(gross, Decimal("0.05")) == vat


def test_vat_rate_fraction_is_exact_and_bounded():
    assert vat_rate_fraction(Decimal("0.05")) == (1, 20)
    assert vat_rate_fraction("0.125") == (1, 8)
    for bad in ("1", "-0.01"):
        with pytest.raises(ValueError):
            vat_rate_fraction(bad)
