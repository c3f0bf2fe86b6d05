"""Rewards: a small registry of per-step reward functions shared by both environments.

A reward is `fn(growth, state, config, xp) -> (reward, new_state)`, written with arithmetic
operators and `xp.log` / `xp.where` / `xp.clip(x, low, high)` only, so the same code runs on
Python floats (`TradingEnv`, xp = `ledger.ScalarOps`), numpy arrays and torch tensors
(`VectorTradingEnv`, xp = torch).

- `growth`: equity ratio of the step, E[t+1] / E[t] = (1 - cost * traded) * (1 + w * r[t+1]).
- `state`: a tuple of per-env arrays (`n_state` of them), zero at the start of an episode.

To add a reward: write the function, then `REWARDS["name"] = RewardSpec(fn, n_state)`.

Training cost pressure (`step_reward`, envs built with `training=True` only): the reward is
computed from the growth with costs x `train_cost_multiplier`, minus `turnover_penalty` x the
traded weight; equity, ruin and `info` always use the true costs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["RewardSpec", "REWARDS", "log_return", "differential_sharpe", "step_reward", "LOG_FLOOR", "DSR_MIN_VAR"]

LOG_FLOOR = 1e-8
"""Growth is floored here before the log, so a ruined step (growth <= 0) gives log(1e-8) ~ -18.4."""

DSR_MIN_VAR = 1e-12
"""The differential Sharpe ratio is 0 while the moving variance B - A^2 is below this."""

Array = Any  # numpy.ndarray or torch.Tensor
RewardFn = Callable[[Array, tuple[Array, ...], Any, Any], tuple[Array, tuple[Array, ...]]]


@dataclass(frozen=True)
class RewardSpec:
    """A reward function and how many per-env state arrays it carries between steps."""

    fn: RewardFn
    n_state: int = 0


def log_return(growth: Array, state: tuple[Array, ...], config: Any, xp: Any) -> tuple[Array, tuple[Array, ...]]:
    """log(E[t+1] / E[t]) net of costs; stateless."""
    return xp.log(xp.clip(growth, LOG_FLOOR, None)), state


def differential_sharpe(
    growth: Array, state: tuple[Array, ...], config: Any, xp: Any
) -> tuple[Array, tuple[Array, ...]]:
    """Moody & Saffell's differential Sharpe ratio of the net return R = growth - 1.

    With moving moments A (mean) and B (second moment) from before this step,
    dA = R - A, dB = R^2 - B, D = (B * dA - A * dB / 2) / (B - A^2)^(3/2)
    (0 while B - A^2 < DSR_MIN_VAR); then A += eta * dA, B += eta * dB (eta = config.dsr_eta)."""
    mean, second = state
    ret = growth - 1.0
    d_mean = ret - mean
    d_second = ret * ret - second
    var = second - mean * mean
    ok = var >= DSR_MIN_VAR
    dsr = xp.where(ok, (second * d_mean - 0.5 * mean * d_second) / xp.clip(var, DSR_MIN_VAR, None) ** 1.5, 0.0)
    eta = config.dsr_eta
    return dsr, (mean + eta * d_mean, second + eta * d_second)


REWARDS: dict[str, RewardSpec] = {
    "log_return": RewardSpec(log_return, 0),
    "differential_sharpe": RewardSpec(differential_sharpe, 2),
}
"""Rewards by name; `EnvConfig.reward` must be one of these keys."""


def step_reward(
    spec: RewardSpec,
    growth: Array,
    position: Array,
    ret: Array,
    traded: Array,
    state: tuple[Array, ...],
    config: Any,
    xp: Any,
    training: bool,
) -> tuple[Array, tuple[Array, ...]]:
    """One step's (reward, new state): `spec` on the true `growth`, or, when `training` and the
    config shapes rewards, on `(1 - m * cost * traded) * (1 + position * ret)` (m =
    `train_cost_multiplier`) minus `turnover_penalty * traded`."""
    if not (training and config.shapes_reward):
        return spec.fn(growth, state, config, xp)
    shaped = (1.0 - config.train_cost_multiplier * config.cost * traded) * (1.0 + position * ret)
    reward, state = spec.fn(shaped, state, config, xp)
    return reward - config.turnover_penalty * traded, state
