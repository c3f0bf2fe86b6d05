"""The oracle of the controlled benchmark: it knows the true regime of every bar of a
`synthetic:regimes` path and plays that regime's best policy.

It is the ceiling a meta-agent is measured against (issue 4: a meta agent should reach >= 70 % of
the oracle's Sharpe). Causal in prices: the position at bar t uses the return of bar t
(close[t-1] -> close[t]) and the true label of bar t, never a later price.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from fin_meta.errors import DataError, StrategyError
from fin_meta.sources.synthetic import RegimeSpec, regime_specs

__all__ = ["oracle_positions", "POLICIES"]

POLICIES: tuple[str, ...] = ("follow", "fade", "long", "short", "flat")
"""`RegimeSpec.best_policy` values the oracle knows: hold the sign of the last return, its
opposite, a steady long, a steady short, or nothing."""


def _specs(regimes: Mapping[int, RegimeSpec] | Sequence[RegimeSpec] | str | None) -> dict[int, RegimeSpec]:
    specs = regime_specs(regimes)
    unknown = {s.name: s.best_policy for s in specs if s.best_policy not in POLICIES}
    if unknown:
        raise StrategyError(f"the oracle does not know the best_policy of regimes {unknown}; "
                            f"use one of {list(POLICIES)}")
    return {int(s.label): s for s in specs}


def oracle_positions(
    prices: pd.DataFrame,
    labels: pd.Series,
    regimes: Mapping[int, RegimeSpec] | Sequence[RegimeSpec] | str | None = None,
    *,
    max_position: float = 1.0,
    long_position: float | None = None,
) -> pd.Series:
    """Target positions of the regime-knowing oracle, float64 on the prices' index.

    At bar t with true regime `labels[t]` and last return r[t] = close[t]/close[t-1] - 1:
    `follow` -> `max_position * sign(r[t])`, `fade` -> `-max_position * sign(r[t])`,
    `long` -> `long_position` (default `max_position`), `short` -> `-long_position`, `flat` -> 0.
    `regimes`: the specs or a preset name (default: the default preset). Bar 0 (no return yet) and
    bars whose label is not a known regime (e.g. -1) are flat."""
    if not isinstance(prices, pd.DataFrame) or "close" not in prices:
        raise DataError("oracle_positions needs a prices DataFrame with a 'close' column")
    if not isinstance(labels, pd.Series) or not labels.index.equals(prices.index):
        raise DataError("oracle_positions: labels must be a Series on the prices' index "
                        "(the ground truth of synthetic_regimes for the same path)")
    if max_position <= 0:
        raise StrategyError(f"max_position={max_position} must be > 0")
    hold = max_position if long_position is None else float(long_position)
    if not 0 <= hold <= max_position:
        raise StrategyError(f"long_position={long_position} must lie in [0, max_position={max_position}]")
    specs = _specs(regimes)

    close = prices["close"].to_numpy(np.float64)
    sign = np.zeros(close.size)
    sign[1:] = np.sign(close[1:] / close[:-1] - 1.0)
    lab = labels.to_numpy()
    known = np.isin(lab, list(specs))
    policy = np.full(close.size, "flat", dtype=object)
    for label, spec in specs.items():
        policy[lab == label] = spec.best_policy
    pos = np.select(
        [policy == "follow", policy == "fade", policy == "long", policy == "short"],
        [max_position * sign, -max_position * sign, np.full(close.size, hold), np.full(close.size, -hold)],
        default=0.0,
    )
    pos = np.where(known, pos, 0.0)
    return pd.Series(pos.astype(np.float64), index=prices.index, name="oracle")
