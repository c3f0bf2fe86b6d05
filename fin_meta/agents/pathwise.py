"""Pathwise returns: the positions a window of actions holds and the net log returns they earn,
computed exactly as the envs compute them (`fin_meta.envs.actions`, `fin_meta.envs.ledger`) and
differentiable in the actions, so that their mean is an exact pathwise policy objective (a
trader's positions do not move prices): MAML's objectives and RL²'s `estimator: pathwise` use
them. Torch only.

With partial adjustment, a no-trade band or hold the position held at t depends on the drifted
weight, hence on every earlier position: `held_path` runs that recursion with one Python step
per bar, each step batched over all tasks and rollouts. Without
them the held position is the action's target and no loop runs.

Suffixes: M tasks, E rollouts per task, T bars (always the last axis of a path).
"""

from __future__ import annotations

import torch

from fin_meta.envs.actions import held_position, holds_target
from fin_meta.envs.config import EnvConfig
from fin_meta.envs.ledger import trade
from fin_meta.envs.rewards import log_return

__all__ = ["held_path", "pathwise_log_returns"]


def held_path(actions_mt: torch.Tensor, r_next_mt: torch.Tensor, config: EnvConfig,
              start_weight_m: torch.Tensor) -> torch.Tensor:
    """Positions held [..., T] after actions `actions_mt` ([..., T], or [..., T, 2] = (target,
    half-width) with a no-trade band; targets within the bounds, half-widths in [0,
    max_position], as `maml.core.env_actions` makes them) decided at bars t against simple
    returns `r_next_mt` [..., T] (r[t+1]), starting from the weight `start_weight_m` [...]:
    at each bar the weight drifts with the previous bar's return and the env's action map
    applies. When the config holds targets (`holds_target`) the actions are returned as they are."""
    if holds_target(config):
        return actions_mt
    actions = actions_mt.to(torch.float64)  # the env's arithmetic
    target, half = (actions[..., 0], actions[..., 1]) if config.no_trade_band else (actions, None)
    drifted = start_weight_m.to(torch.float64)
    held = []
    for t in range(target.shape[-1]):
        w = held_position(drifted, target[..., t], None if half is None else half[..., t], config, torch)
        held.append(w)
        _, drifted, _ = trade(drifted, w, r_next_mt[..., t], config.cost, torch)
    return torch.stack(held, dim=-1)


def pathwise_log_returns(
    positions_mt: torch.Tensor, r_next_mt: torch.Tensor, cost: float, start_weight_m: torch.Tensor,
    turnover_penalty: float = 0.0,
) -> torch.Tensor:
    """Per-bar net log returns [..., T] of holding `positions_mt` (decided at bars t, held to
    t+1) against simple returns `r_next_mt` (r[t+1] = close[t+1]/close[t] - 1), with the envs'
    accounting (`fin_meta.envs.ledger.trade`): the weight drifts with the bar's return and the
    trade at t costs `cost * |position_t - drifted_t|`, and `turnover_penalty` x that traded
    weight is subtracted (a training env's shaped reward). `start_weight_m` [...]: the weight
    held into the first decision. Differentiable in the positions; at the positions an
    environment held it equals the env's log-return rewards."""
    _, carried, _ = trade(torch.zeros_like(positions_mt), positions_mt, r_next_mt, cost, torch)
    drifted = torch.cat([start_weight_m.unsqueeze(-1).to(carried), carried[..., :-1]], dim=-1)
    growth, _, traded = trade(drifted, positions_mt, r_next_mt, cost, torch)
    g = log_return(growth, (), None, torch)[0]
    return g - turnover_penalty * traded if turnover_penalty else g
