"""Bars per year inferred from the dates: daily, weekly, monthly, intraday, crypto calendars."""

from __future__ import annotations

import pandas as pd
import pytest

from fin_meta.errors import DataError
from fin_meta.frequency import bars_per_year, check_bars_per_year, frequency_name, span_in_words


@pytest.mark.parametrize(
    ("index", "expected", "name"),
    [
        (pd.bdate_range("2020-01-01", periods=300), 252.0, "daily"),
        (pd.date_range("2020-01-01", periods=300, freq="D"), 365.0, "daily"),  # crypto: weekends trade
        (pd.date_range("2020-01-03", periods=120, freq="W-FRI"), 52.0, "weekly"),
        (pd.date_range("2015-01-31", periods=60, freq="ME"), 12.0, "monthly"),
        (pd.date_range("2000-03-31", periods=40, freq="QE"), 4.0, "quarterly"),
        (pd.date_range("1990-12-31", periods=30, freq="YE"), 1.0, "yearly"),
    ],
)
def test_calendar_frequencies(index, expected, name):
    assert bars_per_year(index) == expected
    assert frequency_name(expected) == name


def test_intraday_counts_bars_per_session():
    days = pd.bdate_range("2021-03-01", periods=20)
    hourly = pd.DatetimeIndex([d + pd.Timedelta(hours=h) for d in days for h in range(10, 17)])  # 7 bars a day
    assert bars_per_year(hourly) == 7 * 252
    minutes = pd.DatetimeIndex([d + pd.Timedelta(minutes=570 + m) for d in days[:3] for m in range(390)])
    assert bars_per_year(minutes) == 390 * 252
    assert frequency_name(7 * 252.0) == "intraday"


def test_monthly_gaps_do_not_fool_the_median():
    index = pd.date_range("2010-01-31", periods=100, freq="ME").delete([10, 11, 40])  # missing months
    assert bars_per_year(index) == 12.0


def test_checks_and_words():
    assert check_bars_per_year("12") == 12.0
    for bad in (0, -3, "x", float("nan")):
        with pytest.raises(DataError, match="bars per year|not a number"):
            check_bars_per_year(bad)
    with pytest.raises(DataError, match="DatetimeIndex"):
        bars_per_year(pd.RangeIndex(10))
    assert span_in_words(63, 12.0) == "5.25 years"
    assert span_in_words(21, 252.0) == "1 months"


def test_recorded_bars_per_year_wins_and_durations_in_bars():
    from fin_meta.frequency import ATTR, bars_per_year_of, in_bars

    frame = pd.DataFrame({"close": range(50)}, index=pd.bdate_range("2020-01-01", periods=50))
    assert bars_per_year_of(frame) == 252.0
    frame.attrs[ATTR] = 365
    assert bars_per_year_of(frame) == 365.0
    assert in_bars(0.25, 252) == 63 and in_bars(1 / 12, 252) == 21 and in_bars(1 / 12, 12) == 1
    assert in_bars(0.25, 1, minimum=2) == 2
