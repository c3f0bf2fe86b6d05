"""MAML's trading objectives: what the inner loop and the outer step maximise, for per-task
parameters on a rollout `Batch`. Torch only.

Every bar's net log return g (costs included, whatever `env_config.reward` says) is scored as
the mean-variance utility `g - risk_aversion/2 * g^2`. Positions are those the env would hold
(`agents.pathwise.held_path`: partial adjustment, no-trade band). The objectives that learn (inner
and outer) charge the training cost pressure, costs x `train_cost_multiplier` and
`turnover_penalty` x traded weight: the inner loop is the adaptation rule the meta-training
shaped, so deployment adapts with the same objective; what is measured (`mean_log_return`,
`executed_log_returns`: metrics, the meta-test) charges the true costs. `estimator="pathwise"` (default): the
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
    env_actions,
    gaussian_log_prob,
    policy_means,
    score_surrogate,
)
from fin_meta.agents.maml.rollout import Batch
from fin_meta.agents.pathwise import held_path, pathwise_log_returns
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

    def actions(self, u: torch.Tensor) -> torch.Tensor:
        """Env actions of unsquashed policy outputs `u`: targets (fraction of equity), or
        (target, half-width) pairs with a no-trade band (`maml.core.env_actions`)."""
        return env_actions(u, self.env_config)

    def _costs(self, shaped: bool) -> tuple[float, float]:
        """(cost per unit traded, turnover penalty): true, or with the training cost pressure."""
        cfg = self.env_config
        return (cfg.cost * cfg.train_cost_multiplier, cfg.turnover_penalty) if shaped else (cfg.cost, 0.0)

    def log_returns(self, params_m: Params, batch: Batch, shaped: bool = False) -> torch.Tensor:
        """Per-bar net log returns [M, E, T] of the deterministic policies on the batch's bars
        (from flat, the positions the env would hold); `shaped`: with the training cost pressure."""
        actions = self.actions(policy_means(self.policy, params_m, batch.obs))
        start = torch.zeros(batch.r_next.shape[:-1], dtype=torch.float64, device=actions.device)
        held = held_path(actions, batch.r_next, self.env_config, start)
        cost, penalty = self._costs(shaped)
        return pathwise_log_returns(held, batch.r_next, cost, start, penalty)

    def executed_log_returns(self, batch: Batch, shaped: bool = False) -> torch.Tensor:
        """Net log returns [M, E, T] the batch's held positions earned (the env's rewards);
        `shaped`: with the training cost pressure."""
        start = torch.zeros(batch.held.shape[:-1], dtype=torch.float64, device=batch.held.device)
        cost, penalty = self._costs(shaped)
        return pathwise_log_returns(batch.held, batch.r_next, cost, start, penalty).float()

    def utility(self, g: torch.Tensor) -> torch.Tensor:
        """Per-bar mean-variance utility of net log returns `g`: g - risk_aversion/2 * g^2."""
        return g - 0.5 * self.hparams.risk_aversion * g * g

    def mean_log_return(self, params_m: Params, batch: Batch) -> torch.Tensor:
        """Mean per-bar net log return [M] of the deterministic policies on the batch's bars."""
        return self.log_returns(params_m, batch).mean(dim=(1, 2))

    def mean_utility(self, params_m: Params, batch: Batch) -> torch.Tensor:
        """Mean per-bar utility [M] of the deterministic policies on the batch's bars, with the
        training cost pressure."""
        return self.utility(self.log_returns(params_m, batch, shaped=True)).mean(dim=(1, 2))

    def score(self, params_m: Params, batch: Batch) -> torch.Tensor:
        """REINFORCE surrogate [M] of the batch's sampled actions under `params_m` (utility of
        the executed returns with the training cost pressure, scaled by `reward_scale`)."""
        mean = policy_means(self.policy, params_m, batch.obs)
        log_std = params_m["log_std"].view(-1, *[1] * (mean.dim() - 1))
        log_prob = gaussian_log_prob(batch.u, mean, log_std)
        if self.env_config.no_trade_band:  # a diagonal Gaussian over (target, half-width)
            log_prob = log_prob.sum(-1)
        rewards = self.utility(self.executed_log_returns(batch, shaped=True)) * self.hparams.reward_scale
        return score_surrogate(log_prob, rewards)

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
