"""Helpers shared by the rule strategies: input checks and the output convention.

Every strategy returns a float64 Series on the prices index, named after the strategy, with
values in [-1, 1] and 0 during its warm-up (DESIGN.md: positions[t] is decided with data up to
and including bar t's close and held until close t+1).

Windows and lookbacks are in bars, whatever the bar frequency: the built-in defaults are chosen
for daily bars (a 126-bar momentum lookback is six months of daily bars, ten years of monthly
ones), so give them in bars for other frequencies. Anything annualised uses the prices' bars per
year (`fin_meta.frequency.bars_per_year_of`: recorded by `load_prices`, else inferred).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fin_meta.errors import DataError, StrategyError

__all__ = [
    "close_prices",
    "as_positions",
    "check_window",
    "check_range",
    "check_bool",
    "check_less",
    "annualised_vol",
]


def close_prices(prices: pd.DataFrame, strategy: str) -> pd.Series:
    """The `close` column of a prices frame as float64; DataError when it cannot be used."""
    if not isinstance(prices, pd.DataFrame) or "close" not in prices.columns:
        raise DataError(
            f"strategy {strategy!r} needs a prices DataFrame with a 'close' column "
            "(use fin_meta.load_prices)"
        )
    close = prices["close"].astype("float64")
    if not np.isfinite(close.to_numpy()).all() or (close <= 0).any():
        raise DataError(
            f"strategy {strategy!r}: column 'close' has NaN, infinite or non-positive values "
            "(validate the prices with fin_meta.load_prices)"
        )
    return close


def check_window(strategy: str, key: str, value: object, minimum: int = 1) -> int:
    """An integer window (bars) >= `minimum`, or StrategyError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise StrategyError(
            f"strategy {strategy!r}: parameter {key!r} must be an integer >= {minimum} (bars), "
            f"got {value!r}"
        )
    return int(value)


def check_range(strategy: str, key: str, value: object, low: float, high: float) -> float:
    """A real number in [low, high], or StrategyError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise StrategyError(f"strategy {strategy!r}: parameter {key!r} must be a number, got {value!r}")
    if not low <= float(value) <= high:
        raise StrategyError(
            f"strategy {strategy!r}: parameter {key!r} must be in [{low}, {high}], got {value!r}"
        )
    return float(value)


def check_bool(strategy: str, key: str, value: object) -> bool:
    """A true/false flag, or StrategyError naming the parameter."""
    if not isinstance(value, (bool, np.bool_)):
        raise StrategyError(f"strategy {strategy!r}: parameter {key!r} must be true or false, got {value!r}")
    return bool(value)


def check_less(strategy: str, small_key: str, small: float, big_key: str, big: float) -> None:
    """StrategyError unless parameter `small_key` is smaller than parameter `big_key`."""
    if not small < big:
        raise StrategyError(
            f"strategy {strategy!r}: {small_key!r} ({small}) must be smaller than {big_key!r} ({big})"
        )


def annualised_vol(close: pd.Series, window: int, per_year: float) -> pd.Series:
    """Trailing realised volatility of log returns per bar over `window` bars, annualised with
    `per_year` bars per year (252 daily, 12 monthly; fraction, e.g. 0.2 = 20%); NaN until
    `window` returns exist."""
    log_ret = np.log(close).diff()
    return log_ret.rolling(window, min_periods=window).std() * np.sqrt(per_year)


def as_positions(raw: pd.Series, name: str) -> pd.Series:
    """Finish a strategy's raw signal: NaN (warm-up) -> 0, float64, clipped to [-1, 1], named."""
    out = raw.astype("float64").fillna(0.0).clip(-1.0, 1.0)
    out.name = name
    return out
