"""Volatility targeting: buy and hold scaled to a target annual volatility, capped at 1.

`position[t] = min(target_vol / vol[t], max_position)`, so that the trailing realised
volatility of the position matches the target.

`vol[t]` is the standard deviation of log returns per bar over the `window` bars ending at t,
annualised with the prices' bars per year (`fin_meta.frequency.bars_per_year_of`: sqrt(252) for
daily bars, sqrt(12) for monthly). Always long (in [0, max_position], max_position <= 1).
Warm-up: the first `window` bars are 0. `window` is in bars (default 21: a month of daily bars).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from fin_meta.frequency import bars_per_year_of
from strategies._common import annualised_vol, as_positions, check_range, check_window, close_prices

__all__ = ["DEFAULTS", "positions"]

NAME = "vol_target"

DEFAULTS: dict[str, Any] = {
    "target_vol": 0.15,  # target annualised volatility (fraction: 0.15 = 15%)
    "window": 21,  # bars of trailing realised volatility
    "max_position": 1.0,  # cap on the exposure (fraction of equity, <= 1)
}


def positions(
    prices: pd.DataFrame,
    target_vol: float = DEFAULTS["target_vol"],
    window: int = DEFAULTS["window"],
    max_position: float = DEFAULTS["max_position"],
) -> pd.Series:
    """min(target_vol / trailing annualised vol, max_position); 0 in warm-up."""
    close = close_prices(prices, NAME)
    target_vol = check_range(NAME, "target_vol", target_vol, 1e-6, 10.0)
    window = check_window(NAME, "window", window, minimum=2)
    cap = check_range(NAME, "max_position", max_position, 0.0, 1.0)
    vol = annualised_vol(close, window, bars_per_year_of(prices))
    raw = (target_vol / vol.where(vol > 0)).clip(upper=cap)
    # a flat window (zero volatility) gets the cap: no measurable risk
    raw = raw.where(~((vol == 0) & vol.notna()), cap)
    return as_positions(raw, NAME)
