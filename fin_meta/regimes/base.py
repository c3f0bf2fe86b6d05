"""What every part of `fin_meta.regimes` shares: the WARMUP label, parameter parsing and checks,
the default windows as durations (`resolve_windows`), the close of a prices frame, and the
fit-period mask.

Not in the issue's layout: both detectors use these, so a home of their own keeps them siblings.

Units: `fit_end` is a calendar date (inclusive); windows and minimums are in bars. A window left
at its default (None) is a duration (`DURATIONS` of its params class: a quarter, a month),
converted to bars with the prices' bars per year (`fin_meta.frequency`): 63 daily bars, 13
weekly, 3 monthly for a quarter. A window given explicitly stays in bars.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

import numpy as np
import pandas as pd

from fin_meta.errors import ConfigError, DataError
from fin_meta.frequency import bars_per_year_of, frequency_name, in_bars, span_in_words
from fin_meta.sources.dates import DateLike, parse_date

__all__ = [
    "WARMUP",
    "WARMUP_NAME",
    "Duration",
    "check_int",
    "check_windows",
    "parse_params",
    "resolve_windows",
    "close_series",
    "fit_mask",
]

WARMUP = -1
"""The label of bars that cannot be labelled yet (windows not full, threshold not fitted)."""

WARMUP_NAME = "warm-up"
"""Display name of the WARMUP label (-1)."""


def check_int(method: str, key: str, value: Any, minimum: int) -> None:
    """`ConfigError` unless `value` is an integer (not a bool) >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{method}: {key!r} must be an integer >= {minimum}, got {value!r}")


Duration = tuple[float, int]
"""A default window as (years, fewest bars): `(0.25, 2)` is a quarter, at least 2 bars."""


def check_windows(method: str, params: Any, durations: Mapping[str, Duration]) -> None:
    """`ConfigError` unless every window of `durations` in `params` is None (its default
    duration) or an integer >= its fewest bars."""
    for key, (_, minimum) in durations.items():
        value = getattr(params, key)
        if value is not None:
            check_int(method, key, value, minimum)


def resolve_windows(params: Any, method: str, close: pd.Series) -> Any:
    """`params` with every window left at None set to its duration (`type(params).DURATIONS`)
    in bars of `close` (bars per year: `fin_meta.frequency.bars_per_year_of`); windows given
    stay in bars. A window as long as the bars given or longer is a one-line `DataError` in
    time units: `trend_vol: monthly bars: trend_window=63 is 5.25 years, longer than the 48 bars given;
    give a window in bars, e.g. trend_window=3`."""
    per_year = bars_per_year_of(close)
    name = frequency_name(per_year)
    unit = name if name.endswith("bars/year") else f"{name} bars"
    n_bars = len(close)
    resolved: dict[str, int] = {}
    for key, (years, minimum) in type(params).DURATIONS.items():
        given = getattr(params, key)
        default = in_bars(years, per_year, minimum)
        bars = default if given is None else int(given)
        if bars >= n_bars:
            what = f"{key}={bars}" if given is not None else f"the default {key}={bars}"
            than = "longer than" if bars > n_bars else "as long as"
            fix = (
                f"give a window in bars, e.g. {key}={default}"
                if given is not None and default < n_bars
                else f"give more than {bars} bars of prices or a shorter {key} (in bars)"
            )
            raise DataError(
                f"{method}: {unit}: {what} is {span_in_words(bars, per_year)}, "
                f"{than} the {n_bars} bars given; {fix}"
            )
        resolved[key] = bars
    return replace(params, **resolved)


def parse_params(cls: type, method: str, params: dict[str, Any]) -> Any:
    """Build and check a params dataclass; an unknown key -> ConfigError listing valid ones."""
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(
            f"regime method {method!r} has no parameter(s) {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(valid)}"
        )
    out = cls(**params)
    out.check()
    return out


def close_series(prices: pd.DataFrame) -> pd.Series:
    """The close of a DESIGN.md prices frame as float64; DataError naming what is wrong."""
    if not isinstance(prices, pd.DataFrame) or "close" not in prices.columns:
        raise DataError("regimes: prices must be a DataFrame with a 'close' column (use load_prices)")
    if not isinstance(prices.index, pd.DatetimeIndex) or not prices.index.is_monotonic_increasing:
        raise DataError("regimes: prices need an increasing DatetimeIndex (use load_prices)")
    close = prices["close"].astype("float64")
    bad = ~np.isfinite(close.to_numpy()) | (close.to_numpy() <= 0)
    if bad.any():
        raise DataError(
            f"regimes: column 'close' is NaN or non-positive at {close.index[int(np.argmax(bad))]} "
            "(validate the prices with load_prices)"
        )
    return close


def fit_mask(index: pd.DatetimeIndex, fit_end: DateLike) -> np.ndarray | None:
    """Boolean mask of the bars up to and including `fit_end` (None -> None); a `fit_end`
    that is not a date is the `DataError` of `parse_date`."""
    end = parse_date(fit_end, "fit_end", source="regimes")
    if end is None:
        return None
    if end < index[0]:
        raise DataError(
            f"regimes: fit_end {end.date()} is before the first bar {index[0].date()}; "
            "choose a fit_end inside the prices"
        )
    return np.asarray(index <= end)
