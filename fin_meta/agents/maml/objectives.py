"""MAML's trading objectives: what the inner loop and the outer step maximise, for per-task
parameters on a rollout `Batch`. Torch only.

Every bar's net log return g (costs included, whatever `env_config.reward` says) is scored as
the mean-variance utility `g - risk_aversion/2 * g^2`. `estimator="pathwise"` (default): the
exact gradient of the window's mean utility with respect to the deterministic positions (a
trader's positions do not move prices, so the return is a known differentiable function of
them; observations are the rollout's); the inner objective is divided by the support window's
return volatility (so one step size suits calm and volatile regimes). `estimator="score"`:
REINFORCE with a per-bar baseline over the E sampled rollouts of each task.

Suffixes: M tasks, E rollouts per task, T bars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from fin_meta.agents.maml.config import MAMLConfig
from fin_meta.agents.maml.core import (
    Params,
    PolicyMLP,
    gaussian_log_prob,
    pathwise_log_returns,
    policy_means,
    score_surrogate,
    squash,
)
from fin_meta.agents.maml.rollout import Batch
from fin_meta.envs.config import EnvConfig

__all__ = ["TradingObjectives", "VOL_FLOOR"]

VOL_FLOOR = 1e-4
"""Floor of the support window's per-bar return std (a fraction) in the inner objective."""


@dataclass(frozen=True, eq=False)
class TradingObjectives:
    """The objectives of `policy` (evaluated with per-task parameters) under the agent's env
    settings (costs, position bounds) and MAML settings (risk aversion, reward scale,
    estimator). Returns are per-bar net log returns (fractions)."""

    policy: PolicyMLP
    env_config: EnvConfig
    hparams: MAMLConfig

    def squash(self, u: torch.Tensor) -> torch.Tensor:
        """Target positions (fraction of equity) of unsquashed actions `u`."""
        return squash(u, self.env_config.max_position, self.env_config.allow_short)

    def log_returns(self, params_m: Params, batch: Batch) -> torch.Tensor:
        """Per-bar net log returns [M, E, T] of the deterministic policies on the batch's bars."""
        pos = self.squash(policy_means(self.policy, params_m, batch.obs))
        start = torch.zeros(pos.shape[:-1], dtype=torch.float64, device=pos.device)
        return pathwise_log_returns(pos, batch.r_next, self.env_config.cost, start)

    def executed_log_returns(self, batch: Batch) -> torch.Tensor:
        """Net log returns [M, E, T] the batch's executed positions earned (the env's rewards)."""
        start = torch.zeros(batch.positions.shape[:-1], dtype=torch.float64, device=batch.positions.device)
        return pathwise_log_returns(batch.positions, batch.r_next, self.env_config.cost, start).float()

    def utility(self, g: torch.Tensor) -> torch.Tensor:
        """Per-bar mean-variance utility of net log returns `g`: g - risk_aversion/2 * g^2."""
        return g - 0.5 * self.hparams.risk_aversion * g * g

    def mean_log_return(self, params_m: Params, batch: Batch) -> torch.Tensor:
        """Mean per-bar net log return [M] of the deterministic policies on the batch's bars."""
        return self.log_returns(params_m, batch).mean(dim=(1, 2))

    def mean_utility(self, params_m: Params, batch: Batch) -> torch.Tensor:
        """Mean per-bar utility [M] of the deterministic policies on the batch's bars."""
        return self.utility(self.log_returns(params_m, batch)).mean(dim=(1, 2))

    def score(self, params_m: Params, batch: Batch) -> torch.Tensor:
        """REINFORCE surrogate [M] of the batch's sampled actions under `params_m` (utility of
        the executed returns, scaled by `reward_scale`)."""
        mean = policy_means(self.policy, params_m, batch.obs)
        log_std = params_m["log_std"].view(-1, 1, 1)
        rewards = self.utility(self.executed_log_returns(batch)) * self.hparams.reward_scale
        return score_surrogate(gaussian_log_prob(batch.u, mean, log_std), rewards)

    def inner(self, batch: Batch) -> Callable[[Params], torch.Tensor]:
        """The inner-loop objective on a support `batch`: per-task parameters -> [M] values
        (pathwise: mean utility / the support window's return volatility)."""
        if self.hparams.estimator == "score":
            return lambda p: self.score(p, batch)
        vol = batch.r_next[:, 0].std(dim=-1).clamp_min(VOL_FLOOR)  # [M]
        return lambda p: self.mean_utility(p, batch) / vol

    def outer(self, params_m: Params, batch: Batch) -> torch.Tensor:
        """The outer objective [M] of adapted parameters on a query `batch` (pathwise: mean
        utility x `reward_scale`)."""
        if self.hparams.estimator == "score":
            return self.score(params_m, batch)
        return self.mean_utility(params_m, batch) * self.hparams.reward_scale
