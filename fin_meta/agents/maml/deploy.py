"""MAML's deployment schedule: the decision bars at which the walk-forward re-adapts, and the
`StepPolicy` that trades with the parameters of the latest adaptation. Torch only.

Units: bars (positions in the prices frame); parameters are per-task (leading dimension 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from fin_meta.agents.deploy import Feedback
from fin_meta.agents.maml.config import MAMLConfig
from fin_meta.agents.maml.core import Params, acting_means
from fin_meta.agents.maml.objectives import TradingObjectives
from fin_meta.agents.maml.rollout import select_params
from fin_meta.regimes import detect_regimes

__all__ = ["AdaptedPolicy", "adaptation_points"]


class AdaptedPolicy:
    """Deployment `StepPolicy` for a batch of frames: at decision bar t, row i trades the
    parameters of its latest adaptation completed by close t, `stack[which[i, t - first]]`
    (`stack`: parameter sets along the leading dimension; 0 = the meta-policy theta)."""

    def __init__(self, objectives: TradingObjectives, stack: Params, which: np.ndarray, first: int) -> None:
        self.objectives, self.stack, self.first = objectives, stack, first
        self.which = torch.as_tensor(np.atleast_2d(which), dtype=torch.long, device=next(iter(stack.values())).device)

    @classmethod
    def from_sets(cls, objectives: TradingObjectives, theta: Params, adapted: list[Params | None],
                  points: list[np.ndarray], first: int, n_bars: int) -> AdaptedPolicy:
        """The policy of frames of `n_bars` bars whose re-adaptation bars are `points[i]` and
        parameters after each `adapted[i]` (leading dimension len(points[i]); None when none)."""
        stack, which, offset = [theta], [], 1
        for pts, params in zip(points, adapted, strict=True):
            k = np.searchsorted(pts, np.arange(first, n_bars), side="right")  # adaptations done by bar t
            which.append(np.where(k > 0, offset + k - 1, 0))
            if params is not None:
                stack.append(params)
                offset += len(pts)
        merged = {n: torch.cat([s[n] for s in stack]) for n in theta}
        return cls(objectives, merged, np.stack(which), first)

    def act(self, obs_NO: torch.Tensor, feedback: Feedback) -> torch.Tensor:
        rows = self.which[:, int(feedback.bar[0]) - self.first]
        params = select_params(self.stack, rows)
        n = obs_NO.shape[0]
        actions = self.objectives.actions(acting_means(self.objectives.policy, params, obs_NO.view(n, 1, -1)))
        return actions.reshape(n, *actions.shape[2:])


def adaptation_points(prices: pd.DataFrame, hp: MAMLConfig, first_decision: int) -> np.ndarray:
    """Decision bars at which deployment re-adapts (sorted int64): `first_decision +
    deploy_window`, then every `adapt_every` bars, plus (optionally) bars where the causal
    regime label changes; none when deployment takes no inner step (`deploy_steps == 0`,
    e.g. `adapt=False`)."""
    first, n_bars = first_decision + hp.deploy_window, len(prices)
    if hp.deploy_steps == 0 or first > n_bars - 1:
        return np.zeros(0, dtype=np.int64)
    points = np.arange(first, n_bars, hp.adapt_every, dtype=np.int64)
    if hp.adapt_on_regime_change:
        lab = detect_regimes(prices, method=hp.regime_method, causal=True).to_numpy()
        change = np.flatnonzero((lab[1:] != lab[:-1]) & (lab[1:] >= 0)) + 1
        points = np.union1d(points, change[change >= first])
    return points
