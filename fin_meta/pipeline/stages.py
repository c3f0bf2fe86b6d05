"""The stages of the jobs. Each computes and returns values; none writes to MLflow except through
the training callback (per-iteration metrics and checkpoints, built from the tracker). Each
takes the values it reads, not the experiment config: `run_job` and `backtest_job` unpack it.

Data flows one way: sources -> labels -> task sampler -> trained agents -> meta-test and
`evaluate` (one backtest per source) -> `fin_meta.tracking.records`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from fin_meta.agents import Agent, make_agent
from fin_meta.backtest import Evaluation, backtest
from fin_meta.backtest.report import results_table
from fin_meta.data import load_prices
from fin_meta.envs.config import EnvConfig
from fin_meta.metatest import adaptation_context, adaptation_curves, summarise_curves
from fin_meta.regimes import detect_regimes
from fin_meta.regimes.segments import held_out_segments, merged_labels
from fin_meta.splits import split_periods
from fin_meta.tasks import TaskSampler
from fin_meta.tracking.checkpoints import Checkpointer
from fin_meta.tracking.run import Tracker
from strategies import strategy_positions

__all__ = [
    "CONTEXT_BARS",
    "Adaptation",
    "SourceData",
    "SourceLabels",
    "asset_name",
    "detect_labels",
    "evaluate",
    "load_sources",
    "meta_test",
    "task_sampler",
    "train",
]

CONTEXT_BARS = 252
"""Bars before the test period that the walk-forward sees as context (one year)."""


@dataclass
class SourceData:
    """One source's prices: the whole frame, its train and test periods, and the walk-forward
    frame (`walk`) = the test period preceded by up to `CONTEXT_BARS` bars of context."""

    source: str
    full: pd.DataFrame
    train: pd.DataFrame
    test: pd.DataFrame
    walk: pd.DataFrame

    @property
    def test_start(self) -> int:
        """Position of the first test bar inside `walk`."""
        return len(self.walk) - len(self.test)


@dataclass
class SourceLabels:
    """Regime labels of one source. `train`: the labels that group training tasks (short runs
    merged); `causal`: causal labels over the walk-forward frame (held-out segments, reports)."""

    train: pd.Series
    causal: pd.Series


@dataclass
class Adaptation:
    """The meta-test: `curves` per (agent, segment, k) from `adaptation_curves` and their
    `summary` per (agent, k) with bootstrap CIs (mean per-bar net log return)."""

    curves: pd.DataFrame
    summary: pd.DataFrame


def asset_name(source: str) -> str:
    """A short metric-safe name of a source: `yf:SPY` -> `SPY`, `sample:sp500` -> `sp500`."""
    tail = source.split(":", 1)[-1]
    return Path(tail).stem if source.startswith("csv:") else tail.replace("/", "_")


def load_sources(
    sources: Sequence[str],
    periods: Mapping[str, Any],
    *,
    start: Any = None,
    end: Any = None,
    data_dir: str | Path | None = None,
    ffill_limit: int = 5,
    source_params: Mapping[str, Any] | None = None,
) -> list[SourceData]:
    """Load every source and split it into its periods (`periods`: keyword arguments of
    `split_periods`; see `SourceData`)."""
    loaded = load_prices(list(sources), start=start, end=end, data_dir=data_dir, ffill_limit=ffill_limit,
                         **(source_params or {}))
    out = []
    for source, prices in loaded.items():
        parts = split_periods(prices, **periods)
        test = parts["test"]
        first = prices.index.get_loc(test.index[0])
        walk = prices.iloc[max(0, first - CONTEXT_BARS) : first + len(test)]
        out.append(SourceData(source, prices, parts["train"], test, walk))
    return out


def detect_labels(src: SourceData, method: str, params: Mapping[str, Any], min_length: int, *,
                  hindsight_tasks: bool) -> SourceLabels:
    """Regime labels of `src` by `method`, fitted on its training period only: training-task
    labels (hindsight or causal, runs under `min_length` bars merged) and causal walk labels."""
    fit_end = src.train.index[-1]
    train = detect_regimes(src.train, method=method, causal=not hindsight_tasks, fit_end=fit_end, **params)
    causal = detect_regimes(src.full, method=method, causal=True, fit_end=fit_end, **params)
    return SourceLabels(train=merged_labels(train, min_length), causal=causal.loc[src.walk.index])


def task_sampler(sources: Sequence[SourceData], labels: Sequence[SourceLabels], *, episode_length: int,
                 window: int, min_segment: int) -> TaskSampler:
    """The sampler of training tasks: regime segments of every source's training period."""
    return TaskSampler([src.train for src in sources], [lab.train for lab in labels],
                       episode_length=episode_length, window=window, min_segment=min_segment)


def train(algo: str, env_config: EnvConfig, hparams: BaseModel, sampler: TaskSampler, iterations: int,
          tracker: Tracker, *, baseline: bool = False, resume: bool = False, progress: bool = True) -> Agent:
    """Train agent `algo` for `iterations` iterations in all. The callback logs each iteration's
    metrics as `train.<name>` (`<algo>.train.<name>` for a `baseline`) and saves a checkpoint every
    fifth of the budget and at the end; `resume` continues from the run's last checkpoint."""
    checkpoints = Checkpointer(tracker, name=f"checkpoint_{algo}" if baseline else "checkpoint")
    agent, done = checkpoints.restore() if resume else (None, 0)
    if agent is None:
        agent = make_agent(algo, env_config, hparams)
    prefix = f"{algo}.train." if baseline else "train."
    every = max(1, iterations // 5)

    def on_iteration(iteration: int, metrics: dict[str, float]) -> None:
        step = done + iteration
        tracker.log_metrics({prefix + k: v for k, v in metrics.items()}, step=step)
        if (step + 1) % every == 0 or step + 1 == iterations:
            checkpoints.save(agent, step + 1)

    if iterations > done:
        agent.fit(sampler, iterations=iterations - done, callback=on_iteration, progress=progress)
    return agent


def meta_test(agents: Mapping[str, Agent], sources: Sequence[SourceData], causal: Sequence[pd.Series],
              steps: Sequence[int], *, min_length: int, episode_length: int, bootstrap_samples: int,
              seed: int) -> Adaptation | None:
    """Adaptation curves on the held-out regime segments of every test period (causal labels
    `causal` over each walk frame), summarised with 95% bootstrap CIs; None without segments."""
    # long enough for every agent's adaptation context plus one evaluated episode
    min_bars = max(min_length, adaptation_context(agents, steps) + episode_length)
    frames = []
    for src, labels in zip(sources, causal, strict=True):
        bounds = held_out_segments(labels, min_bars, start=src.test_start)
        if not bounds:
            continue
        curves = adaptation_curves(agents, src.walk, bounds, steps)
        curves.insert(0, "source", src.source)
        frames.append(curves)
    if not frames:
        return None
    curves = pd.concat(frames, ignore_index=True)
    summary = summarise_curves(curves, np.random.default_rng(seed), n_resamples=bootstrap_samples)
    return Adaptation(curves=curves, summary=summary)


def evaluate(
    name: str,
    test_prices: pd.DataFrame,
    walk_prices: pd.DataFrame,
    agents: Mapping[str, Agent],
    strategies: Sequence[str],
    strategy_params: Mapping[str, Mapping[str, Any] | None],
    strategies_dir: str | Path | None,
    *,
    fees: float,
    slippage: float,
    max_position: float,
    bootstrap_samples: int,
    seed: int,
    labels: pd.Series | None = None,
) -> Evaluation:
    """Walk every agent, then every rule strategy, forward over `walk_prices` (context + test),
    keep the `test_prices` bars and run ONE backtest with every column (agents first). `fees`,
    `slippage`: fractions; `labels`: causal regime labels covering the test bars (optional) for
    the per-regime table; Sharpe CIs from `bootstrap_samples` resamples seeded by `seed`."""
    columns: dict[str, pd.Series] = {key: agent.positions(walk_prices) for key, agent in agents.items()}
    for strategy in strategies:
        columns[strategy] = strategy_positions(strategy, walk_prices, strategy_params.get(strategy), strategies_dir)
    positions = pd.DataFrame(columns).loc[test_prices.index]
    result = backtest(test_prices, positions, fees=fees, slippage=slippage, max_position=max_position)
    table = results_table(result.returns, result.stats, n_resamples=bootstrap_samples, seed=seed)
    test_labels = None if labels is None else labels.loc[test_prices.index]
    by_regime = None if test_labels is None else result.by_regime(test_labels)
    return Evaluation(name=name, positions=positions, stats=result.stats, table=table, by_regime=by_regime,
                      result=result, prices=test_prices, labels=test_labels)
