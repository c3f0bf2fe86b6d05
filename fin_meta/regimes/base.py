"""What every part of `fin_meta.regimes` shares: the WARMUP label, parameter parsing and checks,
the close of a prices frame, and the fit-period mask.

Not in the issue's layout: both detectors use these, so a home of their own keeps them siblings.

Units: `fit_end` is a calendar date (inclusive); windows and minimums are in bars.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd

from fin_meta.errors import ConfigError, DataError
from fin_meta.sources.dates import DateLike, parse_date

__all__ = ["WARMUP", "WARMUP_NAME", "check_int", "parse_params", "close_series", "fit_mask"]

WARMUP = -1
"""The label of bars that cannot be labelled yet (windows not full, threshold not fitted)."""

WARMUP_NAME = "warm-up"
"""Display name of the WARMUP label (-1)."""


def check_int(method: str, key: str, value: Any, minimum: int) -> None:
    """`ConfigError` unless `value` is an integer (not a bool) >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{method}: {key!r} must be an integer >= {minimum}, got {value!r}")


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
