"""Deployment: walk a policy forward over a prices frame with a 1-env `VectorTradingEnv`, so
observations, accounting and rewards are exactly those of training.

A `StepPolicy` is anything with `act(obs_NO, feedback) -> action_N` (deterministic; the env's
action space). `play_episodes` plays consecutive episodes `(start, length)` of one frame,
carrying the policy's own state (a recurrent hidden state, adapted parameters...) across them;
`walk_forward` plays one episode over every decidable bar and adds the decision at the last bar
(which no step can settle yet), giving a position for every bar.

Causality: the observation at bar t is built from bars up to close t; the feedback given with
it (previous position, previous reward) was settled at close t. Nothing after t reaches the
decision at t.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import torch

from fin_meta.envs.actions import decode_actions, held_position, holds_target
from fin_meta.envs.config import EnvConfig
from fin_meta.envs.features import first_decision_bar
from fin_meta.envs.rewards import LOG_FLOOR
from fin_meta.envs.vector_env import VectorTradingEnv
from fin_meta.errors import DataError, FinMetaError

__all__ = [
    "Feedback",
    "StepPolicy",
    "EpisodeLog",
    "action_to_position",
    "play_episodes",
    "play_batch",
    "walk_forward",
    "walk_forward_batch",
    "positions_by_length",
    "mean_log_return",
]


@dataclass
class Feedback:
    """What a policy knows besides the observation when it decides at a bar (tensors `[N]`).

    `prev_position`: the previous position held / max_position (0 at the start of play);
    `prev_reward`: the env reward of the previous step, unscaled (0 at the start of play);
    `done`: 1.0 where the previous step ended an episode; `bar`: the decision bar t (long)."""

    prev_position: torch.Tensor
    prev_reward: torch.Tensor
    done: torch.Tensor
    bar: torch.Tensor

    @classmethod
    def initial(cls, n: int, device: torch.device, bar: torch.Tensor | int = 0) -> Feedback:
        """Zero feedback for `n` envs (the start of a trial / of play)."""
        zeros = torch.zeros(n, device=device)
        bars = torch.as_tensor(bar, dtype=torch.long, device=device).expand(n).clone()
        return cls(zeros, zeros.clone(), zeros.clone(), bars)


class StepPolicy(Protocol):
    """A deterministic decision rule with its own state (reset by its owner)."""

    def act(self, obs_NO: torch.Tensor, feedback: Feedback) -> torch.Tensor:
        """The env action for each row of `obs_NO` (continuous: target `[N]`, or (target,
        half-width) `[N, 2]` with a no-trade band; discrete: class `[N]`)."""
        ...


def action_to_position(action: torch.Tensor, config: EnvConfig, drifted: torch.Tensor | None = None) -> torch.Tensor:
    """The position (float64 `[N]`) the env holds after `action` (`fin_meta.envs.actions`): the
    clipped target, or a discrete class's level; with partial adjustment, a no-trade band or
    hold, the map from `drifted` (float64 `[N]`, the weight held into the decision; required then)."""
    if holds_target(config):
        return decode_actions(action, None, config)[0]
    if drifted is None:
        raise FinMetaError(f"action_to_position: adjust={config.adjust}, no_trade_band={config.no_trade_band}, "
                           f"action={config.action!r} need the drifted weight")
    drifted = drifted.to(torch.float64)
    target, half = decode_actions(action, drifted, config)
    return held_position(drifted, target, half, config, torch)


@dataclass
class EpisodeLog:
    """Per-episode records of `play_episodes` (numpy, float64): `bars` decision bars,
    `positions` the positions held, `log_growth` net log return of each step (floored like the
    env's reward), `final_obs` the observation after the last step of the last episode and
    `final_drifted` (float64) the weight held into it."""

    bars: list[np.ndarray]
    positions: list[np.ndarray]
    log_growth: list[np.ndarray]
    final_obs: torch.Tensor
    final_feedback: Feedback
    final_drifted: torch.Tensor


def play_episodes(
    prices: pd.DataFrame,
    config: EnvConfig,
    policy: StepPolicy,
    episodes: Sequence[tuple[int, int]],
    *,
    device: torch.device,
    feedback: Feedback | None = None,
) -> EpisodeLog:
    """Play consecutive episodes `(start bar, decisions)` of `prices` with one env; the policy's
    state carries across them (its owner resets it). Position and equity restart at each
    episode, as in training. One Python step per bar (this is deployment, one env)."""
    log = play_batch([prices], config, policy, episodes, device=device, feedback=feedback)
    return dataclasses.replace(log, positions=[p[0] for p in log.positions],
                               log_growth=[g[0] for g in log.log_growth])


def play_batch(
    frames: Sequence[pd.DataFrame],
    config: EnvConfig,
    policy: StepPolicy,
    episodes: Sequence[tuple[int, int]],
    *,
    device: torch.device,
    feedback: Feedback | None = None,
) -> EpisodeLog:
    """`play_episodes` on several frames in lockstep, one env per frame (row i of the policy's
    batch is frame i; every frame must have the bars the episodes need). The log's arrays are
    `[n_frames, decisions]` per episode. One Python step per bar for all frames together."""
    n = len(frames)
    env = VectorTradingEnv(list(frames), n, device=device, config=config, final_obs=True)
    fb = feedback or Feedback.initial(n, device)
    logs_pos, logs_eq, bars = [], [], []
    obs = info = None
    for start, length in episodes:
        obs, _ = env.set_tasks(list(range(n)), [start] * n, [length] * n)
        pos, eq = [], []
        for s in range(length):
            fb.bar = torch.full((n,), start + s, dtype=torch.long, device=device)
            action = policy.act(obs, fb)
            obs, reward, terminated, truncated, info = env.step(action)
            pos.append(info["position"])
            eq.append(info["equity"])
            fb = Feedback(
                prev_position=(info["position"] / config.max_position).to(fb.prev_position.dtype),
                prev_reward=reward.to(fb.prev_reward.dtype),
                done=(terminated | truncated).to(fb.done.dtype),
                bar=fb.bar,
            )
        logs_pos.append(torch.stack(pos, dim=1).to(torch.float64))
        logs_eq.append(torch.stack(eq, dim=1).to(torch.float64))
        bars.append(np.arange(start, start + length))
    if info is None:
        raise DataError("play_episodes: no episode to play")
    # equity is 1 at each episode's start
    growth = [eq / torch.cat([eq.new_ones(n, 1), eq[:, :-1]], dim=1) for eq in logs_eq]
    log_growth = [g.clamp_min(LOG_FLOOR).log().cpu().numpy() for g in growth]
    positions = []
    for p, lg in zip(logs_pos, log_growth, strict=True):
        p = p.cpu().numpy()
        for row in range(n):
            ruined = np.flatnonzero(lg[row] <= np.log(LOG_FLOOR) + 1e-9)
            if ruined.size:  # after ruin the env replays the window: those steps are not real
                p[row, ruined[0] + 1 :] = 0.0
                lg[row, ruined[0] + 1 :] = 0.0
        positions.append(p)
    return EpisodeLog(bars, positions, log_growth, info["final_obs"], fb, info["drifted"])


def walk_forward(
    prices: pd.DataFrame, config: EnvConfig, policy: StepPolicy, *, device: torch.device
) -> np.ndarray:
    """Position (float64 `[T]`) at every bar of `prices`: 0 before the first decidable bar
    (`window`), then the positions the policy's deterministic decisions hold, the last one (at
    the last bar, which no step can settle) mapped outside the env by `action_to_position`."""
    return walk_forward_batch([prices], config, policy, device=device)[0]


def positions_by_length(frames: Sequence[pd.DataFrame], walk: Callable[[list[pd.DataFrame]], np.ndarray],
                        name: str) -> list[pd.Series]:
    """Positions of every frame (float64 Series on its index, named `name`, in the frames' order)
    from `walk(group)` -> `[len(group), T]`, called once per group of frames of equal length."""
    groups: dict[int, list[int]] = {}
    for i, frame in enumerate(frames):
        groups.setdefault(len(frame), []).append(i)
    out: dict[int, pd.Series] = {}
    for group in groups.values():
        values = walk([frames[i] for i in group])
        out.update({i: pd.Series(v, index=frames[i].index, name=name, dtype=np.float64)
                    for i, v in zip(group, values, strict=True)})
    return [out[i] for i in range(len(frames))]


def walk_forward_batch(
    frames: Sequence[pd.DataFrame], config: EnvConfig, policy: StepPolicy, *, device: torch.device
) -> np.ndarray:
    """`walk_forward` of frames of equal length in lockstep (row i of the policy's batch is
    frame i): positions float64 `[n_frames, T]`."""
    lengths = {len(f) for f in frames}
    if len(lengths) != 1:
        raise DataError(f"walk_forward_batch: the frames have different lengths {sorted(lengths)}; "
                        "walk each length apart")
    n_bars, n = lengths.pop(), len(frames)
    first = first_decision_bar(config.window)
    if n_bars < first + 2:
        raise DataError(
            f"prices have {n_bars} bars; the agent needs at least window + 2 = {first + 2} to decide"
        )
    log = play_batch(frames, config, policy, [(first, n_bars - 1 - first)], device=device)
    fb = log.final_feedback
    fb.done = torch.zeros_like(fb.done)  # the data ran out, the episode did not end: as on a longer frame
    fb.bar = torch.full((n,), n_bars - 1, dtype=torch.long, device=device)
    last = action_to_position(policy.act(log.final_obs, fb), config, log.final_drifted)
    out = np.zeros((n, n_bars), dtype=np.float64)
    out[:, first : n_bars - 1] = log.positions[0]
    out[:, n_bars - 1] = last.to(torch.float64).cpu().numpy()
    return out


def mean_log_return(log: EpisodeLog, episode: int = -1) -> float:
    """Mean per-bar net log return of one played episode (default: the last)."""
    return float(np.mean(log.log_growth[episode]))
