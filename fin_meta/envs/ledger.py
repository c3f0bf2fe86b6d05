"""The accounting of one step, shared by both environments (numpy or torch via `xp`).

DESIGN.md: the target w decided at close t is held from close t to close t+1. Trading from the
drifted weight d to w costs `cost * |w - d|` of equity (cost = fees + slippage), then the bar
return r = close[t+1] / close[t] - 1 applies:

    growth  = (1 - cost * |w - d|) * (1 + w * r)        equity[t+1] = equity[t] * growth
    drifted = w * (1 + r) / (1 + w * r)                  the weight held into decision t+1

A step with growth <= 0 ruins the account: the drifted weight is then 0.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["ScalarOps", "trade"]


class ScalarOps:
    """The `xp` namespace for plain Python floats (what `TradingEnv` steps with): the same
    `where`, `log` and `clip` calls that numpy and torch answer."""

    @staticmethod
    def where(condition: bool, a: float, b: float) -> float:
        return a if condition else b

    @staticmethod
    def log(x: float) -> float:
        return math.log(x)

    @staticmethod
    def clip(x: float, low: float | None, high: float | None) -> float:
        x = x if low is None else max(x, low)
        return x if high is None else min(x, high)


def trade(drifted: Any, target: Any, ret: Any, cost: float, xp: Any) -> tuple[Any, Any, Any]:
    """One step of accounting (floats, numpy arrays or torch tensors; `xp` = ScalarOps, numpy or
    torch): returns (growth, new drifted weight, traded = |target - drifted|)."""
    traded = abs(target - drifted)
    hold = 1.0 + target * ret
    growth = (1.0 - cost * traded) * hold
    alive = growth > 0.0
    new_drifted = xp.where(alive, target * (1.0 + ret) / xp.where(alive, hold, 1.0), 0.0)
    return growth, new_drifted, traded
