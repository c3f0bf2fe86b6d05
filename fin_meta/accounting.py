"""Reference accounting of DESIGN.md in plain numpy, independent of vectorbt.

Timing (DESIGN.md, "Positions and time"): ``positions[t]`` is the target fraction of equity
decided at close t and held from close t to close t+1. With ``r[t] = close[t] / close[t-1] - 1``
(``r[0] = 0``) and ``w[-1] = 0`` (flat before the first bar):

- drifted weight just before the trade at close t: ``d[t] = w[t-1] (1 + r[t]) / (1 + w[t-1] r[t])``
- one-way traded fraction of equity: ``traded[t] = |w[t] - d[t]|``
- equity through close t (1.0 before bar 0's trade):
  ``E[t] = E[t-1] (1 + w[t-1] r[t]) (1 - cost traded[t])``
- strategy return of bar t: ``E[t] / E[t-1] - 1``.

After the trade the held weight is exactly ``w[t]`` of the post-cost equity. Everything is
vectorised (cumulative product), no loop over bars. `fin_meta.backtest.engine.backtest` (vectorbt) and
the environments are tested against this module.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fin_meta.errors import ConfigError, DataError, StrategyError

__all__ = ["SimResult", "bar_returns", "drifted_weights", "ruin_bar", "simulate"]


class SimResult(NamedTuple):
    """Arrays shaped like the positions (bars, or bars x columns).

    returns: strategy return of each bar after costs (fraction).
    equity: equity through each close, starting from 1.0 before bar 0's trade.
    traded: one-way traded fraction of equity at each close, |w[t] - drifted[t]|.
    drifted: weight just before each trade, after the previous position drifted with the price.
    ruined_at: the bar at which equity reached zero (its return is -1; equity, returns, traded
    and drifted are 0 from then on), -1 when never; an int, or one per column.
    """

    returns: np.ndarray
    equity: np.ndarray
    traded: np.ndarray
    drifted: np.ndarray
    ruined_at: int | np.ndarray


def ruin_bar(growth: np.ndarray) -> int | np.ndarray:
    """First bar whose growth factor is <= 0 (equity wiped out), -1 when none; per column."""
    dead = np.asarray(growth) <= 0.0
    first = np.where(dead.any(axis=0), dead.argmax(axis=0), -1)
    return int(first) if first.ndim == 0 else first.astype(np.int64)


def bar_returns(close: np.ndarray) -> np.ndarray:
    """Close-to-close returns ``r[t] = close[t] / close[t-1] - 1`` with ``r[0] = 0``, same shape."""
    close = np.asarray(close, dtype=np.float64)
    r = np.zeros_like(close)
    np.divide(close[1:], close[:-1], out=r[1:])
    r[1:] -= 1.0
    return r


def drifted_weights(r: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Weight just before each trade: ``w[t-1] (1 + r[t]) / (1 + w[t-1] r[t])``, 0 at bar 0.

    ``r`` (bar returns, see `bar_returns`) broadcasts against ``positions``."""
    w = np.asarray(positions, dtype=np.float64)
    w_prev = np.zeros_like(w)
    w_prev[1:] = w[:-1]
    return w_prev * (1.0 + r) / (1.0 + w_prev * r)


def _check_inputs(close: np.ndarray, positions: np.ndarray, cost: float) -> None:
    if close.ndim not in (1, 2) or positions.ndim not in (1, 2):
        raise DataError(
            f"simulate: close and positions must be 1-D (bars) or 2-D (bars x columns), "
            f"got close {close.shape} and positions {positions.shape}"
        )
    if close.shape[0] != positions.shape[0] or close.shape[0] == 0:
        raise DataError(
            f"simulate: close has {close.shape[0]} bars but positions have {positions.shape[0]}; "
            "they must cover the same non-empty bars"
        )
    if close.ndim == 2 and close.shape != positions.shape:
        raise DataError(
            f"simulate: a 2-D close {close.shape} must match the positions' shape {positions.shape} "
            "(or pass one 1-D close for all columns)"
        )
    if not (np.isfinite(close).all() and (close > 0).all()):
        raise DataError("simulate: close must be finite and strictly positive at every bar")
    if not np.isfinite(positions).all():
        raise StrategyError("simulate: positions contain NaN or infinite values; use 0 for flat")
    if not (np.isfinite(cost) and 0.0 <= cost < 1.0):
        raise ConfigError(f"simulate: cost must be a fraction in [0, 1), got {cost}")


def simulate(close: np.ndarray, positions: np.ndarray, cost: float) -> SimResult:
    """Run the DESIGN.md accounting for target weights ``positions`` on prices ``close``.

    close: closing prices, 1-D (bars) or 2-D (bars x columns); a 1-D close is shared by every
    column of 2-D positions. positions: target fraction of equity per bar (negative = short).
    cost: proportional cost per unit of traded equity (fees + slippage, e.g. 1e-3 = 10 bp).
    Ruin: when a bar's growth factor is <= 0 the equity is 0 from that bar on and stays there
    (a short that more than doubles, or leverage), whatever the positions say afterwards.
    """
    close = np.asarray(close, dtype=np.float64)
    w = np.asarray(positions, dtype=np.float64)
    _check_inputs(close, w, float(cost))
    r = bar_returns(close)
    if r.ndim == 1 and w.ndim == 2:
        r = r[:, None]
    drifted = drifted_weights(r, w)
    traded = np.abs(w - drifted)
    w_prev = np.zeros_like(w)
    w_prev[1:] = w[:-1]
    growth = (1.0 + w_prev * r) * (1.0 - cost * traded)
    alive = np.cumsum(growth <= 0.0, axis=0) == 0  # before the ruin bar
    ruined = ~alive
    at_ruin = ruined & (np.cumsum(ruined, axis=0) == 1)
    growth = np.where(alive, growth, np.where(at_ruin, 0.0, 1.0))  # 0 at ruin, then flat at zero
    equity = np.cumprod(growth, axis=0)
    after = ruined & ~at_ruin
    return SimResult(returns=np.where(after, 0.0, growth - 1.0), equity=equity,
                     traded=np.where(after, 0.0, traded), drifted=np.where(after, 0.0, drifted),
                     ruined_at=ruin_bar(np.where(at_ruin, 0.0, 1.0)))
