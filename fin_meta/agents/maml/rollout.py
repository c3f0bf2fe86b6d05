"""Rollouts of per-task MAML policies on a `VectorTradingEnv`, and the returns table they are
scored against. Torch only.

A batch of M tasks x E rollouts runs in one env of M*E envs (`set_tasks`); at every bar the
policy of each task (its own parameters, `maml_core.acting_means`) acts for its E envs at once.
Suffixes: M tasks, E rollouts per task, T bars, O observation size, A assets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from fin_meta.agents.maml.core import Params, PolicyMLP, acting_means, env_actions
from fin_meta.envs.actions import holds_target
from fin_meta.envs.features import simple_returns
from fin_meta.envs.vector_env import VectorTradingEnv

__all__ = ["Batch", "ReturnsTable", "rollout", "select_params"]


class ReturnsTable:
    """Simple returns r[t] = close[t]/close[t-1] - 1 of every asset, padded, on a device:
    `next_returns(asset_M, start_M, length)` gives r[t+1] for the decision bars
    `start .. start+length-1` of each task, [M, length] float64."""

    def __init__(self, frames: Sequence[pd.DataFrame], device: torch.device) -> None:
        width = max(len(f) for f in frames)
        table = np.zeros((len(frames), width), dtype=np.float64)
        for a, frame in enumerate(frames):
            table[a, : len(frame)] = simple_returns(frame)
        self.table_AT = torch.as_tensor(table, device=device)

    def next_returns(self, asset_m: torch.Tensor, start_m: torch.Tensor, length: int) -> torch.Tensor:
        bars = start_m.unsqueeze(1) + 1 + torch.arange(length, device=start_m.device)
        return self.table_AT[asset_m.unsqueeze(1), bars]


@dataclass
class Batch:
    """One rollout of M tasks x E envs over T decision bars (no gradient attached).

    `obs` [M, E, T, O] (observations at each decision, as the env produced them), `u` [M, E, T]
    (unsquashed actions taken; [M, E, T, 2] with a no-trade band), `positions` (the actions sent
    to the env: targets [M, E, T], or (target, half-width) [M, E, T, 2]), `held` [M, E, T] (the
    positions the env held: `positions` itself when the env holds targets, else its float64
    `info["position"]`), `r_next` [M, E, T] float64 (the return each position earned, r[t+1])."""

    obs: torch.Tensor
    u: torch.Tensor
    positions: torch.Tensor
    held: torch.Tensor
    r_next: torch.Tensor

    @property
    def env_steps(self) -> int:
        """Env steps this rollout took."""
        return int(self.u.numel())


def select_params(params: Params, index: torch.Tensor) -> Params:
    """Per-task parameters gathered along the task dimension (`index` long [M'])."""
    return {n: p.index_select(0, index) for n, p in params.items()}


@torch.no_grad()
def rollout(
    env: VectorTradingEnv,
    module: PolicyMLP,
    params_m: Params,
    asset_m: torch.Tensor,
    start_m: torch.Tensor,
    length: int,
    returns: ReturnsTable,
    *,
    envs_per_task: int = 1,
    noise_std_m: torch.Tensor | None = None,
    noise_tme: torch.Tensor | None = None,
) -> Batch:
    """Run task i's policy `params_m[i]` for `length` decisions from bar `start_m[i]` of asset
    `asset_m[i]`, in `envs_per_task` envs each (`env.num_envs` must be M * E). Deterministic
    (the squashed mean) unless `noise_std_m` [M] is given: then `noise_std_m * noise_tme`
    (standard normal draws [T, M, E], or [T, M, E, 2] with a no-trade band, made by the caller)
    is added before squashing."""
    m, e = int(asset_m.shape[0]), int(envs_per_task)
    obs, _ = env.set_tasks(asset_m.repeat_interleave(e), start_m.repeat_interleave(e),
                           torch.full((m * e,), int(length), dtype=torch.long))
    params_m = {n: p.detach() for n, p in params_m.items()}
    trailing = (2,) if env.config.no_trade_band else ()  # (target, half-width) per action
    obs_t = torch.empty(length, m, e, env.observation_size, dtype=obs.dtype, device=obs.device)
    u_t = torch.empty(length, m, e, *trailing, dtype=obs.dtype, device=obs.device)
    pos_t = torch.empty_like(u_t)
    held_t = torch.empty(length, m, e, dtype=torch.float64, device=obs.device)
    for j in range(length):
        obs_me = obs.view(m, e, -1)
        u = acting_means(module, params_m, obs_me)
        if noise_std_m is not None and noise_tme is not None:
            u = u + noise_std_m.view(m, *[1] * (u.dim() - 1)) * noise_tme[j].to(u)
        pos = env_actions(u, env.config)
        obs_t[j], u_t[j], pos_t[j] = obs_me, u, pos
        obs, _, _, _, info = env.step(pos.reshape(m * e, *trailing))
        held_t[j] = info["position"].view(m, e)
    r_next = returns.next_returns(asset_m.to(returns.table_AT.device), start_m.to(returns.table_AT.device), length)
    time_last = (1, 2, 0, *range(3, pos_t.dim()))  # [T, M, E, ...] -> [M, E, T, ...]
    positions = pos_t.permute(*time_last)
    return Batch(
        obs=obs_t.permute(1, 2, 0, 3),
        u=u_t.permute(*time_last),
        positions=positions,
        held=positions if holds_target(env.config) else held_t.permute(1, 2, 0),
        r_next=r_next.unsqueeze(1).expand(m, e, length),
    )
