"""Bar frequency: how many bars make a year, inferred from the dates (DESIGN.md: Annualisation).

Every annualised figure (Sharpe, CAGR, volatility, turnover per year) and every default window
given "in time" (a quarter for the trend, a month for the embargo) needs the number of bars per
year. Daily bars are 252 a year (365 when the bars include weekends, as crypto does), weekly 52,
monthly 12, quarterly 4, yearly 1; intraday bars count the median number of bars per trading day
times the trading days per year. `data.bars_per_year` / `--bars-per-year` overrides it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fin_meta.constants import BARS_PER_YEAR
from fin_meta.errors import DataError

__all__ = ["ATTR", "bars_per_year", "bars_per_year_of", "frequency_name", "check_bars_per_year", "span_in_words", "in_bars"]

ATTR = "bars_per_year"
"""Key of `prices.attrs` where `load_prices` records the frame's bars per year (inferred or given)."""

_DAY = 86_400.0  # seconds
_CALENDAR = (  # (smallest median spacing in days, bars per year) for daily and longer bars
    (300.0, 1.0),
    (80.0, 4.0),
    (25.0, 12.0),
    (5.0, 52.0),
)
_NAMES = {1.0: "yearly", 4.0: "quarterly", 12.0: "monthly", 52.0: "weekly", 252.0: "daily", 365.0: "daily"}


def bars_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year of a strictly increasing `DatetimeIndex`, from the median spacing of its
    dates (see the module docstring). Fewer than 3 bars cannot tell: 252 (daily)."""
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"bars_per_year needs a DatetimeIndex, got {type(index).__name__}")
    if len(index) < 3:
        return float(BARS_PER_YEAR)
    seconds = np.diff(index.as_unit("s").asi8).astype(np.float64)
    spacing_days = float(np.median(seconds)) / _DAY
    for smallest, per_year in _CALENDAR:
        if spacing_days >= smallest:
            return per_year
    weekends = float(np.mean(index.day_of_week >= 5))
    days_per_year = 365.0 if weekends > 0.1 else float(BARS_PER_YEAR)
    if spacing_days >= 0.9:
        return days_per_year
    bars_per_day = float(pd.Series(1, index=index).groupby(index.normalize()).size().median())
    return bars_per_day * days_per_year


def bars_per_year_of(prices: pd.DataFrame | pd.Series) -> float:
    """The bars per year of a prices frame: `prices.attrs["bars_per_year"]` when `load_prices`
    recorded it (an override wins there), else inferred from its index."""
    given = getattr(prices, "attrs", {}).get(ATTR)
    return check_bars_per_year(given) if given is not None else bars_per_year(prices.index)


def in_bars(years: float, per_year: float, minimum: int = 1) -> int:
    """A duration in years as a whole number of bars (at least `minimum`): the default windows
    are durations (a quarter: `in_bars(0.25, 252) == 63`, a month: 21 daily bars, 1 monthly)."""
    return max(int(minimum), int(round(years * per_year)))


def frequency_name(per_year: float) -> str:
    """`daily`, `weekly`, `monthly`, ... `intraday` or `N bars/year` for a bars-per-year value."""
    if per_year in _NAMES:
        return _NAMES[per_year]
    return "intraday" if per_year > 365 else f"{per_year:g} bars/year"


def check_bars_per_year(value: float, name: str = "bars_per_year") -> float:
    """`value` as a float if it is a positive, finite number of bars per year; else `DataError`."""
    try:
        per_year = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name}={value!r} is not a number; give bars per year, e.g. 252 (daily) or 12 (monthly)") from None
    if not np.isfinite(per_year) or per_year <= 0:
        raise DataError(f"{name}={value!r}: bars per year must be a positive number, e.g. 252 (daily) or 12 (monthly)")
    return per_year


def span_in_words(bars: int, per_year: float) -> str:
    """How long `bars` bars last at `per_year` bars a year: `"5.2 years"`, `"3 months"`, `"2 days"`."""
    years = bars / per_year
    if years >= 1:
        return f"{years:.3g} years"
    if years * 12 >= 1:
        return f"{years * 12:.2g} months"
    return f"{years * 365:.2g} days"
