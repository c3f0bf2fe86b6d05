"""RL² deployment with the context it was trained on: every decision ends a fresh trial.

A GRU meta-trained on trials of `episodes x length` bars has never carried its hidden state
for thousands of bars, nor across a regime change. `trial_positions` therefore takes the
decision at bar t at the end of a trial that starts flat `episodes x length - 1` bars earlier
(episodes of `length` decisions, position and equity restarting at each, exactly as in
training), so the agent always acts on the most recent trial's worth of bars. All trials are
replayed at once in one `VectorTradingEnv` (one env per decision bar): `episodes x length`
batched GRU steps in all, not one Python step per bar. Decisions before the first full trial
are those of the trial that starts at the first decidable bar. Only bars up to t reach the
decision at t.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from fin_meta.agents.deploy import Feedback, action_to_position, play_episodes
from fin_meta.envs.config import EnvConfig
from fin_meta.envs.features import first_decision_bar
from fin_meta.envs.vector_env import VectorTradingEnv
from fin_meta.errors import ConfigError, DataError

__all__ = ["trial_positions"]


def trial_positions(
    prices: pd.DataFrame, config: EnvConfig, make_policy, *, length: int, episodes: int, device: torch.device
) -> np.ndarray:
    """Target position (float64 `[T]`) at every bar: 0 before the first decidable bar, then the
    last decision of a trial of `episodes` episodes of `length` (>= 2) decisions ending at that
    bar. `make_policy()` returns a fresh deterministic `StepPolicy` (zero hidden state). The
    prices need at least `window + episodes x length` bars (one full trial)."""
    n_bars = len(prices)
    first = first_decision_bar(config.window)
    context = episodes * length
    if length < 2:
        raise ConfigError("deploy_context='trial' needs an episode_length of at least 2 bars")
    if n_bars < first + context:
        raise DataError(
            f"prices have {n_bars} bars; trading with deploy_context='trial' needs at least window + "
            f"episodes_per_trial x episode_length = {first + context} (one full trial); give a longer "
            "frame or use deploy_context='stream'"
        )
    out = np.zeros(n_bars, dtype=np.float64)
    # decisions before the first full trial: those of the trial that starts at the first decidable bar
    head_end = first + context - 1
    starts = range(first, head_end, length)
    log = play_episodes(prices, config, make_policy(), [(s, min(length, head_end - s)) for s in starts],
                        device=device)
    out[first:head_end] = np.concatenate(log.positions)
    bars = np.arange(head_end, n_bars)  # every later decision ends its own full trial
    out[bars] = _trial_ends(prices, config, make_policy(), bars - context + 1, length, episodes, device)
    return out


@torch.no_grad()
def _trial_ends(prices: pd.DataFrame, config: EnvConfig, policy, starts: np.ndarray, length: int,
                episodes: int, device: torch.device) -> np.ndarray:
    """The decision at the last bar of the trials that start at `starts` (one env each)."""
    n = len(starts)
    env = VectorTradingEnv(prices, n, device=device, config=config, final_obs=True)
    asset = np.zeros(n, dtype=np.int64)
    fb = Feedback.initial(n, device)
    obs = None
    for j in range(episodes):
        steps = length if j < episodes - 1 else length - 1  # the trial's last decision is not stepped
        obs, _ = env.set_tasks(asset, starts + j * length, [steps] * n)
        for _ in range(steps):
            action = policy.act(obs, fb)
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated | truncated
            fb = Feedback((info["position"] / config.max_position).to(fb.prev_position.dtype),
                          reward.to(fb.prev_reward.dtype), done.to(fb.done.dtype), fb.bar)
        if j == episodes - 1:
            obs = info["final_obs"]  # the observation at the trial's last bar
            fb.done = torch.zeros_like(fb.done)  # mid-episode, as in training
    fb.bar = torch.as_tensor(starts + episodes * length - 1, device=device)
    return action_to_position(policy.act(obs, fb), config, info["drifted"]).cpu().numpy()
