"""One seed of a set: `run_child` runs `run_experiment` with that seed (tagged as a child of the
parent run) and keeps what the parent needs, in a small picklable `SeedResult`, so that a
worker process can send it back."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fin_meta.agents.torch_runtime import cpu_threads
from fin_meta.config import ExperimentConfig
from fin_meta.errors import FinMetaError
from fin_meta.pipeline.run_job import run_experiment
from fin_meta.tracking.nesting import child_tags

__all__ = ["SEED_ROLE", "SeedFailed", "SeedResult", "SourceResult", "child_config", "run_child", "seed_failure",
           "torch_threads"]

SEED_ROLE = "seed"
"""The role tag (`nesting.ROLE_TAG`) of a seed's run; its seed is in the tag `seed`."""


@dataclass
class SourceResult:
    """One source's test period in one seed's run. name: the asset name (`sp500`). table: its
    `results_table` (net Sharpe and CI, gross Sharpe, return, max drawdown, turnover and cost
    drag per year; one row per strategy). returns: per-bar net returns (bars x strategies, the
    agent first). bars_per_year: what annualised its figures."""

    name: str
    table: pd.DataFrame
    returns: pd.DataFrame
    bars_per_year: float


@dataclass
class SeedResult:
    """What one seed's run gives the parent: its seed, MLflow run id (None untracked), the
    headline strategy (the agent's column), one `SourceResult` per source, wall seconds."""

    seed: int
    run_id: str | None
    agent: str
    sources: list[SourceResult] = field(default_factory=list)
    wall_s: float = 0.0


def child_config(config: ExperimentConfig, seed: int) -> ExperimentConfig:
    """The config of one seed's run: `config` with `seed` and no seed list (a plain run, which
    `fin-meta run --resume` can continue on its own)."""
    return config.model_copy(update={"seed": int(seed), "seeds": None})


def torch_threads(n: int) -> contextlib.AbstractContextManager[None]:
    """Run the body with `n` torch CPU threads, then restore the previous number
    (`agents.torch_runtime.cpu_threads`). Results of CPU kernels depend on the thread count, so
    every seed of a set runs with the same number whatever `--jobs` is."""
    import torch

    return cpu_threads(n, torch.device("cpu"))


def run_child(config: ExperimentConfig, seed: int, parent_run_id: str | None, *, progress: bool = False,
              echo: Callable[[str], Any] | None = None) -> SeedResult:
    """Run `config` with `seed` as a child run of `parent_run_id` (untracked when the config is)
    and return its `SeedResult`."""
    cfg = child_config(config, seed)
    tags = child_tags(parent_run_id, SEED_ROLE, seed=str(seed)) if parent_run_id else None
    outcome = run_experiment(cfg, echo=echo, progress=progress, extra_tags=tags)
    sources = [SourceResult(ev.name, ev.table, pd.DataFrame(ev.result.returns), float(ev.result.bars_per_year))
               for ev in outcome.evaluations]
    agent = str(outcome.evaluations[0].positions.columns[0]) if outcome.evaluations else cfg.agent.algo
    return SeedResult(seed=int(seed), run_id=outcome.run_id, agent=agent, sources=sources, wall_s=outcome.wall_s)


class SeedFailed(RuntimeError):
    """A seed's run failed with an error that is not the user's input (a bug, a crash)."""


def seed_failure(seed: int, error: BaseException) -> Exception:
    """The error a seed set raises when seed `seed`'s run raised `error`: the same kind of
    `FinMetaError` (one line at the CLI, exit 2) or a `SeedFailed`, its message naming the seed."""
    if isinstance(error, FinMetaError):
        try:
            return type(error)(f"seed {seed}: {error}")
        except Exception:  # a subclass with another constructor
            return FinMetaError(f"seed {seed}: {error}")
    return SeedFailed(f"seed {seed} failed: {type(error).__name__}: {error}")
