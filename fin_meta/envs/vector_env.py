"""`VectorTradingEnv`: N trading episodes stepped at once with torch, on any device.

Shape legend: N envs, O observation size, A assets, T bars (padded to the longest asset).

Each env runs its own (asset, start, length) window. Windows are drawn at random from the env's
own `torch.Generator` (uniform asset, uniform start; the length is `episode_length`, or the whole
series when it is None), or assigned with `set_tasks(asset_N, start_N, length_N)` - then every
env replays its assigned window on each auto-reset until `set_tasks` or `clear_tasks` is called.

Auto-reset (same step): when an env's episode ends (truncated at the end of its window, or
terminated by ruin, growth <= 0), `step` returns the FIRST observation of its next episode; the
`info` tensors (`t`, `asset`, `position`, `equity`, `cost`, `traded`) describe the step just
taken, so `info["equity"]` of a finished env is its final equity; `info["position"]` is the
position held (see `fin_meta.envs.actions`) and `info["drifted"]` (float64) the weight it drifted
to by the next close, before any reset. With `final_obs=True`,
`info["final_obs"]` holds the observation each env reached before any reset ([N, O]; equal to
the returned row for envs that did not finish), for bootstrapping truncated episodes.

Numbers: observations and rewards come in `dtype` (float32 by default, or float64); the ledger
(equity, drifted weight, reward moments) is always float64, so equity matches the numpy
reference to ~1e-12 whatever `dtype`. CPU and CUDA run the same elementwise float64 arithmetic
(random windows differ between devices: each device has its own generator stream).

Speed: features are precomputed once per asset into a table of every bar's observation row; a
step is one gather of N rows, one gather of N returns and ~30 elementwise ops, with no Python
loop over envs or bars, and one host sync (`done.any()`) so that steps in which no episode ends
skip the reset work. Actions (`[N]`, or `[N, 2]` with a no-trade band) must be valid: on CPU a
non-finite continuous action or a discrete action outside its classes raises; on CUDA they are not checked (that would cost a sync) and show
up as NaN equity or a device-side index error. The returned tensors are fresh each step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from fin_meta.devices import resolve_device
from fin_meta.envs.actions import (
    DISCRETE_CLASSES,
    action_size,
    decode_actions,
    discrete_levels,
    held_position,
    holds_target,
    is_discrete,
)
from fin_meta.envs.config import EnvConfig, make_config, observation_size
from fin_meta.envs.episodes import full_length, start_bounds
from fin_meta.envs.features import (
    first_decision_bar,
    observation_features,
    observation_table,
    simple_returns,
)
from fin_meta.envs.gym_env import make_spaces
from fin_meta.envs.ledger import trade
from fin_meta.envs.rewards import REWARDS, step_reward
from fin_meta.errors import ConfigError, DataError, FinMetaError
from fin_meta.seeding import torch_generator

__all__ = ["VectorTradingEnv"]

Tensor = torch.Tensor
_RANDOM_BITS = 2**31 - 1


def _as_asset_list(prices_or_list: Any) -> tuple[list[pd.DataFrame], list[str]]:
    if isinstance(prices_or_list, pd.DataFrame):
        return [prices_or_list], ["0"]
    if isinstance(prices_or_list, Mapping):
        return list(prices_or_list.values()), [str(k) for k in prices_or_list]
    if isinstance(prices_or_list, Sequence) and not isinstance(prices_or_list, str):
        return list(prices_or_list), [str(i) for i in range(len(prices_or_list))]
    raise DataError(
        f"prices_or_list must be a prices DataFrame, a list of them or a dict name -> DataFrame, "
        f"got {type(prices_or_list).__name__}"
    )


class VectorTradingEnv:
    """`num_envs` trading episodes over one or several assets, stepped together as tensors.

    `VectorTradingEnv(prices_or_list, num_envs, *, device="auto", seed=0, dtype=torch.float32,
    final_obs=False, training=False, config=None, **EnvConfig fields)`. See the module docstring;
    `training=True` shapes the rewards with the config's training cost pressure
    (`fin_meta.envs.rewards.step_reward`); equity and `info` always charge the true costs."""

    def __init__(
        self,
        prices_or_list: pd.DataFrame | Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame],
        num_envs: int,
        *,
        device: str | torch.device = "auto",
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        final_obs: bool = False,
        training: bool = False,
        config: EnvConfig | None = None,
        **kwargs: Any,
    ):
        self.config = cfg = make_config(config, **kwargs)
        if not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ConfigError(f"num_envs must be a positive integer, got {num_envs!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        assets, self.asset_names = _as_asset_list(prices_or_list)
        if not assets:
            raise DataError("prices_or_list holds no price series")
        self.num_envs = int(num_envs)
        try:
            self.device = resolve_device(device)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"device: {exc}") from None
        self.dtype = dtype
        self.final_obs = bool(final_obs)
        self.training = bool(training)
        self.observation_size = observation_size(cfg)
        self.single_observation_space, self.single_action_space = make_spaces(cfg)
        self._build_tables(assets)
        self._build_task_ranges()
        self._reward = REWARDS[cfg.reward]
        self._levels = discrete_levels(cfg, self.device)
        self._holds_target = holds_target(cfg)
        self._gen = torch_generator(seed, self.device)
        self._tasks: tuple[Tensor, Tensor, Tensor] | None = None
        self._started = False

    # -- precomputation (once per asset) ---------------------------------------------------
    def _build_tables(self, assets: list[pd.DataFrame]) -> None:
        cfg = self.config
        self.n_bars = [len(p) for p in assets]
        t_max = max(self.n_bars)
        np_dtype = np.float32 if self.dtype == torch.float32 else np.float64
        table = np.zeros((len(assets), t_max, self.observation_size), dtype=np_dtype)
        next_return = np.zeros((len(assets), t_max), dtype=np.float64)
        for a, prices in enumerate(assets):
            try:
                features = observation_features(prices, cfg.window, cfg.features, cfg.regime_model)
            except DataError as exc:
                raise DataError(f"asset {self.asset_names[a]!r}: {exc}") from None
            table[a, : len(prices)] = observation_table(features, cfg.window)
            next_return[a, : len(prices) - 1] = simple_returns(prices)[1:]
        self._t_max = t_max
        # row asset * t_max + t: the observation at bar t, and the return r[t+1] held over
        self._table = torch.as_tensor(table.reshape(-1, self.observation_size), dtype=self.dtype, device=self.device)
        self._next_return = torch.as_tensor(next_return.reshape(-1), dtype=torch.float64, device=self.device)

    def _build_task_ranges(self) -> None:
        cfg = self.config
        ranges = []
        for name, n_bars in zip(self.asset_names, self.n_bars, strict=True):
            length = cfg.episode_length or full_length(n_bars, cfg.window)
            try:
                low, high = start_bounds(n_bars, cfg.window, length)
            except ConfigError as exc:
                raise ConfigError(f"asset {name!r}: {exc}") from None
            ranges.append((low, high - low + 1, length))
        # per asset: lowest start, number of starts, episode length
        self._ranges_A3 = torch.as_tensor(ranges, dtype=torch.long, device=self.device)

    # -- tasks -------------------------------------------------------------------------------
    @property
    def num_assets(self) -> int:
        """Number of price series."""
        return len(self.n_bars)

    @property
    def tasks(self) -> tuple[Tensor, Tensor, Tensor]:
        """Current episodes (asset_N, start_N, length_N), long tensors on `device`."""
        self._require_started()
        return self._asset.clone(), self._start.clone(), self._end - self._start

    def _draw_tasks(self) -> tuple[Tensor, Tensor, Tensor]:
        """Uniform asset, then uniform start among that asset's valid starts (modulo of 31 random
        bits: the bias is below count / 2**31)."""
        bits = torch.randint(0, _RANDOM_BITS, (2, self.num_envs), generator=self._gen, device=self.device)
        asset = bits[0] % self.num_assets
        low, count, length = self._ranges_A3.index_select(0, asset).unbind(1)
        start = low + bits[1] % count
        return asset, start, start + length

    def _next_tasks(self) -> tuple[Tensor, Tensor, Tensor]:
        return self._tasks if self._tasks is not None else self._draw_tasks()

    def set_tasks(self, asset_N: Any, start_N: Any, length_N: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """Assign each env the episode (asset index, start bar, decisions) and reset all envs onto
        them; auto-resets replay the same windows until the next `set_tasks` / `clear_tasks`.
        Returns `reset()`'s (obs_NO, info)."""
        asset, start, length = (
            torch.as_tensor(v, device="cpu").to(torch.long).reshape(-1) for v in (asset_N, start_N, length_N)
        )
        for name, v in (("asset_N", asset), ("start_N", start), ("length_N", length)):
            if v.numel() != self.num_envs:
                raise ConfigError(f"set_tasks: {name} has {v.numel()} entries, need num_envs={self.num_envs}")
        n_bars = torch.as_tensor(self.n_bars, dtype=torch.long)
        asset_ok = (asset >= 0) & (asset < self.num_assets)
        safe = asset.clamp(0, self.num_assets - 1)
        ok = asset_ok & (start >= first_decision_bar(self.config.window)) & (length >= 1)
        ok &= start + length <= n_bars[safe] - 1
        if not bool(ok.all()):
            i = int((~ok).nonzero()[0, 0])
            raise ConfigError(
                f"set_tasks: env {i} has asset={int(asset[i])}, start={int(start[i])}, "
                f"length={int(length[i])}; need 0 <= asset < {self.num_assets}, "
                f"start >= window={self.config.window}, length >= 1 and start + length <= n_bars - 1 "
                f"(asset bars: {self.n_bars})"
            )
        asset, start = asset.to(self.device), start.to(self.device)
        self._tasks = (asset, start, start + length.to(self.device))
        return self.reset()

    def clear_tasks(self) -> None:
        """Go back to random windows from the next reset / auto-reset on."""
        self._tasks = None

    # -- episodes ----------------------------------------------------------------------------
    @torch.no_grad()
    def reset(self, seed: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Start a new episode in every env (re-seeding the task generator if `seed` is given);
        returns obs_NO and info tensors (t = start bar, asset, position 0, equity 1, cost 0)."""
        if seed is not None:
            self._gen.manual_seed(int(seed))
        self._asset, self._start, self._end = (v.clone() for v in self._next_tasks())
        self._t = self._start.clone()
        zeros = torch.zeros(self.num_envs, dtype=torch.float64, device=self.device)
        self._drifted = zeros
        self._equity = torch.ones_like(zeros)
        self._state = tuple(zeros for _ in range(self._reward.n_state))
        self._started = True
        info = {"t": self._t, "asset": self._asset, "position": zeros, "equity": self._equity,
                "cost": zeros, "traded": zeros, "drifted": zeros}
        return self._observe(self._asset, self._t, self._drifted), info

    def _require_started(self) -> None:
        if not self._started:
            raise FinMetaError("VectorTradingEnv: call reset() (or set_tasks()) before stepping")

    def _positions(self, actions: Any) -> Tensor:
        """The position each env holds after acting (float64 [N]; see `fin_meta.envs.actions`)."""
        cfg = self.config
        actions = torch.as_tensor(actions, device=self.device).detach()
        size = action_size(cfg)
        if actions.numel() != self.num_envs * size:
            per = "" if size == 1 else f" x {size} numbers per action"
            raise FinMetaError(f"step: got {actions.numel()} actions for num_envs={self.num_envs}{per}")
        actions = actions.reshape(self.num_envs, size) if size > 1 else actions.reshape(self.num_envs)
        if is_discrete(cfg):
            actions = actions.long()
            n = DISCRETE_CLASSES[cfg.action]
            if self.device.type == "cpu" and bool(((actions < 0) | (actions >= n)).any()):
                hold = " or 3 (hold)" if cfg.action == "discrete_hold" else ""
                raise FinMetaError(f"step: discrete actions must be 0 (short), 1 (flat), 2 (long){hold}")
        elif self.device.type == "cpu" and not math.isfinite(float(actions.sum(dtype=torch.float64))):  # one reduction
            raise FinMetaError("step: actions must be finite target positions (got NaN or inf)")
        target, half = decode_actions(actions, self._drifted, cfg, self._levels)
        return target if self._holds_target else held_position(self._drifted, target, half, cfg, torch)

    def next_returns(self) -> Tensor:
        """The simple return r[t+1] (float64 [N]) each env's next position will be held over
        (the bar the next `step` settles): what a pathwise objective needs besides positions."""
        self._require_started()
        return self._next_return.index_select(0, self._asset * self._t_max + self._t)

    @torch.no_grad()
    def step(self, actions_N: Any) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Act (continuous: target, or (target, half-width) with a band; discrete: class) and hold
        the resulting position from close t to close t+1. Returns (obs_NO, reward_N,
        terminated_N, truncated_N, info)."""
        self._require_started()
        position = self._positions(actions_N)
        ret = self.next_returns()
        growth, drifted, traded = trade(self._drifted, position, ret, self.config.cost, torch)
        reward, state = step_reward(self._reward, growth, position, ret, traded, self._state, self.config, torch,
                                    self.training)
        equity = self._equity * growth.clamp_min(0.0)  # ruin: zero equity, the episode ends
        t = self._t + 1
        terminated = growth <= 0.0
        truncated = (t >= self._end) & ~terminated
        done = terminated | truncated
        info = {"t": self._t, "asset": self._asset, "position": position, "equity": equity,
                "cost": traded * self.config.cost, "traded": traded, "drifted": drifted}
        if self.final_obs:
            info["final_obs"] = self._observe(self._asset, t, drifted)

        self._t, self._drifted, self._equity, self._state = t, drifted, equity, state
        if bool(done.any()):  # one host sync; most steps end no episode and skip the resets
            self._auto_reset(done)
        obs = self._observe(self._asset, self._t, self._drifted)
        return obs, reward.to(self.dtype), terminated, truncated, info

    def _auto_reset(self, done: Tensor) -> None:
        """Move the finished envs onto their next window with a fresh ledger (no loop: `where`)."""
        new_asset, new_start, new_end = self._next_tasks()
        self._asset = torch.where(done, new_asset, self._asset)
        self._start = torch.where(done, new_start, self._start)
        self._end = torch.where(done, new_end, self._end)
        self._t = torch.where(done, new_start, self._t)
        self._drifted = torch.where(done, 0.0, self._drifted)
        self._equity = torch.where(done, 1.0, self._equity)
        self._state = tuple(torch.where(done, 0.0, s) for s in self._state)

    def _observe(self, asset: Tensor, t: Tensor, drifted: Tensor) -> Tensor:
        """obs_NO: one gather of precomputed observation rows, then the position column."""
        obs = torch.nn.functional.embedding(asset * self._t_max + t, self._table)
        obs[:, -1] = drifted
        return obs
