"""Report periods: a month, a quarter, a year or a custom range of days, in the site's time zone.

A period is a range of whole days ``[first_day, last_day]`` in one time zone; its instants are
``[start, end)`` from midnight of the first day to midnight after the last. The monthly trend
of a report covers the twelve months that end with the period's last month, or every month of
a longer period.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo


class Kind:
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    CUSTOM = "custom"


TREND_MONTHS = 12


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(day: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` after (or before) ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=zone)


@dataclass(frozen=True)
class Period:
    kind: str
    first_day: dt.date
    last_day: dt.date  # included
    zone: ZoneInfo

    @classmethod
    def month(cls, year: int, month: int, zone: ZoneInfo) -> "Period":
        first = dt.date(year, month, 1)
        return cls(Kind.MONTH, first, add_months(first, 1) - dt.timedelta(days=1), zone)

    @classmethod
    def quarter(cls, year: int, quarter: int, zone: ZoneInfo) -> "Period":
        first = dt.date(year, 3 * (quarter - 1) + 1, 1)
        return cls(Kind.QUARTER, first, add_months(first, 3) - dt.timedelta(days=1), zone)

    @classmethod
    def year(cls, year: int, zone: ZoneInfo) -> "Period":
        return cls(Kind.YEAR, dt.date(year, 1, 1), dt.date(year, 12, 31), zone)

    @classmethod
    def custom(cls, first_day: dt.date, last_day: dt.date, zone: ZoneInfo) -> "Period":
        if last_day < first_day:
            raise ValueError(f"the period ends ({last_day}) before it starts ({first_day})")
        return cls(Kind.CUSTOM, first_day, last_day, zone)

    @property
    def start(self) -> dt.datetime:
        return midnight(self.first_day, self.zone)

    @property
    def end(self) -> dt.datetime:
        """Midnight after the last day: the first instant outside the period."""
        return midnight(self.last_day + dt.timedelta(days=1), self.zone)

    @property
    def label(self) -> str:
        if self.kind == Kind.MONTH:
            return f"{self.first_day:%Y-%m}"
        if self.kind == Kind.QUARTER:
            return f"{self.first_day.year} Q{(self.first_day.month - 1) // 3 + 1}"
        if self.kind == Kind.YEAR:
            return str(self.first_day.year)
        return f"{self.first_day} – {self.last_day}"

    @property
    def slug(self) -> str:
        """The label as a file-name part."""
        if self.kind == Kind.CUSTOM:
            return f"{self.first_day}_{self.last_day}"
        return self.label.replace(" ", "-")

    @property
    def is_whole_months(self) -> bool:
        """True when the period starts on a first and ends on a last day of a month."""
        return self.first_day.day == 1 and (self.last_day + dt.timedelta(days=1)).day == 1

    def months(self) -> list[dt.date]:
        """First days of the months the period touches."""
        months, current = [], month_start(self.first_day)
        while current <= self.last_day:
            months.append(current)
            current = add_months(current, 1)
        return months

    def trend_months(self) -> list[dt.date]:
        """The months of the trend charts: the twelve ending with the period's last month, or all of a
        longer period's."""
        last = month_start(self.last_day)
        first = min(month_start(self.first_day), add_months(last, -(TREND_MONTHS - 1)))
        months, current = [], first
        while current <= last:
            months.append(current)
            current = add_months(current, 1)
        return months

    def month_bounds(self) -> list[dt.datetime]:
        """Instants that cut the trend into months: ``len(trend_months()) + 1`` midnights."""
        months = self.trend_months()
        return [midnight(m, self.zone) for m in months] + [midnight(add_months(months[-1], 1), self.zone)]


def current_month(zone: ZoneInfo, now: dt.datetime | None = None) -> Period:
    today = (now or dt.datetime.now(dt.timezone.utc)).astimezone(zone).date()
    return Period.month(today.year, today.month, zone)
