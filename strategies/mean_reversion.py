"""Mean reversion on the z-score of the close against its trailing mean.

`z[t] = (close[t] - mean) / std` over the trailing `window` bars ending at t. Enter long when
`z <= -entry_z`, short when `z >= entry_z` (flat instead of short unless `allow_short`), exit to
flat when `|z| <= exit_z`; in between the previous position is kept (hysteresis, computed vectorised by
forward-filling the entry/exit events). Warm-up: the first `window - 1` bars are 0.
`window` is in bars (the default 20 is about a month of daily bars).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from strategies._common import (
    as_positions,
    check_bool,
    check_less,
    check_range,
    check_window,
    close_prices,
)

__all__ = ["DEFAULTS", "positions", "zscore"]

NAME = "mean_reversion"

DEFAULTS: dict[str, Any] = {
    "window": 20,  # bars in the trailing mean and standard deviation
    "entry_z": 1.0,  # |z| at or beyond which a position is opened (standard deviations)
    "exit_z": 0.25,  # |z| at or within which the position is closed (< entry_z)
    "allow_short": True,  # short when z >= entry_z (else only long trades)
}


def zscore(close: pd.Series, window: int) -> pd.Series:
    """(close - trailing mean) / trailing std (ddof=1) over `window` bars; NaN in warm-up and
    where the window is flat."""
    mean = close.rolling(window, min_periods=window).mean()
    std = close.rolling(window, min_periods=window).std()
    return (close - mean) / std.where(std > 0)


def positions(
    prices: pd.DataFrame,
    window: int = DEFAULTS["window"],
    entry_z: float = DEFAULTS["entry_z"],
    exit_z: float = DEFAULTS["exit_z"],
    allow_short: bool = DEFAULTS["allow_short"],
) -> pd.Series:
    """+1 after z <= -entry_z, -1 after z >= entry_z, 0 after |z| <= exit_z; held in between."""
    close = close_prices(prices, NAME)
    window = check_window(NAME, "window", window, minimum=2)
    entry = check_range(NAME, "entry_z", entry_z, 0.0, np.inf)
    exit_ = check_range(NAME, "exit_z", exit_z, 0.0, np.inf)
    short = check_bool(NAME, "allow_short", allow_short)
    check_less(NAME, "exit_z", exit_, "entry_z", entry)
    z = zscore(close, window).to_numpy()
    event = np.select(
        [z <= -entry, z >= entry, np.abs(z) <= exit_],
        [1.0, -1.0 if short else 0.0, 0.0],
        default=np.nan,
    )
    return as_positions(pd.Series(event, index=close.index).ffill(), NAME)
