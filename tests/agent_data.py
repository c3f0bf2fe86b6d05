"""Small price series for the agent tests: AR(1) returns with a known sign per block."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import lfilter


def ar_blocks(phis: list[float], block: int, *, sigma: float = 0.01, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Prices whose daily log returns follow AR(1) with coefficient `phis[i]` in block i
    (`block` bars each), and labels 1 where phi > 0, 0 otherwise."""
    rng = np.random.default_rng(seed)
    rets = [lfilter([1.0], [1.0, -phi], rng.normal(0.0, sigma, block)) for phi in phis]
    labels = np.concatenate([np.full(block, int(phi > 0)) for phi in phis])
    close = 100.0 * np.exp(np.cumsum(np.concatenate(rets)))
    idx = pd.bdate_range("2000-01-03", periods=len(close), name="date")
    prices = pd.DataFrame(
        {"open": close, "high": close * 1.001, "low": close * 0.999, "close": close, "volume": 1e6},
        index=idx,
    )
    return prices, pd.Series(labels, index=idx, name="regime")


def perturb_after(prices: pd.DataFrame, t: int, seed: int = 1) -> pd.DataFrame:
    """A copy of `prices` whose bars after position `t` are scaled by random factors."""
    out = prices.copy()
    factor = np.exp(np.random.default_rng(seed).normal(0.0, 0.05, len(prices) - t - 1))
    out.iloc[t + 1 :] = out.iloc[t + 1 :].mul(np.c_[factor, factor, factor, factor, np.ones_like(factor)])
    return out


def lag_correlation(positions: np.ndarray, prices: pd.DataFrame, bars: slice) -> float:
    """Correlation between the position at t and the log return of bar t (known at close t)."""
    ret = np.log(prices["close"]).diff().fillna(0.0).to_numpy()
    return float(np.corrcoef(positions[bars], ret[bars])[0, 1])
