"""The `Agent` protocol every algorithm implements (RL², MAML, pooled PPO, recurrent PPO).

Kept small on purpose: the pipeline, the meta-test and notebooks only use these members.
Shared machinery (the deployment walk-forward, deterministic evaluation) lives in
`fin_meta.agents.deploy`; the save format in `fin_meta.agents.serialization`.

Legend of tensor suffixes used across `fin_meta.agents`: N envs (or tasks), T time steps,
O observation size, H hidden size, A action size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

    from fin_meta.envs import EnvConfig
    from fin_meta.tasks import TaskSampler

__all__ = ["Agent", "Callback"]

Callback = Callable[[int, dict[str, float]], Any]
"""`callback(iteration, metrics)`: called once per training iteration (0-based) with floats such
as `episode_return`, `policy_loss`, `value_loss`, `entropy`, `approx_kl`, `env_steps_per_s`."""


@runtime_checkable
class Agent(Protocol):
    """A trading agent: meta-trained on tasks, then walked forward online over prices.

    Implementations are constructed as `Cls(env_config=..., hparams=...)` where `env_config` is an
    `EnvConfig` (or a mapping of its fields, or None for defaults) and `hparams` the algorithm's
    pydantic config (or a mapping, or None); `fin_meta.agents.make_agent` relies on this."""

    algo: ClassVar[str]
    """`"ppo" | "rl2" | "maml" | "rppo"`: the registry key, stored in the save format."""
    env_config: EnvConfig
    """The environment settings it was trained with (window, costs, reward, action space...)."""

    def fit(
        self,
        sampler: TaskSampler,
        *,
        iterations: int,
        callback: Callback | None = None,
        progress: bool = True,
    ) -> list[dict[str, float]]:
        """(Meta-)train for `iterations` iterations on a `VectorTradingEnv` over the sampler's
        prices, on the agent's device; returns the per-iteration metrics (also given to
        `callback(iteration, metrics)`, iteration 0-based in this call); a tqdm bar when
        `progress`. A later call continues the training: `fit(n1)` then `fit(n2)` is `fit(n1 + n2)`."""
        ...

    def positions(self, prices: pd.DataFrame) -> pd.Series:
        """Online, causal walk-forward over `prices`: float64 target positions (fraction of
        equity) on the same index, 0 on the `window-1` warm-up bars; position t uses bars up to
        close t only; deterministic (mean / most likely action); adapts as it goes."""
        ...

    def context_bars(self, steps: Sequence[int]) -> int:
        """Bars of a held-out segment the agent adapts on before its evaluation part, for the
        meta-test up to k = max(steps) (RL²: k episodes; MAML: its support window; PPO: 0)."""
        ...

    def adaptation_curve(
        self, prices: pd.DataFrame, start: int, end: int, steps: Sequence[int], *, eval_start: int | None = None
    ) -> dict[int, float]:
        """Meta-test on bars `[start, end)` of `prices`: for each k in `steps`, the mean per-bar
        log return (net of costs) on the evaluation part of the segment after k adaptation steps
        (MAML) / k context episodes (RL²; flat for PPO). The evaluation part (decisions from
        `eval_start`, default the agent's own `start + context`, to `end - 2`) is the same for
        every k, and only data before each evaluated bar is used; each algorithm documents its
        exact protocol. The meta-test passes one `eval_start` to every agent so that their
        curves are scored on the same bars."""
        ...

    def save(self, path: str | Path, *, training_state: bool = True) -> Path:
        """Write the agent to directory `path` (atomically), with the state a later `fit`
        continues from (random streams, optimiser) unless `training_state=False`; returns the path."""
        ...

    @classmethod
    def load(cls, path: str | Path) -> Agent:
        """Rebuild an agent saved by `save` (raises `AgentError` naming what is wrong)."""
        ...
