"""Time-series momentum: hold the sign of the trailing return.

The trailing return is `close[t - skip] / close[t - lookback] - 1` (`skip` bars of the most
recent history can be left out, as in 12-1 momentum); long when it is positive, short when it is
negative (flat instead of short unless `allow_short`), flat when it is exactly 0. Warm-up: the
first `lookback` bars are 0. `lookback` and `skip` are in bars (the default 126 is six months
of daily bars; give fewer for weekly or monthly bars).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strategies._common import as_positions, check_bool, check_less, check_window, close_prices

__all__ = ["DEFAULTS", "positions"]

NAME = "momentum"

DEFAULTS: dict[str, Any] = {
    "lookback": 126,  # bars of trailing return (about six months)
    "skip": 0,  # most recent bars left out of the trailing return (< lookback)
    "allow_short": True,  # short when the trailing return is negative (else flat)
}


def positions(
    prices: pd.DataFrame,
    lookback: int = DEFAULTS["lookback"],
    skip: int = DEFAULTS["skip"],
    allow_short: bool = DEFAULTS["allow_short"],
) -> pd.Series:
    """sign(close[t-skip] / close[t-lookback] - 1), shorts floored at 0 unless `allow_short`."""
    close = close_prices(prices, NAME)
    lookback = check_window(NAME, "lookback", lookback)
    skip = check_window(NAME, "skip", skip, minimum=0)
    low = -1.0 if check_bool(NAME, "allow_short", allow_short) else 0.0
    check_less(NAME, "skip", skip, "lookback", lookback)
    trailing = close.shift(skip) / close.shift(lookback) - 1.0
    raw = pd.Series(np.sign(trailing.to_numpy()), index=close.index).clip(lower=low)
    return as_positions(raw, NAME)
