"""`run_experiment(config)`: data -> regimes -> tasks -> meta-train -> meta-test -> walk forward
-> one backtest against baselines -> MLflow. What `fin-meta run` and `make demo` do.

Every source is split into train / test periods with an embargo; training tasks are regime
segments of the training period; the agent (and the pooled PPO baseline) are then walked forward
online over the test period, with the bars before it as context only (causal: positions at t
use bars up to t). Nothing downstream reaches back upstream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fin_meta.envs.config import DEFAULT_EPISODE_LENGTH

if TYPE_CHECKING:
    from pydantic import BaseModel

    from fin_meta.agents import Agent
    from fin_meta.config.experiment import ExperimentConfig
    from fin_meta.tracking.run import Tracker

__all__ = ["ExperimentOutcome", "run_experiment", "asset_name"]

Echo = Callable[[str], Any]
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
class SourceEvaluation:
    """The test-period evaluation of one source: positions per column, the backtest, tables."""

    name: str
    positions: pd.DataFrame
    stats: pd.DataFrame
    table: pd.DataFrame
    by_regime: pd.DataFrame
    result: Any


@dataclass
class ExperimentOutcome:
    """What `run_experiment` produced: per-source evaluations, the adaptation summary, the
    trained agent, the MLflow run id (None when not tracked) and the wall time in seconds."""

    config: ExperimentConfig
    agent: Agent
    evaluations: list[SourceEvaluation]
    adaptation: pd.DataFrame | None = None
    run_id: str | None = None
    tracking_uri: str | None = None
    wall_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def print_report(self, echo: Echo = print) -> None:
        """Print the test-period results table per source, then where the run was logged."""
        from fin_meta.backtest.report import format_results_table

        for ev in self.evaluations:
            echo(f"\n{ev.name} test period, sorted by Sharpe (95% bootstrap CI), fees+slippage included:")
            echo(format_results_table(ev.table))
        if self.adaptation is not None and len(self.adaptation):
            with pd.option_context("display.float_format", "{:.5f}".format, "display.width", 160):
                echo("\nmeta-test adaptation curve (mean per-bar net log return on held-out segments):")
                echo(self.adaptation.to_string(index=False))
        echo(f"\nwall time {self.wall_s:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items()) + ")")
        if self.run_id:
            from fin_meta.tracking import resolve_tracking_uri

            uri = resolve_tracking_uri(self.tracking_uri)
            echo(f"MLflow run {self.run_id} in {uri}")
            echo(f"  open the UI:   fin-meta ui --tracking-uri {uri}")
            echo(f'  load the agent: fin_meta.load_agent("runs:/{self.run_id}/agent")')


def asset_name(source: str) -> str:
    """A short metric-safe name of a source: `yf:SPY` -> `SPY`, `sample:sp500` -> `sp500`."""
    tail = source.split(":", 1)[-1]
    return Path(tail).stem if source.startswith("csv:") else tail.replace("/", "_")


def run_experiment(
    config: ExperimentConfig | str | Path,
    *,
    resume: str | None = None,
    echo: Echo | None = None,
    progress: bool = True,
) -> ExperimentOutcome:
    """Run one experiment end to end (see the module docstring); `config` is an
    `ExperimentConfig` or the path of an experiment file. `resume` continues MLflow run
    `resume` from its last checkpoint. Returns an `ExperimentOutcome`."""
    from fin_meta.config.experiment import config_to_dict, load_config
    from fin_meta.seeding import seed_everything
    from fin_meta.tracking import flatten_params, prices_hash, start_run

    cfg = config if not isinstance(config, (str, Path)) else load_config(config)
    say = echo or (lambda _msg: None)
    clock = _Clock()
    seed_everything(cfg.seed)

    with clock("data"):
        say(f"[1/5] data: {', '.join(cfg.data.sources)}")
        sources = _load_sources(cfg)
    tags = {
        "data.source": ",".join(cfg.data.sources),
        "data.hash": prices_hash({s.source: s.full for s in sources}),
        "agent.algo": cfg.agent.algo,
        "job": "run",
    }
    with start_run(
        cfg.tracking.experiment or cfg.name,
        params=flatten_params(config_to_dict(cfg)),
        tags=tags,
        tracking_uri=cfg.tracking.tracking_uri,
        enabled=cfg.tracking.enabled,
        resume_run_id=resume,
    ) as tracker:
        _log_config(tracker, cfg)
        with clock("regimes"):
            say(f"[2/5] regimes ({cfg.regimes.method}) and tasks")
            labels = [_detect_labels(cfg, src) for src in sources]
            sampler = _task_sampler(cfg, sources, labels)
        with clock("train"):
            say(f"[3/5] meta-training {cfg.agent.algo} for {cfg.agent.iterations} iterations")
            agent = _train(cfg, sampler, tracker, cfg.agent.algo, resume=resume, progress=progress)
            agents: dict[str, Agent] = {cfg.agent.algo: agent}
            if cfg.evaluation.pooled_ppo and cfg.agent.algo != "ppo":
                say("      pooled PPO baseline")
                agents["ppo"] = _train(cfg, sampler, tracker, "ppo", progress=progress)
        with clock("meta_test"):
            say(f"[4/5] meta-test: adaptation curves at {cfg.evaluation.adaptation_steps}")
            adaptation = _meta_test(cfg, agents, sources, labels, tracker)
        with clock("backtest"):
            say("[5/5] walk-forward over the test period and backtest against baselines")
            evaluations = [
                _evaluate_source(cfg, src, agents, lab["causal"], tracker)
                for src, lab in zip(sources, labels, strict=True)
            ]
            _log_headline(tracker, evaluations, cfg.agent.algo)
        from fin_meta.tracking.model import log_agent_model

        log_agent_model(tracker, agent)
        tracker.log_metrics({f"time.{k}_s": v for k, v in clock.timings.items()})
        run_id = tracker.run_id

    return ExperimentOutcome(
        config=cfg,
        agent=agent,
        evaluations=evaluations,
        adaptation=adaptation,
        run_id=run_id,
        tracking_uri=cfg.tracking.tracking_uri,
        wall_s=sum(clock.timings.values()),
        timings=clock.timings,
    )


class _Clock:
    """`with clock("name"):` accumulates wall seconds per stage into `timings`."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def __call__(self, name: str) -> _Clock:
        self._name = name
        return self

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self._name] = self.timings.get(self._name, 0.0) + time.perf_counter() - self._t0


# -- data and regimes ------------------------------------------------------------------------
def _load_sources(cfg: ExperimentConfig) -> list[SourceData]:
    """Load every source and split it into its periods (see `SourceData`)."""
    from fin_meta.data import load_prices
    from fin_meta.tasks import split_periods

    data = cfg.data
    loaded = load_prices(
        list(data.sources),
        start=data.start,
        end=data.end,
        data_dir=data.data_dir,
        ffill_limit=data.ffill_limit,
        **data.source_params,
    )
    out = []
    for source, prices in loaded.items():
        parts = split_periods(prices, **data.split_kwargs())
        test = parts["test"]
        first = prices.index.get_loc(test.index[0])
        walk = prices.iloc[max(0, first - CONTEXT_BARS) : first + len(test)]
        out.append(SourceData(source, prices, parts["train"], test, walk))
    return out


def _detect_labels(cfg: ExperimentConfig, src: SourceData) -> dict[str, pd.Series]:
    """`train`: labels that group training tasks (hindsight or causal, as configured, fitted on
    the training period only); `causal`: labels over the walk-forward frame, fitted on the
    training period (for the held-out segments and the test-period breakdown)."""
    from fin_meta.regimes import detect_regimes

    method, params = cfg.regimes.method, cfg.regimes.params
    fit_end = src.train.index[-1]
    hindsight = cfg.regimes.task_labels == "hindsight"
    train = detect_regimes(src.train, method=method, causal=not hindsight, fit_end=fit_end, **params)
    causal = detect_regimes(src.full, method=method, causal=True, fit_end=fit_end, **params)
    return {"train": merged_labels(train, cfg.regimes.min_length), "causal": causal.loc[src.walk.index]}


def merged_labels(labels: pd.Series, min_length: int) -> pd.Series:
    """`labels` with runs shorter than `min_length` bars merged into a neighbour (`segments`),
    so training tasks are drawn from regime stretches rather than flickering bars."""
    from fin_meta.regimes import segments

    segs = segments(labels, min_length=min_length)
    values = np.repeat(segs["label"].to_numpy(), segs["n_bars"].to_numpy())
    return pd.Series(values, index=labels.index, name=labels.name)


def _task_sampler(cfg: ExperimentConfig, sources: list[SourceData], labels: list[dict[str, pd.Series]]):
    from fin_meta.tasks import TaskSampler

    return TaskSampler(
        [src.train for src in sources],
        [lab["train"] for lab in labels],
        episode_length=cfg.env.episode_length or DEFAULT_EPISODE_LENGTH,
        window=cfg.env.window,
        min_segment=cfg.regimes.min_length,
    )


# -- training --------------------------------------------------------------------------------
def baseline_hparams(cfg: ExperimentConfig, algo: str) -> BaseModel:
    """Hyperparameters of a baseline agent trained beside the main one (the pooled PPO:
    `evaluation.ppo`, defaults otherwise) with the experiment's seed and device."""
    from fin_meta.config.experiment import hparams_model

    given = cfg.evaluation.ppo if algo == "ppo" else {}
    return hparams_model(algo)(**given, seed=cfg.seed, device=cfg.agent.device)


def _train(cfg: ExperimentConfig, sampler, tracker: Tracker, algo: str, *, resume: str | None = None, progress: bool = True) -> Agent:
    """Train agent `algo`; per-iteration metrics go to MLflow as `train.<name>` (`ppo.train.<name>`
    for the pooled baseline); checkpoints go to the run so `--resume` can continue."""
    from fin_meta.agents import make_agent
    from fin_meta.config.experiment import agent_hparams
    from fin_meta.tracking.checkpoints import Checkpointer

    main = algo == cfg.agent.algo
    hparams = agent_hparams(cfg) if main else baseline_hparams(cfg, algo)
    checkpoints = Checkpointer(tracker, name="checkpoint" if main else f"checkpoint_{algo}")
    agent, done = checkpoints.restore(tracker.run_id) if resume and tracker.run_id else (None, 0)
    if agent is None:
        agent = make_agent(algo, cfg.env, hparams)
    prefix = "train." if main else f"{algo}.train."
    every = max(1, cfg.agent.iterations // 5)

    def on_iteration(iteration: int, metrics: dict[str, float]) -> None:
        step = done + iteration
        tracker.log_metrics({prefix + k: v for k, v in metrics.items()}, step=step)
        if (step + 1) % every == 0 or step + 1 == cfg.agent.iterations:
            checkpoints.save(agent, step + 1)

    remaining = cfg.agent.iterations - done
    if remaining > 0:
        agent.fit(sampler, iterations=remaining, callback=on_iteration, progress=progress)
    return agent


# -- evaluation ------------------------------------------------------------------------------
def _meta_test(cfg: ExperimentConfig, agents: dict[str, Agent], sources: list[SourceData], labels, tracker: Tracker) -> pd.DataFrame | None:
    """Adaptation curves on the held-out (test-period) regime segments, with 95% bootstrap CIs."""
    import tempfile

    from fin_meta.metatest import (
        adaptation_context,
        adaptation_curves,
        plot_adaptation,
        summarise_curves,
    )

    # long enough for every agent's adaptation context plus one evaluated episode
    episode = cfg.env.episode_length or DEFAULT_EPISODE_LENGTH
    min_bars = max(cfg.regimes.min_length, adaptation_context(agents, cfg.evaluation.adaptation_steps) + episode)
    frames = []
    for src, lab in zip(sources, labels, strict=True):
        bounds = _held_out_segments(lab["causal"], src.test_start, min_bars)
        if not bounds:
            continue
        curves = adaptation_curves(agents, src.walk, bounds, cfg.evaluation.adaptation_steps)
        curves.insert(0, "source", src.source)
        frames.append(curves)
    if not frames:
        return None
    curves = pd.concat(frames, ignore_index=True)
    summary = summarise_curves(curves, np.random.default_rng(cfg.seed), n_resamples=cfg.evaluation.bootstrap_samples)
    tracker.log_table(curves, "meta_test/adaptation_segments.csv")
    tracker.log_table(summary, "meta_test/adaptation_curve.csv")
    if tracker.enabled:
        with tempfile.TemporaryDirectory() as tmp:
            tracker.log_figure_file(plot_adaptation(summary, Path(tmp) / "adaptation_curve.png"), "plots")
    return summary


def _held_out_segments(labels: pd.Series, test_start: int, min_length: int) -> list[tuple[int, int]]:
    """`[start, end)` bar positions of the causal regime segments inside the test period (the
    part of a segment before the test period is cut off), at least `min_length` bars long."""
    from fin_meta.regimes import segments

    segs = segments(labels, min_length=min_length)
    segs = segs[segs["label"] >= 0]
    starts = np.maximum(labels.index.get_indexer(segs["start"]), test_start)
    ends = labels.index.get_indexer(segs["end"]) + 1
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True) if b - a >= min_length]


def _evaluate_source(cfg: ExperimentConfig, src: SourceData, agents: dict[str, Agent], labels: pd.Series, tracker: Tracker) -> SourceEvaluation:
    """Walk every agent forward over the walk frame (context + test), keep the test period, add
    the rule baselines and buy-and-hold, and run ONE backtest with every column."""
    import tempfile

    from fin_meta.backtest.engine import backtest
    from fin_meta.backtest.report import results_table
    from strategies import strategy_positions

    prices = src.walk
    columns: dict[str, pd.Series] = {name: agent.positions(prices) for name, agent in agents.items()}
    for name in dict.fromkeys([*cfg.evaluation.baselines, "buy_and_hold"]):
        columns[name] = strategy_positions(
            name, prices, cfg.evaluation.strategy_params.get(name), cfg.evaluation.strategies_dir
        )
    test_index = src.test.index
    positions = pd.DataFrame(columns).loc[test_index]
    result = backtest(
        src.test, positions, fees=cfg.env.fees, slippage=cfg.env.slippage, max_position=cfg.env.max_position
    )
    stats = result.stats
    table = results_table(result.returns, stats, n_resamples=cfg.evaluation.bootstrap_samples, seed=cfg.seed)
    test_labels = labels.loc[test_index]
    by_regime = result.by_regime(test_labels)

    name = asset_name(src.source)
    multi = len(cfg.data.sources) > 1
    folder = f"test/{name}" if multi else "test"
    tracker.log_stats(stats, prefix=f"test.{name}." if multi else "test.", main=cfg.agent.algo)
    tracker.log_table(stats.reset_index(names="strategy"), f"{folder}/stats.csv")
    tracker.log_table(table, f"{folder}/results.csv")
    tracker.log_table(by_regime.reset_index(), f"{folder}/by_regime.csv")
    tracker.log_table(positions.reset_index(), f"{folder}/positions.csv")
    if tracker.enabled:
        from fin_meta.plots.regimes import plot_regimes

        with tempfile.TemporaryDirectory() as tmp:
            tmp_dir = Path(tmp)
            tracker.log_figure_file(result.plot(tmp_dir / f"equity_{name}.png"), "plots")
            tracker.log_artifact(result.plot_html(tmp_dir / f"equity_{name}.html"), "plots")
            chart = plot_regimes(src.test, test_labels, tmp_dir / f"regimes_{name}.png", title=f"{src.source}: test-period regimes (causal)")
            tracker.log_figure_file(chart, "plots")
    return SourceEvaluation(name=name, positions=positions, stats=stats, table=table, by_regime=by_regime, result=result)


def _log_headline(tracker: Tracker, evaluations: list[SourceEvaluation], main: str) -> None:
    """With several sources, also log the mean over sources as `test.<metric>[.<column>]`."""
    if len(evaluations) < 2:
        return
    mean = sum(ev.stats for ev in evaluations) / len(evaluations)
    tracker.log_stats(mean, prefix="test.", main=main)


def _log_config(tracker: Tracker, cfg: ExperimentConfig) -> None:
    from fin_meta.config.experiment import config_to_dict

    tracker.log_dict(config_to_dict(cfg), "config.yaml")
