"""RL²'s pathwise estimator (`RL2Config.estimator = "pathwise"`): the trials' net log returns as
a differentiable function of the positions the recurrent policy held, so an update ascends
their exact gradient (BPTT through the recurrent core) instead of a score-function estimate.

Each episode of a trial starts flat (as the env restarts it) and its positions are held the
way the env holds them (`fin_meta.agents.pathwise.held_path`: partial adjustment, no-trade
band), charged with the training cost pressure (costs x `train_cost_multiplier`, minus
`turnover_penalty` x traded weight), whatever reward the env is set to. Torch only.

Suffixes: T steps of a trial, N trials.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fin_meta.agents.pathwise import held_path, pathwise_log_returns
from fin_meta.envs.config import EnvConfig

__all__ = ["trial_log_returns"]


def trial_log_returns(actions_TN: torch.Tensor, r_next_TN: torch.Tensor, episodes: Sequence[tuple[int, int]],
                      config: EnvConfig) -> torch.Tensor:
    """Net log returns `[T, N]` (float64) of the deterministic actions `actions_TN` (`[T, N]`,
    or `[T, N, 2]` = (target, half-width) with a no-trade band) held against the simple returns
    `r_next_TN` (r[t+1] of each decision's bar), each episode `(first step, end step)` of
    `episodes` starting flat; with the training cost pressure. Differentiable in the actions;
    at the positions a training env held, equal to its log-return rewards."""
    cost = config.cost * config.train_cost_multiplier
    out = []
    for first, end in episodes:
        actions = actions_TN[first:end].movedim(0, 1)  # [N, d] (or [N, d, 2]): time on the path axis
        r_next = r_next_TN[first:end].T
        start = torch.zeros(r_next.shape[0], dtype=torch.float64, device=r_next.device)
        held = held_path(actions, r_next, config, start).to(torch.float64)
        out.append(pathwise_log_returns(held, r_next, cost, start, config.turnover_penalty).T)
    return torch.cat(out, 0)
