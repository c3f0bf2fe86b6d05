"""The stages of the jobs. Each computes and returns values; none writes to MLflow (training,
which logs per-iteration metrics and checkpoints as it goes, is `fin_meta.pipeline.training`).
Each takes the values it reads, not the experiment config: `run_job` and `backtest_job` unpack
it. The checks of the periods and the meta-test's segments live in `fin_meta.pipeline.checks`.

Data flows one way: sources -> labels -> task sampler (training period only) -> rule
positions, trained agents (scored on the validation period by `validation_scores`) ->
meta-test and `evaluate` (one backtest per source and period) -> `fin_meta.tracking.records`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fin_meta.backtest import Evaluation, backtest
from fin_meta.backtest.report import results_table
from fin_meta.data import load_prices
from fin_meta.errors import ConfigError
from fin_meta.frequency import bars_per_year_of, frequency_name, in_bars
from fin_meta.regimes import detect_regimes
from fin_meta.regimes.segments import merged_labels
from fin_meta.splits import split_periods
from fin_meta.tasks import TaskSampler
from strategies import strategy_positions

if TYPE_CHECKING:  # `fin-meta backtest` uses `evaluate` without agents or environments
    from fin_meta.agents import Agent
    from fin_meta.backtest import BacktestResult
    from fin_meta.envs.config import EnvConfig

__all__ = [
    "CONTEXT_YEARS",
    "VALIDATION_METRICS",
    "Adaptation",
    "SourceData",
    "SourceLabels",
    "asset_name",
    "context_bars",
    "detect_labels",
    "evaluate",
    "fit_env_features",
    "load_sources",
    "meta_test",
    "rule_positions",
    "task_sampler",
    "validation_scores",
    "with_context",
]

CONTEXT_YEARS = 1.0
"""Years of bars before the test period that the walk-forward sees as context (`context_bars`)."""


VALIDATION_METRICS = ("sharpe", "gross_sharpe", "turnover", "cost_drag")
"""What `validation_scores` gives (`BacktestResult.stats` keys; net Sharpe decides)."""


def context_bars(prices: pd.DataFrame) -> int:
    """Bars of context before a scored period: one year of `prices`' bars (252 daily, 12 monthly)."""
    return in_bars(CONTEXT_YEARS, bars_per_year_of(prices))


def with_context(prices: pd.DataFrame, period: pd.DataFrame) -> pd.DataFrame:
    """The bars of `prices` that a walk-forward over `period` sees: `period` preceded by up to
    `context_bars` bars (fewer where the data start later)."""
    first = prices.index.get_loc(period.index[0])
    return prices.iloc[max(0, first - context_bars(prices)) : first + len(period)]


@dataclass
class SourceData:
    """One source's prices: the whole frame, its train, (validation) and test periods, and the
    walk-forward frames, each period preceded by up to `context_bars` bars of context
    (`with_context`): `walk` (test), `val_walk`, `train_walk` (the in-sample walk). `notes`:
    where the asked periods reach past the data (they were cut)."""

    source: str
    full: pd.DataFrame
    train: pd.DataFrame
    test: pd.DataFrame
    walk: pd.DataFrame
    val: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    val_walk: pd.DataFrame | None = None
    train_walk: pd.DataFrame | None = None

    def period(self, name: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        """`(period, walk frame)` of `"train"`, `"val"` or `"test"`; None without that period."""
        pairs = {"train": (self.train, self.train_walk), "val": (self.val, self.val_walk), "test": (self.test, self.walk)}
        frame, walk = pairs[name]
        return None if frame is None or walk is None else (frame, walk)

    @property
    def test_start(self) -> int:
        """Position of the first test bar inside `walk`."""
        return len(self.walk) - len(self.test)

    @property
    def bars_per_year(self) -> float:
        """Bars per year of the source (recorded by `load_prices`, or inferred)."""
        return bars_per_year_of(self.full)

    def describe(self) -> str:
        """One line: the frequency, then each period's actual dates and bars, then the notes."""
        per_year = self.bars_per_year
        parts = [(name, frame) for name, frame in (("train", self.train), ("val", self.val), ("test", self.test))
                 if frame is not None]
        periods = ", ".join(f"{name} {frame.index[0].date()} .. {frame.index[-1].date()} ({len(frame):,} bars)"
                            for name, frame in parts)
        notes = "".join(f"; {note}" for note in self.notes)
        return f"{self.source}: {frequency_name(per_year)} bars ({per_year:g} a year); {periods}{notes}"


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
    bars_per_year: float | None = None,
) -> list[SourceData]:
    """Load every source and split it into its periods (`periods`: keyword arguments of
    `split_periods`, ISO dates; see `SourceData`). `bars_per_year`: None infers it per source."""
    loaded = load_prices(list(sources), start=start, end=end, data_dir=data_dir, ffill_limit=ffill_limit,
                         bars_per_year=bars_per_year, **(source_params or {}))
    out = []
    for source, prices in loaded.items():
        parts = split_periods(prices, **periods)
        val = parts.get("val")
        out.append(SourceData(source, prices, parts["train"], parts["test"], with_context(prices, parts["test"]), val,
                              _cut_notes(prices.index, periods),
                              val_walk=None if val is None else with_context(prices, val),
                              train_walk=with_context(prices, parts["train"])))
    return out


def _cut_notes(index: pd.DatetimeIndex, periods: Mapping[str, Any]) -> list[str]:
    """A note for each asked date that lies before the first or after the last bar."""
    first, last = index[0], index[-1]
    notes = []
    for key in ("train_start", "test_end"):
        asked = periods.get(key)
        if asked is None:
            continue
        day = pd.Timestamp(asked)
        if key == "train_start" and day < first.normalize():
            notes.append(f"{key} {day.date()} is before the first bar ({first.date()})")
        elif key == "test_end" and day > last:
            notes.append(f"{key} {day.date()} is after the last bar ({last.date()}): the test period is cut")
    return notes


def detect_labels(src: SourceData, method: str, params: Mapping[str, Any], min_length: int, *,
                  hindsight_tasks: bool) -> SourceLabels:
    """Regime labels of `src` by `method`, fitted on its training period only: training-task
    labels (hindsight or causal, runs under `min_length` bars merged) and causal walk labels."""
    fit_end = src.train.index[-1]
    train = detect_regimes(src.train, method=method, causal=not hindsight_tasks, fit_end=fit_end, **params)
    causal = detect_regimes(src.full, method=method, causal=True, fit_end=fit_end, **params)
    return SourceLabels(train=merged_labels(train, min_length), causal=causal.loc[src.walk.index])


def fit_env_features(env: EnvConfig, sources: Sequence[SourceData], method: str,
                     params: Mapping[str, Any]) -> EnvConfig:
    """`env` with the models its features need, fitted on the training periods only
    (`fin_meta.envs.regime_features.fit_regime_features`): with `regime_probs`, ONE HMM on every
    source's training frame (each its own sequence, one standardisation), so the feature means
    the same on every asset and on new data; its parameters are the regime section's when
    `method` is "hmm" (`params`), else `HMMParams`' defaults. Without such a feature: `env`."""
    from fin_meta.envs.regime_features import fit_regime_features

    hmm_params = dict(params) if method == "hmm" else {}
    return fit_regime_features(env, [src.train for src in sources], **hmm_params)


def task_sampler(sources: Sequence[SourceData], labels: Sequence[SourceLabels], *, episode_length: int,
                 window: int, min_segment: int, windows: str = "start") -> TaskSampler:
    """The sampler of training tasks: regime segments of every source's training period
    (`windows`: `TaskSampler`'s start-conditioned default, or the legacy `inside`)."""
    return TaskSampler([src.train for src in sources], [lab.train for lab in labels],
                       episode_length=episode_length, window=window, min_segment=min_segment, windows=windows)


def validation_scores(agent: Agent, sources: Sequence[SourceData], *, fees: float, slippage: float,
                      max_position: float) -> dict[str, float]:
    """Walk `agent` over every source's validation period (with its context, `val_walk`) and
    backtest its positions there net of `fees` and `slippage`: the mean over the sources of its
    `VALIDATION_METRICS` (net and gross Sharpe, turnover and cost drag per year). What early
    stopping watches; the test period is never read."""
    stats = []
    for src in sources:
        if src.val is None or src.val_walk is None:
            raise ConfigError(f"validation: {src.source} has no validation period; set data.val_start")
        positions = agent.positions(src.val_walk).loc[src.val.index]
        stats.append(backtest(src.val, positions, fees=fees, slippage=slippage, max_position=max_position).stats)
    return {key: float(np.mean([s[key] for s in stats])) for key in VALIDATION_METRICS}


def meta_test(agents: Mapping[str, Agent], sources: Sequence[SourceData], bounds: Sequence[Sequence[tuple[int, int]]],
              steps: Sequence[int], *, bootstrap_samples: int, seed: int) -> Adaptation | None:
    """Adaptation curves on the held-out regime segments `bounds` (`[first, end)` bar positions
    into each source's walk frame, `checks.held_out`), summarised with 95% bootstrap CIs; None
    without segments."""
    from fin_meta.metatest import adaptation_curves, summarise_curves  # (it loads the environments)

    frames = []
    for src, segments in zip(sources, bounds, strict=True):
        if not segments:
            continue
        curves = adaptation_curves(agents, src.walk, list(segments), steps)
        curves.insert(0, "source", src.source)
        frames.append(curves)
    if not frames:
        return None
    curves = pd.concat(frames, ignore_index=True)
    summary = summarise_curves(curves, np.random.default_rng(seed), n_resamples=bootstrap_samples)
    return Adaptation(curves=curves, summary=summary)


def rule_positions(walk_prices: pd.DataFrame, strategies: Sequence[str],
                   strategy_params: Mapping[str, Mapping[str, Any] | None],
                   strategies_dir: str | Path | None) -> pd.DataFrame:
    """Positions of every rule strategy walked over `walk_prices` (bars x strategies, fractions of
    equity): cheap, so `fin-meta run` computes them before training and a bad strategy or
    parameter fails at once (`StrategyError`)."""
    columns = {name: strategy_positions(name, walk_prices, strategy_params.get(name), strategies_dir)
               for name in strategies}
    return pd.DataFrame(columns, index=walk_prices.index)


def evaluate(
    name: str,
    test_prices: pd.DataFrame,
    walk_prices: pd.DataFrame,
    agents: Mapping[str, Agent],
    rules: pd.DataFrame,
    *,
    fees: float,
    slippage: float,
    max_position: float,
    bootstrap_samples: int,
    seed: int,
    labels: pd.Series | None = None,
    on_backtest: Callable[[BacktestResult], Any] | None = None,
) -> Evaluation:
    """Walk every agent forward over `walk_prices` (context + test), add the rule strategies'
    positions `rules` (`rule_positions`, on the same bars), keep the `test_prices` bars and run
    ONE backtest with every column (agents first). `fees`, `slippage`: fractions; `labels`:
    causal regime labels covering the test bars (optional) for the per-regime table; Sharpe CIs
    from `bootstrap_samples` resamples seeded by `seed`. `on_backtest(result)` is called between
    the backtest and the tables (e.g. to have its charts drawn meanwhile)."""
    columns: dict[str, pd.Series] = {key: agent.positions(walk_prices) for key, agent in agents.items()}
    positions = pd.concat([pd.DataFrame(columns, index=walk_prices.index), rules], axis=1).loc[test_prices.index]
    result = backtest(test_prices, positions, fees=fees, slippage=slippage, max_position=max_position)
    if on_backtest is not None:
        on_backtest(result)
    table = results_table(result.returns, result.stats, n_resamples=bootstrap_samples, seed=seed,
                          bars_per_year=result.bars_per_year, ruined_at=result.ruined_at)
    test_labels = None if labels is None else labels.loc[test_prices.index]
    by_regime = None if test_labels is None else result.by_regime(test_labels)
    return Evaluation(name=name, positions=positions, stats=result.stats, table=table, by_regime=by_regime,
                      result=result, prices=test_prices, labels=test_labels)
