"""Moving-average crossover: long while the fast average is above the slow one.

Simple moving averages of the close over `fast` and `slow` bars, both ending at bar t's close,
so the position at t uses no later data. When the fast average is not above the slow one the
position is flat (or short with `allow_short`). Warm-up: the first `slow - 1` bars (the slow
average is undefined) are 0. `fast` and `slow` are in bars (defaults chosen for daily bars).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strategies._common import as_positions, check_bool, check_less, check_window, close_prices

__all__ = ["DEFAULTS", "positions"]

NAME = "sma_cross"

DEFAULTS: dict[str, Any] = {
    "fast": 20,  # bars in the fast moving average
    "slow": 50,  # bars in the slow moving average (> fast)
    "allow_short": False,  # -1 instead of 0 when fast <= slow
}


def positions(
    prices: pd.DataFrame,
    fast: int = DEFAULTS["fast"],
    slow: int = DEFAULTS["slow"],
    allow_short: bool = DEFAULTS["allow_short"],
) -> pd.Series:
    """+1 where SMA(fast) > SMA(slow), else 0 (or -1 with `allow_short`); 0 in warm-up."""
    close = close_prices(prices, NAME)
    fast = check_window(NAME, "fast", fast)
    slow = check_window(NAME, "slow", slow, minimum=2)
    low = -1.0 if check_bool(NAME, "allow_short", allow_short) else 0.0
    check_less(NAME, "fast", fast, "slow", slow)
    sma_fast = close.rolling(fast, min_periods=fast).mean()
    sma_slow = close.rolling(slow, min_periods=slow).mean()
    raw = pd.Series(np.where(sma_fast > sma_slow, 1.0, low), index=close.index)
    return as_positions(raw.where(sma_slow.notna()), NAME)
