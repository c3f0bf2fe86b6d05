"""Shared fixtures for the env tests: seeded random-walk prices (no tests here)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_prices(n_bars: int, seed: int, vol: float = 0.015, start: str = "2001-01-01") -> pd.DataFrame:
    """A valid prices frame: geometric random walk close, OHLC around it, random volume."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0002, vol, n_bars)))
    spread = np.abs(rng.normal(0.0, vol, n_bars))
    index = pd.bdate_range(start, periods=n_bars, name="date")
    return pd.DataFrame(
        {
            "open": close * (1 + rng.normal(0, vol / 3, n_bars)),
            "high": close * (1 + spread),
            "low": close * (1 - spread),
            "close": close,
            "volume": rng.uniform(1e5, 5e5, n_bars),
        },
        index=index,
    )


def perturb_after(prices: pd.DataFrame, bar: int, seed: int) -> pd.DataFrame:
    """A copy whose prices and volumes after `bar` are scrambled (bars <= `bar` unchanged)."""
    rng = np.random.default_rng(seed)
    out = prices.copy()
    n = len(out) - bar - 1
    factor = np.exp(rng.normal(0.0, 0.2, n))
    for column in ("open", "high", "low", "close"):
        out.iloc[bar + 1 :, out.columns.get_loc(column)] *= factor
    out.iloc[bar + 1 :, out.columns.get_loc("volume")] *= rng.uniform(0.1, 10.0, n)
    return out


def action_sequence(n_steps: int, seed: int) -> np.ndarray:
    """Targets in [-1, 1] with holds, flips (+1 <-> -1), flat bars and partial positions."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, 4, n_steps)
    partial = rng.uniform(-1.0, 1.0, n_steps)
    flips = np.where(np.arange(n_steps) % 2 == 0, 1.0, -1.0)
    actions = np.select([kinds == 0, kinds == 1, kinds == 2], [partial, flips, 0.0], default=np.nan)
    # kind 3: hold the previous target
    return pd.Series(actions).ffill().fillna(0.0).to_numpy()
