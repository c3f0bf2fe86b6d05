"""Plumbing shared by the torch agents (a mixin, no deeper hierarchy): settings coercion, seeded
network construction, the training loop, the deployment walk-forward, the context-episode
meta-test protocol, save / load in the common format, and the per-iteration progress loop.

An agent class sets `algo`, `config_cls` and implements `build_network()` (called once, under a
fixed seed) and `step_policy()` (a fresh deterministic `StepPolicy`, its state reset); set
`stateful = False` when the policy has no memory (the adaptation curve is then flat).

Training (`fit`) is collect, then update, as Stable-Baselines3's `collect_rollouts()` /
`train()`: `fit_context(sampler, rng, gen)` builds what one `fit` call shares (a `FitContext`:
env, buffers, optimiser...), then every iteration is `update(collect(sampler, ctx), ctx)`:
`collect` plays the iteration's rollouts, `update` learns from them and returns its metrics.
The random streams and the optimiser belong to the agent: each `fit` call continues them, and
`save` writes them (`fin_meta.agents.training`), so training resumes exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ValidationError

from fin_meta.agents.base import Callback
from fin_meta.agents.deploy import (
    StepPolicy,
    mean_log_return,
    play_episodes,
    positions_by_length,
    walk_forward_batch,
)
from fin_meta.agents.networks import Normalizer
from fin_meta.agents.normalization import observation_stats
from fin_meta.agents.serialization import (
    load_module_state,
    read_manifest,
    read_training_state,
    read_weights,
    save_agent_dir,
    validate_model,
)
from fin_meta.agents.torch_runtime import cpu_threads, seeded
from fin_meta.agents.training import (
    FitContext,
    capture_training_state,
    restore_training_state,
    run_iterations,
)
from fin_meta.devices import resolve_device
from fin_meta.envs.config import DEFAULT_EPISODE_LENGTH, EnvConfig, make_config, observation_size
from fin_meta.envs.features import first_decision_bar
from fin_meta.errors import AgentError, ConfigError, DataError
from fin_meta.seeding import numpy_generator, torch_generator
from fin_meta.tasks import TaskSampler

__all__ = ["TorchAgent", "coerce_hparams", "coerce_env_config"]


def coerce_env_config(env_config: EnvConfig | Mapping[str, Any] | None) -> EnvConfig:
    """An `EnvConfig` from itself, a mapping of its fields, or None (defaults)."""
    if isinstance(env_config, EnvConfig):
        return env_config
    return make_config(**dict(env_config or {}))


def coerce_hparams(cls: type[BaseModel], hparams: BaseModel | Mapping[str, Any] | None) -> BaseModel:
    """A `cls` instance from itself, a mapping of its fields, or None; bad keys -> `ConfigError`."""
    if isinstance(hparams, cls):
        return hparams
    if isinstance(hparams, BaseModel):
        hparams = hparams.model_dump()
    try:
        return cls.model_validate(dict(hparams or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid {cls.__name__}: {problems}") from None


class TorchAgent:
    """Mixin for agents whose deployment is a deterministic `StepPolicy` over one env."""

    algo: ClassVar[str]
    config_cls: ClassVar[type[BaseModel]]
    stateful: ClassVar[bool] = True

    def __init__(
        self,
        env_config: EnvConfig | Mapping[str, Any] | None = None,
        hparams: BaseModel | Mapping[str, Any] | None = None,
    ) -> None:
        self.env_config = coerce_env_config(env_config)
        self.hparams = coerce_hparams(self.config_cls, hparams)
        try:
            self.device = resolve_device(self.hparams.device)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.obs_size = observation_size(self.env_config)
        self.episode_length = self.env_config.episode_length or DEFAULT_EPISODE_LENGTH
        self.history: list[dict[str, float]] = []
        self.iterations_trained = 0  # across fit calls and save/load (history is this session's)
        self._rng: np.random.Generator | None = None  # training streams and optimiser: made by the first fit
        self._train_gen: torch.Generator | None = None
        self._adam: torch.optim.Optimizer | None = None
        with seeded(self.hparams.seed):
            self.net = self.build_network()
        self.net.to(self.device)

    # -- hooks -----------------------------------------------------------------------------
    def build_network(self) -> torch.nn.Module:
        """The agent's network (called under a fixed seed)."""
        raise NotImplementedError

    def step_policy(self) -> StepPolicy:
        """A fresh deterministic policy (state reset) for deployment and the meta-test."""
        raise NotImplementedError

    def fit_context(self, sampler: TaskSampler, rng: np.random.Generator, gen: torch.Generator) -> FitContext:
        """What one `fit` call on `sampler`'s tasks shares across its iterations (checks that
        the sampler can serve the agent's tasks, naming the fix when it cannot)."""
        raise NotImplementedError

    def collect(self, sampler: TaskSampler, ctx: FitContext) -> Any:
        """Play one iteration's rollouts on freshly sampled tasks (no learning): the rollout
        `update` learns from (each agent defines its own)."""
        raise NotImplementedError

    def update(self, rollout: Any, ctx: FitContext) -> dict[str, float]:
        """Learn from one collected rollout; returns the iteration's metrics."""
        raise NotImplementedError

    @property
    def input_normalizer(self) -> Normalizer:
        """The network's fixed input scaling (fitted on the first `fit` call's prices)."""
        return self.net.norm

    # -- training ----------------------------------------------------------------------------
    def train_iteration(self, sampler: TaskSampler, ctx: FitContext) -> dict[str, float]:
        """One training iteration: `update(collect(sampler, ctx), ctx)`; returns its metrics."""
        return self.update(self.collect(sampler, ctx), ctx)

    def fit(
        self,
        sampler: TaskSampler,
        *,
        iterations: int,
        callback: Callback | None = None,
        progress: bool = True,
    ) -> list[dict[str, float]]:
        """Train for `iterations` iterations of `update(collect(sampler, ctx), ctx)` on the
        `TaskSampler`'s tasks (built with `window >=` the env's); returns the per-iteration
        metrics (the agent's `update` documents its own; `run_iterations` adds env steps and
        timings), also given to `callback(i, metrics)` (i: 0-based in this call). Input scaling
        is fitted on the sampler's (training) prices at the first call and fixed from then on; a
        later call (or one after `save` / `load`) continues the same random streams and optimiser
        state, so `fit(n1)` then `fit(n2)` trains as `fit(n1 + n2)`. `iterations_trained` and
        `history` grow after each iteration (a `save` from the callback holds the state after it)."""
        if sampler.window < self.env_config.window:
            raise ConfigError(
                f"the TaskSampler was built with window={sampler.window} but the agent's env uses "
                f"window={self.env_config.window}; build the sampler with window >= {self.env_config.window}"
            )
        if self.iterations_trained == 0:
            mean, std = observation_stats(sampler.prices, self.env_config)
            self.input_normalizer.set(torch.as_tensor(mean), torch.as_tensor(std))
        self.episode_length = sampler.episode_length
        ctx = self.fit_context(sampler, *self.streams())

        def record(i: int, metrics: dict[str, float]) -> None:
            self.history.append(metrics)
            self.iterations_trained += 1
            if callback is not None:
                callback(i, metrics)

        with self.threads():
            history = run_iterations(iterations, lambda _: self.train_iteration(sampler, ctx),
                                     env_steps_per_iteration=ctx.env_steps_per_iteration, callback=record,
                                     progress=progress, desc=self.algo, done=self.iterations_trained)
        self.net.eval()
        return history

    def threads(self) -> contextlib.AbstractContextManager[None]:
        """The block runs with `hparams.cpu_threads` torch threads on CPU."""
        return cpu_threads(getattr(self.hparams, "cpu_threads", None), self.device)

    def streams(self) -> tuple[np.random.Generator, torch.Generator]:
        """The task (numpy) and action / minibatch (torch) generators every `fit` continues,
        seeded `seed + iterations_trained` when first needed (a new agent: `seed`)."""
        if self._rng is None or self._train_gen is None:
            seed = self.hparams.seed + self.iterations_trained
            self._rng, self._train_gen = numpy_generator(seed), torch_generator(seed, self.device)
        return self._rng, self._train_gen

    def generators(self) -> dict[str, torch.Generator]:
        """The torch generators of the training state, by name (an agent adds its own)."""
        return {"train": self.streams()[1]}

    def extra_training_state(self) -> dict[str, Any]:
        """What else the next `fit` continues from, saved with the training state (tensors,
        ints, lists and dicts of them); none by default."""
        return {}

    def restore_extra_training_state(self, state: Mapping[str, Any]) -> None:
        """Take back what `extra_training_state` saved (`state`: the whole training state)."""

    def build_optimizer(self) -> torch.optim.Optimizer:
        """A fresh optimiser of the network's parameters (Adam, `hparams.lr`)."""
        return torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr, eps=1e-5)

    def optimizer(self) -> torch.optim.Optimizer:
        """The agent's optimiser (built on first use, kept across `fit` calls and saved)."""
        if self._adam is None:
            self._adam = self.build_optimizer()
        return self._adam

    # -- deployment --------------------------------------------------------------------------
    def positions(self, prices: pd.DataFrame) -> pd.Series:
        """Online, causal walk-forward: positions held (float64, same index, 0 on the
        first `window` warm-up bars), deterministic; a stateful policy adapts as it goes."""
        return self.positions_batch([prices])[0]

    @torch.no_grad()
    def positions_batch(self, frames: Sequence[pd.DataFrame]) -> list[pd.Series]:
        """`positions` of several frames, walked forward together (one batched policy step per
        bar for frames of equal length; each frame on its own, as if walked alone)."""
        self.net.eval()
        with self.threads():
            return positions_by_length(
                frames, lambda group: walk_forward_batch(group, self.env_config, self.step_policy(), device=self.device),
                self.algo)

    @torch.no_grad()
    def context_bars(self, steps: Sequence[int]) -> int:
        """Bars of a held-out segment this agent uses before its evaluation part when the
        meta-test goes up to k = max(steps): max(steps) context episodes of `episode_length`
        (none for a memoryless policy, whose curve is flat)."""
        return max(int(k) for k in steps) * self.episode_length if self.stateful else 0

    def adaptation_curve(
        self, prices: pd.DataFrame, start: int, end: int, steps: Sequence[int], *, eval_start: int | None = None
    ) -> dict[int, float]:
        """Meta-test on bars `[start, end)` (decisions `start .. end-2`, settled by close
        `end-1`). With L = the training episode length and K = max(steps), the evaluation part
        is the decisions from `e` to `end-2`, the same for every k; `e = eval_start` when given
        (the meta-test passes one shared by every agent), else `start + K*L`. For each k the
        policy starts fresh at bar `e - k*L`, plays k context episodes of L decisions (position
        and equity restart at each, the policy's memory carries on), then the evaluation
        episode; the value is its mean per-bar net log return. Only bars before each decision
        (and its own close) are seen. A memoryless policy gives the same value for every k."""
        steps = sorted({int(k) for k in steps})
        if not steps or steps[0] < 0:
            raise ConfigError(f"steps={steps}: give context-episode counts k >= 0")
        length = self.episode_length
        context = self.context_bars(steps)
        eval_start = start + context if eval_start is None else int(eval_start)
        n_eval = end - 1 - eval_start
        if (eval_start - context < max(start, first_decision_bar(self.env_config.window))
                or end > len(prices) or n_eval < 1):
            raise DataError(
                f"segment [{start}, {end}) evaluated from bar {eval_start} cannot hold {context} bars "
                f"of context ({steps[-1]} episodes of {length}) plus an evaluation part (needs "
                f"start >= window={self.env_config.window}, end <= {len(prices)}, "
                f"eval_start - start >= {context} and end - eval_start >= 2)"
            )
        self.net.eval()
        out: dict[int, float] = {}
        for k in steps if self.stateful else [0]:  # a memoryless policy: no context to play
            episodes = [(eval_start - (k - j) * length, length) for j in range(k)]
            with self.threads():
                log = play_episodes(prices, self.env_config, self.step_policy(),
                                    [*episodes, (eval_start, n_eval)], device=self.device)
            out[k] = mean_log_return(log)
        return out if self.stateful else dict.fromkeys(steps, out[0])

    # -- persistence -------------------------------------------------------------------------
    def spaces(self) -> dict[str, Any]:
        """Observation / action spaces recorded in agent.json."""
        low, high = self.env_config.position_bounds
        band = {"action_size": 2} if self.env_config.no_trade_band else {}  # absent from earlier saves
        return {"observation_size": self.obs_size, "action": self.env_config.action, "low": low, "high": high, **band}

    def save(self, path: str | Path, *, training_state: bool = True) -> Path:
        """Write weights.pt + agent.json to directory `path` atomically, and training_state.pt
        (what the next `fit` continues from) once the agent has been fitted, unless
        `training_state=False` (deployment only); returns the path."""
        state = None
        if training_state and self._rng is not None:
            state = {**capture_training_state(self.streams()[0], self.generators(), self.optimizer(), self.device),
                     **self.extra_training_state()}
        return save_agent_dir(
            path, algo=self.algo, hparams=self.hparams, env_config=self.env_config, spaces=self.spaces(),
            weights={"net": self.net.state_dict()}, training_state=state,
            extra={"episode_length": self.episode_length, "iterations_trained": self.iterations_trained},
        )

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> TorchAgent:
        """Rebuild a saved agent (on `device`; default: the saved one, or `auto` when that one
        is not available here, e.g. a CUDA-trained agent on a CPU machine). `AgentError` names
        what is missing, corrupt or incompatible."""
        manifest = read_manifest(path)
        if manifest["algo"] != cls.algo:
            raise AgentError(f"{path} holds a {manifest['algo']!r} agent, not {cls.algo!r}; use fin_meta.load_agent")
        env_config = validate_model(EnvConfig, manifest["env_config"], "env_config", path)
        hparams = validate_model(cls.config_cls, manifest["hparams"], "hparams", path)
        if device is None:
            try:
                resolve_device(hparams.device)
            except ValueError:
                device = "auto"
        if device is not None:
            hparams = hparams.model_copy(update={"device": device})
        agent = cls(env_config=env_config, hparams=hparams)
        saved = manifest["spaces"]
        if saved != agent.spaces():
            raise AgentError(f"{path}: saved spaces {saved} do not match its env_config ({agent.spaces()})")
        weights = read_weights(path, ("net",))
        load_module_state(agent.net, weights["net"], f"{cls.algo} network")
        extra = manifest.get("extra") or {}
        agent.episode_length = int(extra.get("episode_length", agent.episode_length))
        agent.iterations_trained = int(extra.get("iterations_trained", 0))
        state = read_training_state(path)
        if state is not None:
            restore_training_state(state, agent.streams()[0], agent.generators(), agent.optimizer(), agent.device, path,
                                   extra=agent.restore_extra_training_state)
        return agent

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device}, env_config={self.env_config!r})"
