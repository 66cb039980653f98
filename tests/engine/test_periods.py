"""periods: one day or one ISO week in the company's zone, as local naive bounds."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from mamo_revenue.periods import Frequency, Period

DAY = Period(date(2026, 11, 20), Frequency.DAILY)
WEEK = Period(date(2026, 11, 16), Frequency.WEEKLY)


@pytest.mark.parametrize(
    ("period", "key", "label", "last_day"),
    [
        pytest.param(DAY, "20261120", "2026-11-20", date(2026, 11, 20), id="day"),
        pytest.param(WEEK, "2026W47", "2026-W47", date(2026, 11, 22), id="week"),
        pytest.param(
            Period(date(2026, 12, 28), Frequency.WEEKLY),
            "2026W53",
            "2026-W53",
            date(2027, 1, 3),
            id="week-53-crosses-year",
        ),
        pytest.param(
            Period(date(2027, 12, 27), Frequency.WEEKLY),
            "2027W52",
            "2027-W52",
            date(2028, 1, 2),
            id="iso-year-differs",
        ),
    ],
)
def test_key_label_and_last_day(period, key, label, last_day):
    assert (period.key, period.label, period.last_day) == (key, label, last_day)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        pytest.param(datetime(2026, 11, 20, 0, 0, 0), True, id="first-second"),
        pytest.param(datetime(2026, 11, 20, 23, 59, 59), True, id="last-second"),
        pytest.param(datetime(2026, 11, 21, 0, 0, 0), False, id="next-midnight"),
        pytest.param(datetime(2026, 11, 19, 23, 59, 59), False, id="day-before"),
    ],
)
def test_day_is_half_open(moment, inside):
    assert DAY.contains(moment) is inside
    assert (Period.containing(moment, "daily") == DAY) is inside


def test_containing_a_week_starts_on_monday():
    assert Period.containing(datetime(2026, 11, 22, 23, 59, 59), Frequency.WEEKLY) == WEEK
    assert Period.containing(date(2026, 11, 23), "weekly") == WEEK.next()
    with pytest.raises(ValueError):
        Period(date(2026, 11, 17), Frequency.WEEKLY)


@pytest.mark.parametrize(
    ("text", "frequency", "expected"),
    [
        pytest.param("2026-11-20", None, DAY, id="iso-day"),
        pytest.param("20261120", "daily", DAY, id="key-day"),
        pytest.param("2026-W47", None, WEEK, id="iso-week"),
        pytest.param("2026W47", "weekly", WEEK, id="key-week"),
        pytest.param("2026-11-20", "weekly", WEEK, id="date-in-weekly-company"),
    ],
)
def test_parse(text, frequency, expected):
    assert Period.parse(text, frequency) == expected


@pytest.mark.parametrize("text", ["2026-13-01", "yesterday", "2026-W47x"])
def test_parse_refuses(text):
    with pytest.raises(ValueError):
        Period.parse(text)


def test_parse_refuses_a_week_for_a_daily_company():
    with pytest.raises(ValueError):
        Period.parse("2026-W47", "daily")


def test_last_complete_before_reads_the_instant_in_the_company_zone():
    # 2026-11-20 21:00 UTC is 2026-11-21 01:00 in Dubai: the 20th is the last complete day there.
    instant = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)
    assert Period.last_complete_before(instant, "Asia/Dubai", "daily") == DAY
    assert Period.last_complete_before(instant, "UTC", "daily") == DAY.previous()


def test_from_interval_accepts_exactly_one_period():
    start = datetime(2026, 11, 19, 20, 0, tzinfo=UTC)  # midnight in Dubai
    end = datetime(2026, 11, 20, 20, 0, tzinfo=UTC)
    assert Period.from_interval(start, end, "Asia/Dubai", "daily") == DAY
    with pytest.raises(ValueError):
        Period.from_interval(start, end, "UTC", "daily")


def test_iteration_and_neighbours():
    days = list(DAY.iter_until(Period(date(2026, 11, 22), Frequency.DAILY)))
    assert [p.key for p in days] == ["20261120", "20261121", "20261122"]
    assert DAY.next().previous() == DAY
    assert WEEK.previous().first_day == date(2026, 11, 9)
    assert DAY.local_end == datetime(2026, 11, 21)
