"""The compute stage of a walk-forward with refits (`fin_meta.pipeline.walk_forward` logs it).

Per fold (`fin_meta.splits.walk_forward_folds`, one list per source, the same number of folds),
everything the agents learn from comes from the fold's training bars only: the regime labels
(fitted on them), the task sampler (their segments) and, at the first fold, the agents' input
scaling and feature models. The agents are meta-trained (`warm_start`: the previous fold's agents train on; else
fresh agents seeded per fold by `fold_seed`), then walked forward online over the fold's trade
block with a year of bars before it as context (`stages.with_context`: causal, position t uses
bars up to t) and only the block's positions are kept. `stitch` joins the blocks into one test
series; `fold_stats` backtests each block on its own for the per-fold table.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fin_meta.agents import Agent
from fin_meta.backtest import backtest
from fin_meta.errors import ConfigError
from fin_meta.pipeline.stages import (
    SourceData,
    asset_name,
    detect_labels,
    task_sampler,
    with_context,
)
from fin_meta.splits import Fold
from fin_meta.tasks import TaskSampler

__all__ = ["FOLD_METRICS", "FoldRun", "MakeAgents", "OnIteration", "TaskSettings", "fold_sampler", "fold_seed",
           "fold_source", "fold_stats", "run_folds", "stitch"]

FOLD_METRICS = ("sharpe", "gross_sharpe", "total_return", "max_drawdown", "turnover", "cost_drag")
"""The per-fold figures (`BacktestResult.stats` keys) of the fold table and the `fold.*` metrics."""

MakeAgents = Callable[[int, Sequence[SourceData]], dict[str, Agent]]
"""`make_agents(seed, sources)`: fresh, untrained agents `{key: agent}` (the main one first) seeded
`seed`, whose feature models (if any) are fitted on the `sources`' training frames only."""
OnIteration = Callable[[int, str, int, dict[str, float]], Any]
"""`on_iteration(fold, key, step, metrics)`: after each training iteration; `step` counts from 0
across the folds (the iterations earlier folds trained + the 0-based iteration in this fold)."""


@dataclass(frozen=True)
class TaskSettings:
    """How a fold's training bars become tasks: regime `method` and `params` (windows in bars),
    `min_length` (bars; shorter runs merge), `hindsight` task labels or causal ones, the
    episode length and observation window (bars) and where windows may lie (`windows`)."""

    method: str
    params: Mapping[str, Any]
    min_length: int
    hindsight: bool
    episode_length: int
    window: int
    windows: str = "start"


@dataclass
class FoldRun:
    """One trained fold: its folds (one per source), the agents as trained on it (copies: a
    warm-started later fold does not change them), their positions on each source's trade block
    (bars x agent keys, fractions of equity), the causal regime labels of those bars (fitted on
    the fold's training bars), the seed the agents were made with, and its wall seconds."""

    folds: list[Fold]
    agents: dict[str, Agent]
    positions: list[pd.DataFrame]
    labels: list[pd.Series]
    seed: int
    seconds: float

    @property
    def number(self) -> int:
        """The fold's index, from 0."""
        return self.folds[0].number


def fold_seed(seed: int, number: int) -> int:
    """The seed of fold `number`'s fresh agents: `seed` for fold 0 (its agents start as those of a
    run without refits), then distinct seeds drawn from `numpy.random.SeedSequence([seed, number])`."""
    if number == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(number)]).generate_state(1)[0])


def fold_source(src: SourceData, fold: Fold) -> SourceData:
    """What fold `fold` of `src` may see: the bars up to the end of its trade block (`full`), its
    training bars (`train`), its trade block (`test`) and the block with a year of context (`walk`)."""
    full = src.full.iloc[: fold.trade[1]]
    block = full.iloc[fold.trade[0]:]
    return SourceData(src.source, full, full.iloc[fold.train[0]: fold.train[1]], block, with_context(full, block))


def fold_sampler(sources: Sequence[SourceData], folds: Sequence[Fold],
                 tasks: TaskSettings) -> tuple[TaskSampler, list[SourceData], list[pd.Series]]:
    """The task sampler of one fold (regime segments of every source's fold training bars, labels
    fitted on them only), the fold's sources (`fold_source`) and their causal labels on the block."""
    parts = [fold_source(src, fold) for src, fold in zip(sources, folds, strict=True)]
    labels = [detect_labels(part, tasks.method, tasks.params, tasks.min_length, hindsight_tasks=tasks.hindsight)
              for part in parts]
    sampler = task_sampler(parts, labels, episode_length=tasks.episode_length, window=tasks.window,
                           min_segment=tasks.min_length, windows=tasks.windows)
    return sampler, parts, [lab.causal.loc[part.test.index] for part, lab in zip(parts, labels, strict=True)]


def run_folds(sources: Sequence[SourceData], folds: Sequence[Sequence[Fold]], make_agents: MakeAgents, *,
              seed: int, iterations: int, warm_start: bool, tasks: TaskSettings, progress: bool = False,
              refit_iterations: int | None = None, on_iteration: OnIteration | None = None,
              on_fold: Callable[[FoldRun], Any] | None = None) -> list[FoldRun]:
    """Train and trade every fold in order (see the module docstring). `folds`: per source, its
    folds (`walk_forward_folds`, the same count); `make_agents(seed, fold_sources)`: fresh agents; each fold
    trains every agent `iterations` iterations, except that a warm-started refit (a fold after the
    first with `warm_start`) trains `refit_iterations` when given; `on_fold(run)` after each fold."""
    if any(len(f) != len(folds[0]) for f in folds):
        counts = ", ".join(f"{src.source}: {len(f)}" for src, f in zip(sources, folds, strict=True))
        raise ConfigError(f"walk-forward: the sources' test periods split into different numbers of folds ({counts}); "
                          "give them the same trading calendar or run them separately")
    per_fold = list(zip(*folds, strict=True))
    runs: list[FoldRun] = []
    agents: dict[str, Agent] | None = None
    made_with, trained = seed, 0
    for fold_group in per_fold:
        t0 = time.perf_counter()
        number = fold_group[0].number
        sampler, parts, labels = fold_sampler(sources, fold_group, tasks)
        budget = iterations  # a warm-started refit may train fewer (refit_iterations)
        if agents is None or not warm_start:
            made_with = fold_seed(seed, number)
            agents = make_agents(made_with, parts)
        elif refit_iterations is not None:
            budget = refit_iterations
        for key, agent in agents.items():
            report = None if on_iteration is None else _reporter(on_iteration, number, key, trained)
            agent.fit(sampler, iterations=budget, callback=report, progress=progress)
        trained += budget
        positions = [pd.DataFrame({key: agent.positions(part.walk) for key, agent in agents.items()})
                     .loc[part.test.index] for part in parts]
        kept = {key: copy.deepcopy(agent) for key, agent in agents.items()} if warm_start else dict(agents)
        run = FoldRun(list(fold_group), kept, positions, labels, made_with, time.perf_counter() - t0)
        runs.append(run)
        if on_fold is not None:
            on_fold(run)
    return runs


def _reporter(on_iteration: OnIteration, number: int, key: str,
              before: int) -> Callable[[int, dict[str, float]], None]:
    def report(iteration: int, metrics: dict[str, float]) -> None:
        on_iteration(number, key, before + iteration, metrics)

    return report


def stitch(runs: Sequence[FoldRun], source: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Source `source`'s out-of-sample positions of every fold joined into one series (test bars
    x agent keys) and the causal labels of those bars (each block's fitted on its fold)."""
    positions = pd.concat([run.positions[source] for run in runs])
    labels = pd.concat([run.labels[source] for run in runs])
    return positions, labels


def fold_stats(runs: Sequence[FoldRun], sources: Sequence[SourceData], rules: Sequence[pd.DataFrame], *,
               fees: float, slippage: float, max_position: float) -> pd.DataFrame:
    """Every fold's block backtested on its own (the agents' positions beside the rule strategies'
    `rules`, one frame per source over at least the test bars), net of `fees` and `slippage`: one
    row per (fold, source, strategy) with the fold's dates, bar counts, seed and `FOLD_METRICS`."""
    rows = []
    for run in runs:
        for i, (src, fold) in enumerate(zip(sources, run.folds, strict=True)):
            index = src.full.index
            block = run.positions[i].index
            positions = pd.concat([run.positions[i], rules[i].loc[block]], axis=1)
            stats = backtest(src.full.loc[block], positions, fees=fees, slippage=slippage,
                             max_position=max_position).stats
            (a, b), (c, d) = fold.train, fold.trade
            head = {"fold": run.number, "source": asset_name(src.source), "train_start": index[a].date(),
                    "train_end": index[b - 1].date(), "train_bars": b - a, "trade_start": index[c].date(),
                    "trade_end": index[d - 1].date(), "trade_bars": d - c, "seed": run.seed}
            rows += [{**head, "strategy": name, **{m: float(stats.loc[name, m]) for m in FOLD_METRICS}}
                     for name in stats.index]
    return pd.DataFrame(rows)
