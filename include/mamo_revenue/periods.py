"""Periods: one calendar day, or one ISO week Monday–Sunday, in the company's own time zone.

Mamo's ``created_date`` carries no zone and is read as wall-clock time in the company's zone, so
a period is a half-open range of *local naive* datetimes ``[start, end)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


_DAY = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")
_WEEK = re.compile(r"^(\d{4})-?W(\d{2})$")


@dataclass(frozen=True, order=True)
class Period:
    """A closed calendar range ``first_day .. last_day`` (inclusive) of one frequency."""

    first_day: date
    frequency: Frequency

    def __post_init__(self):
        if self.frequency is Frequency.WEEKLY and self.first_day.isoweekday() != 1:
            raise ValueError(f"a weekly period starts on a Monday, not {self.first_day}")

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=0 if self.frequency is Frequency.DAILY else 6)

    @property
    def end_day(self) -> date:
        """The first day after the period (exclusive bound)."""
        return self.last_day + timedelta(days=1)

    @property
    def key(self) -> str:
        """``20261120`` for a day, ``2026W47`` for an ISO week: the period part of the reference."""
        if self.frequency is Frequency.DAILY:
            return self.first_day.strftime("%Y%m%d")
        year, week, _ = self.first_day.isocalendar()
        return f"{year}W{week:02d}"

    @property
    def label(self) -> str:
        """Human form: ``2026-11-20`` or ``2026-W47``."""
        if self.frequency is Frequency.DAILY:
            return self.first_day.isoformat()
        year, week, _ = self.first_day.isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def local_start(self) -> datetime:
        return datetime.combine(self.first_day, time.min)

    @property
    def local_end(self) -> datetime:
        return datetime.combine(self.end_day, time.min)

    def contains(self, local: datetime) -> bool:
        return self.local_start <= local < self.local_end

    def next(self) -> Period:
        return Period(self.end_day, self.frequency)

    def previous(self) -> Period:
        step = 1 if self.frequency is Frequency.DAILY else 7
        return Period(self.first_day - timedelta(days=step), self.frequency)

    def __str__(self) -> str:
        return self.label

    # --- constructors -------------------------------------------------------------------------

    @classmethod
    def containing(cls, day: date | datetime, frequency: Frequency | str) -> Period:
        frequency = Frequency(frequency)
        if isinstance(day, datetime):
            day = day.date()
        if frequency is Frequency.WEEKLY:
            day = day - timedelta(days=day.isoweekday() - 1)
        return cls(day, frequency)

    @classmethod
    def parse(cls, text: str, frequency: Frequency | str | None = None) -> Period:
        """``2026-11-20`` / ``20261120`` (a day) or ``2026-W47`` / ``2026W47`` (a week).

        A date given for a weekly company means the week that contains it.
        """
        text = text.strip()
        if match := _WEEK.match(text):
            if frequency is not None and Frequency(frequency) is not Frequency.WEEKLY:
                raise ValueError(f"{text!r} is a week, but the company syncs {Frequency(frequency)}")
            first = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
            return cls(first, Frequency.WEEKLY)
        if match := _DAY.match(text):
            day = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
            return cls.containing(day, frequency or Frequency.DAILY)
        raise ValueError(f"{text!r} is not a period (use YYYY-MM-DD or YYYY-Www)")

    @classmethod
    def last_complete_before(cls, instant: datetime, tz: str, frequency: Frequency | str) -> Period:
        """The latest period that has fully ended at ``instant`` (an aware datetime) in zone ``tz``."""
        local = instant.astimezone(ZoneInfo(tz))
        return cls.containing(local.date(), frequency).previous()

    @classmethod
    def from_interval(cls, start: datetime, end: datetime, tz: str, frequency: Frequency | str) -> Period:
        """The period of a scheduled run's data interval (aware datetimes).

        The interval must be exactly one period in the company's zone; anything else is a
        scheduling mistake worth failing loudly on.
        """
        zone = ZoneInfo(tz)
        local_start, local_end = start.astimezone(zone), end.astimezone(zone)
        period = cls.containing(local_start.date(), frequency)
        if local_start.replace(tzinfo=None) != period.local_start or local_end.replace(tzinfo=None) != period.local_end:
            raise ValueError(
                f"data interval {start.isoformat()} – {end.isoformat()} is not one {Frequency(frequency)} "
                f"period in {tz}"
            )
        return period

    def iter_until(self, last: Period):
        period = self
        while period <= last:
            yield period
            period = period.next()
