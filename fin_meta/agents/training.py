"""What a torch agent's training carries from one iteration, and one `fit` call, to the next:
`FitContext` (what one call shares), `run_iterations` (the loop of iterations under a progress
bar) and the training state that `fit` continues across calls and `save` writes, so that a run
interrupted after n1 iterations and resumed for n2 more trains bitwise as one of n1 + n2 (on
the same device).

The training state holds the task generator's bit-generator state (numpy), the states of the
agent's torch generators by name (`train`: action sampling and minibatches; MAML adds
`explore`), the device type they ran on and the optimiser's `state_dict` (Adam moments and step
counts). `save` writes it as `training_state.pt` next to the weights
(`serialization.TRAINING_STATE_FILE`). It is optional: an agent loaded without it starts from
streams seeded `seed + iterations_trained` and a fresh optimiser.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from fin_meta.agents.base import Callback
from fin_meta.agents.serialization import TRAINING_STATE_FILE
from fin_meta.errors import AgentError, ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["FitContext", "run_iterations", "capture_training_state", "restore_training_state"]


def run_iterations(
    iterations: int,
    one_iteration: Callable[[int], dict[str, float]],
    *,
    env_steps_per_iteration: int,
    callback: Callback | None,
    progress: bool,
    desc: str,
    done: int = 0,
) -> list[dict[str, float]]:
    """Call `one_iteration(i)` `iterations` times under a tqdm bar that continues from `done`
    iterations already trained (`done/total`); adds `iteration` (counted from the first, across
    calls), `env_steps` (cumulative, likewise), `time_s` and `env_steps_per_s` (learning
    included) to its metrics and hands them to `callback(i, metrics)` (i: 0-based in this call)."""
    if iterations < 1:
        raise ConfigError(f"iterations={iterations}: train for at least one iteration")
    history: list[dict[str, float]] = []
    bar = tqdm(range(iterations), desc=desc, disable=not progress, leave=False, initial=done, total=done + iterations)
    for i in bar:
        t0 = time.perf_counter()
        metrics = one_iteration(i)
        elapsed = time.perf_counter() - t0
        metrics.update(
            iteration=float(done + i),
            env_steps=float(env_steps_per_iteration * (done + i + 1)),
            time_s=elapsed,
            env_steps_per_s=env_steps_per_iteration / max(elapsed, 1e-9),
        )
        history.append(metrics)
        if progress:
            bar.set_postfix(ret=f"{metrics.get('episode_return', float('nan')):.4f}",
                            sps=f"{metrics['env_steps_per_s']:.0f}")
        if callback is not None:
            callback(i, metrics)
    return history


@dataclass
class FitContext:
    """What one `fit` call shares across its iterations; agents extend it (env, buffers, loss
    weights...). `rng`: the task generator (numpy); `gen`: the action-sampling / minibatch
    generator (torch, on the device); `optimizer`: the agent's; these three are the agent's own,
    continued by the next `fit`. `env_steps_per_iteration`: env steps one iteration takes."""

    rng: np.random.Generator
    gen: torch.Generator
    optimizer: torch.optim.Optimizer
    env_steps_per_iteration: int


def capture_training_state(
    rng: np.random.Generator,
    generators: Mapping[str, torch.Generator],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> dict[str, Any]:
    """The current state of `rng`, `generators` and `optimizer` (live references: save it at
    once); the generators ran on `device`."""
    return {
        "numpy": rng.bit_generator.state,
        "torch": {name: gen.get_state() for name, gen in generators.items()},
        "device": device.type,
        "optimizer": optimizer.state_dict(),
    }


def restore_training_state(
    state: Mapping[str, Any],
    rng: np.random.Generator,
    generators: Mapping[str, torch.Generator],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    path: str | Path,
    extra: Callable[[Mapping[str, Any]], None] | None = None,
) -> None:
    """Set `rng`, `generators` and `optimizer` in place to a state captured by
    `capture_training_state` (read from the agent directory `path`). Torch generator states are
    device-specific: saved on another device type, the generators keep their fresh seeds. A
    state that does not fit is an `AgentError`."""
    try:
        rng.bit_generator.state = dict(state["numpy"])
        if state["device"] == device.type:
            saved = state["torch"]
            for name, gen in generators.items():
                gen.set_state(saved[name])
        optimizer.load_state_dict(state["optimizer"])
        if extra is not None:  # the agent's own part (`TorchAgent.restore_extra_training_state`)
            extra(state)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise AgentError(
            f"{Path(path) / TRAINING_STATE_FILE} does not fit this agent ({type(exc).__name__}: {exc}); "
            "the directory is corrupt or was edited"
        ) from exc
