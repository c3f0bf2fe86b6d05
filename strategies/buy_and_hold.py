"""Buy and hold: a constant exposure from the first bar on (no warm-up).

The benchmark every other strategy is compared with. `exposure` is the fraction of equity held
long (negative = short), in [-1, 1].
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from strategies._common import as_positions, check_range, close_prices

__all__ = ["DEFAULTS", "positions"]

NAME = "buy_and_hold"

DEFAULTS: dict[str, Any] = {
    "exposure": 1.0,  # fraction of equity held at every bar, in [-1, 1]
}


def positions(prices: pd.DataFrame, exposure: float = DEFAULTS["exposure"]) -> pd.Series:
    """Target exposure `exposure` at every bar (float64 Series on the prices index)."""
    close = close_prices(prices, NAME)
    level = check_range(NAME, "exposure", exposure, -1.0, 1.0)
    return as_positions(pd.Series(level, index=close.index), NAME)
