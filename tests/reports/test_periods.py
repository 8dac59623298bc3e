"""Report periods in the site's time zone and the months of the trend."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from reports.periods import Period, add_months, current_month

ZONE = ZoneInfo("Asia/Shanghai")


def test_month_quarter_year_bounds_are_site_midnights():
    march = Period.month(2024, 3, ZONE)
    assert (march.first_day, march.last_day, march.label) == (dt.date(2024, 3, 1), dt.date(2024, 3, 31), "2024-03")
    assert march.start == dt.datetime(2024, 2, 29, 16, tzinfo=dt.timezone.utc)
    assert march.end == dt.datetime(2024, 3, 31, 16, tzinfo=dt.timezone.utc)
    q4 = Period.quarter(2023, 4, ZONE)
    assert (q4.first_day, q4.last_day, q4.label, q4.slug) == (dt.date(2023, 10, 1), dt.date(2023, 12, 31), "2023 Q4",
                                                                "2023-Q4")
    year = Period.year(2024, ZONE)
    assert (year.first_day, year.last_day, year.months()[-1]) == (dt.date(2024, 1, 1), dt.date(2024, 12, 31),
                                                                   dt.date(2024, 12, 1))


def test_daylight_saving_months_have_their_true_length():
    berlin = ZoneInfo("Europe/Berlin")
    march = Period.month(2024, 3, berlin)
    utc = dt.timezone.utc  # Python subtracts two times of one zone as wall clocks; the database gets instants
    assert march.end.astimezone(utc) - march.start.astimezone(utc) == dt.timedelta(days=31) - dt.timedelta(hours=1)


def test_trend_is_twelve_months_ending_with_the_period_or_the_whole_longer_period():
    trend = Period.month(2024, 3, ZONE).trend_months()
    assert (len(trend), trend[0], trend[-1]) == (12, dt.date(2023, 4, 1), dt.date(2024, 3, 1))
    long = Period.custom(dt.date(2021, 5, 20), dt.date(2024, 2, 3), ZONE)
    assert (long.trend_months()[0], len(long.trend_months())) == (dt.date(2021, 5, 1), 34)
    bounds = Period.month(2024, 3, ZONE).month_bounds()
    assert len(bounds) == 13 and bounds[-1] == dt.datetime(2024, 4, 1, tzinfo=ZONE)


def test_custom_range_is_checked():
    with pytest.raises(ValueError, match="ends"):
        Period.custom(dt.date(2024, 3, 2), dt.date(2024, 3, 1), ZONE)
    one_day = Period.custom(dt.date(2024, 3, 2), dt.date(2024, 3, 2), ZONE)
    assert one_day.end - one_day.start == dt.timedelta(days=1) and one_day.label == "2024-03-02 – 2024-03-02"


def test_add_months_and_current_month():
    assert add_months(dt.date(2024, 1, 31), -1) == dt.date(2023, 12, 1)
    assert add_months(dt.date(2024, 11, 5), 14) == dt.date(2026, 1, 1)
    # 23:30 UTC on 31 March is already April in Shanghai.
    assert current_month(ZONE, now=dt.datetime(2024, 3, 31, 23, 30, tzinfo=dt.timezone.utc)).label == "2024-04"
