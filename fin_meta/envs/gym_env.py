"""`TradingEnv`: one asset, one episode at a time, as a gymnasium environment.

Registered as "fin_meta/Trading-v0". An episode is a window of decision bars (a task):
`reset(options={"start": s, "length": L})` picks it, otherwise it is the whole series
(`episode_length=None`) or a window of `episode_length` decisions drawn with the env's seeded
generator. Observation layout: see `fin_meta.envs.features`. Accounting: see
`fin_meta.envs.ledger`. Each step's `info`: `date` and `t` (the decision bar), `position` (the
position held to the next close), `equity` (after the step; 1.0 at reset), `cost` (fraction of
equity paid), `traded` (|position - drifted weight|), `drifted` (the weight the position drifted
to by the next close, held into the next decision). Actions and the position they hold: see
`fin_meta.envs.actions` (targets, a no-trade band, hold, partial adjustment). A training env
(`training=True`) shapes its rewards as `fin_meta.envs.rewards.step_reward` says; equity and
`info` always charge the true costs.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from fin_meta.envs.actions import (
    DISCRETE_CLASSES,
    DISCRETE_LEVELS,
    HOLD,
    action_bounds,
    action_size,
    held_position,
    holds_target,
    is_discrete,
)
from fin_meta.envs.config import EnvConfig, make_config, observation_size
from fin_meta.envs.episodes import check_task, full_length, start_bounds
from fin_meta.envs.features import (
    observation_features,
    observation_table,
    simple_returns,
)
from fin_meta.envs.ledger import ScalarOps, trade
from fin_meta.envs.rewards import REWARDS, step_reward
from fin_meta.errors import ConfigError, FinMetaError

__all__ = ["TradingEnv", "make_spaces", "simple_returns"]


def make_spaces(config: EnvConfig) -> tuple[spaces.Box, spaces.Space]:
    """(observation space, action space) of one environment with these settings."""
    size = observation_size(config)
    obs_space = spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)
    if is_discrete(config):
        return obs_space, spaces.Discrete(DISCRETE_CLASSES[config.action])
    low, high = action_bounds(config)
    if config.no_trade_band:  # (target, half-width)
        return obs_space, spaces.Box(np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32)
    return obs_space, spaces.Box(np.float32(low), np.float32(high), shape=(1,), dtype=np.float32)


class TradingEnv(gym.Env):
    """Trade one asset: each step's action sets the position held over the next bar.

    `TradingEnv(prices, window=32, fees=5e-4, slippage=5e-4, max_position=1.0, allow_short=True,
    reward="log_return", episode_length=None, features=[], action="continuous", dsr_eta=0.01, ...,
    training=False)`; the keywords are `EnvConfig` fields (or pass `config=EnvConfig(...)`);
    `training=True` shapes the rewards with the config's training cost pressure."""

    metadata = {"render_modes": []}

    def __init__(self, prices: pd.DataFrame, *, config: EnvConfig | None = None, render_mode: None = None,
                 training: bool = False, **kwargs: Any):
        if render_mode is not None:
            raise ConfigError(f"TradingEnv has no render modes, got render_mode={render_mode!r}")
        self.config = make_config(config, **kwargs)
        self.training = bool(training)
        cfg = self.config
        self._holds_target = holds_target(cfg)
        features = observation_features(prices, cfg.window, cfg.features, cfg.regime_model)
        self._table = observation_table(features, cfg.window).astype(np.float32)
        self._ret = simple_returns(prices).tolist()  # floats: the step runs on Python scalars
        self._dates = list(prices.index)  # Timestamps, for O(1) lookups per step
        self._reward = REWARDS[cfg.reward]
        self._low, self._high = cfg.position_bounds
        self._cost = cfg.cost
        self.observation_space, self.action_space = make_spaces(cfg)
        self._full = full_length(len(prices), cfg.window)
        if cfg.episode_length is not None:
            start_bounds(len(prices), cfg.window, cfg.episode_length)  # raises if it cannot fit
        self._t = self._end = -1

    @property
    def n_bars(self) -> int:
        """Bars in the price series."""
        return len(self._dates)

    def _choose_window(self, options: dict[str, Any] | None) -> tuple[int, int]:
        options = dict(options or {})
        unknown = set(options) - {"start", "length"}
        if unknown:
            raise ConfigError(f"unknown reset options {sorted(unknown)}; use 'start' and 'length'")
        start, length = options.get("start"), options.get("length")
        cfg = self.config
        if length is None:
            if start is not None:
                length = cfg.episode_length or (self.n_bars - 1 - int(start))
            else:
                length = cfg.episode_length or self._full
        length = int(length)
        if start is None:
            low, high = start_bounds(self.n_bars, cfg.window, length)
            start = int(self.np_random.integers(low, high + 1))
        start = int(start)
        check_task(self.n_bars, cfg.window, start, length)
        return start, length

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start an episode; options {"start": bar index, "length": decisions} choose the window."""
        super().reset(seed=seed)
        start, length = self._choose_window(options)
        self._t, self._end = start, start + length
        self._drifted = 0.0
        self._equity = 1.0
        self._state = (0.0,) * self._reward.n_state
        return self._obs(), self._info(self._t, 0.0, 0.0, 0.0)

    def _target(self, action: Any) -> tuple[float, float | None]:
        """(clipped target, band half-width or None) of a valid action; hold targets the drifted weight."""
        cfg = self.config
        if is_discrete(cfg):
            index = int(np.asarray(action).reshape(-1)[0])
            if not 0 <= index < DISCRETE_CLASSES[cfg.action]:
                hold = " or 3 (hold)" if cfg.action == "discrete_hold" else ""
                raise FinMetaError(f"discrete action must be 0 (short), 1 (flat), 2 (long){hold}, got {action!r}")
            if index == HOLD:
                return self._drifted, None
            value = DISCRETE_LEVELS[index] * cfg.max_position
        else:
            values = np.asarray(action).reshape(-1)
            if cfg.no_trade_band and values.size != action_size(cfg):
                raise FinMetaError(f"a no-trade-band action is (target, half-width), got {action!r}")
            value = float(values[0])
            half = float(values[1]) if cfg.no_trade_band else 0.0
            if not (math.isfinite(value) and math.isfinite(half)):
                raise FinMetaError(f"action must be a finite target position, got {action!r}")
            if cfg.no_trade_band:
                return min(max(value, self._low), self._high), min(max(half, 0.0), cfg.max_position)
        return min(max(value, self._low), self._high), None

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Act and hold the resulting position from close t to close t+1; see the module docstring."""
        if not self._t < self._end:
            raise FinMetaError("the episode is over (or never started): call reset() first")
        target, half = self._target(action)
        decided, drifted, ret = self._t, self._drifted, self._ret[self._t + 1]
        position = target if self._holds_target else held_position(drifted, target, half, self.config, ScalarOps)
        growth, self._drifted, traded = trade(drifted, position, ret, self._cost, ScalarOps)
        reward, self._state = step_reward(self._reward, growth, position, ret, traded, self._state, self.config,
                                          ScalarOps, self.training)
        self._equity *= max(growth, 0.0)  # ruin: equity reaches zero and the episode ends
        self._t += 1
        terminated = growth <= 0.0
        truncated = not terminated and self._t >= self._end
        if terminated:
            self._end = self._t
        return self._obs(), reward, terminated, truncated, self._info(decided, position, self._cost * traded, traded)

    def _obs(self) -> np.ndarray:
        obs = self._table[self._t].copy()
        obs[-1] = self._drifted
        return obs

    def _info(self, t: int, position: float, cost: float, traded: float) -> dict[str, Any]:
        return {
            "date": self._dates[t],
            "t": t,
            "position": position,
            "equity": self._equity,
            "cost": cost,
            "traded": traded,
            "drifted": self._drifted,
        }
