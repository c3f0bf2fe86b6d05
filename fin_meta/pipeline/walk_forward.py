"""`fin-meta run` with `evaluation.walk_forward`: a walk-forward with refits (rolling origin, the
protocol of Qlib's rolling benchmarks and of most RL-trading papers).

The test period is cut into consecutive blocks of `refit_every` bars (`fin_meta.splits.
walk_forward_folds`). Fold k meta-trains the agent on the bars up to `embargo` bars before its
block (an expanding window from the first training bar, or the latest `train_bars`), with
regime labels and tasks from those bars only, warm-started from fold k-1's agent when
`warm_start` (else a fresh agent seeded per fold), then trades its block online
(`fin_meta.pipeline.fold_runs`). The blocks' out-of-sample positions are stitched into one test
series per source and backtested ONCE beside the rule strategies and, with
`evaluation.pooled_ppo`, a rolling-retrain pooled PPO trained on the same folds with the same
budget (the non-meta baseline). Each fold trains for `agent.iterations` iterations; with
`refit_iterations`, the warm-started refits after the first fold train that many instead.

Logged: the config and params as in a run without refits, `train.*` per iteration (step: the
iterations trained before the fold + iteration; `ppo.train.*` for the baseline), the stitched
test evaluation (the same artifacts and `test.*` metrics as any run), per-fold metrics
`fold.<stat>[.<strategy>]` at step = fold number (`fold.<asset>.<stat>...` with several
sources), the per-fold table `walk_forward/folds.csv`, the last fold's agent as the model, tag `walk_forward.folds`. Not done
here: the meta-test (each block trades with another agent), a validation period (refused), and
resuming an interrupted run (refused: start it again).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from fin_meta.backtest import Evaluation
from fin_meta.config import ExperimentConfig, config_to_dict
from fin_meta.config.sections import WalkForwardConfig
from fin_meta.envs.config import DEFAULT_EPISODE_LENGTH
from fin_meta.errors import ConfigError
from fin_meta.pipeline.deflate import log_deflated_sharpe
from fin_meta.pipeline.fold_runs import (
    FOLD_METRICS,
    FoldRun,
    MakeAgents,
    OnIteration,
    TaskSettings,
    fold_stats,
    run_folds,
    stitch,
)
from fin_meta.pipeline.outcome import Clock, ExperimentOutcome
from fin_meta.pipeline.stages import SourceData, asset_name, evaluate, rule_positions
from fin_meta.pipeline.summary import describe_run, markdown_table, run_name, summary_table
from fin_meta.splits import Fold, walk_forward_folds
from fin_meta.tracking import prices_hash, start_run
from fin_meta.tracking.checkpoints import CONFIG_ARTIFACT
from fin_meta.tracking.model import log_agent_model
from fin_meta.tracking.records import (
    log_evaluation,
    log_mean_over_sources,
    log_summary,
    set_description,
)
from fin_meta.tracking.run import Tracker

__all__ = ["FOLDS_ARTIFACT", "plan_folds", "run_walk_forward"]

FOLDS_ARTIFACT = "walk_forward/folds.csv"
"""The per-fold table (`fold_runs.fold_stats`): one row per fold, source and strategy."""

Echo = Callable[[str], Any]
_INDENT = "      "


def plan_folds(sources: Sequence[SourceData], wf: WalkForwardConfig) -> list[list[Fold]]:
    """Each source's folds over its test period, training from its first training bar, with the
    `wf` settings (defaults in that source's bars): `ConfigError` / `DataError` in one line."""
    return [walk_forward_folds(src.full.index, test_start=src.test.index[0], test_end=src.test.index[-1],
                               refit_every=wf.refit_every, train_bars=wf.train_bars, embargo=wf.embargo,
                               train_start=src.train.index[0], per_year=src.bars_per_year)
            for src in sources]


def run_walk_forward(cfg: ExperimentConfig, sources: list[SourceData], *,
                     make_agents: MakeAgents, rule_names: Sequence[str],
                     params: Mapping[str, str], resumed: bool = False, extra_tags: Mapping[str, str] | None = None,
                     echo: Echo | None = None, progress: bool = True, clock: Clock | None = None) -> ExperimentOutcome:
    """Run `cfg` (with `evaluation.walk_forward` set) on its loaded `sources` as a walk-forward
    with refits (module docstring). `make_agents(seed, sources)`: the run's fresh agents `{key:
    agent}`, main first, their feature models fitted on the `sources`' training frames;
    `rule_names`: the rule strategies; `params`: the run's MLflow params. Bad settings fail
    before any training and before the MLflow run is opened."""
    say, clock = echo or (lambda _msg: None), clock or Clock()
    wf, ev, env = cfg.evaluation.walk_forward, cfg.evaluation, cfg.env
    if wf is None:
        raise ConfigError("run_walk_forward needs evaluation.walk_forward")
    if resumed:
        raise ConfigError("a walk-forward run cannot be resumed yet: start it again (fin-meta run FILE)")
    if cfg.data.val_start is not None:
        raise ConfigError("evaluation.walk_forward: each fold trains up to its own trade block, so a validation "
                          "period is not used: remove data.val_start (and agent.eval_every / agent.patience)")
    with clock("regimes"):
        say("[2/5] baselines' positions and walk-forward folds")
        folds = plan_folds(sources, wf)
        rules = [rule_positions(src.walk, rule_names, ev.strategy_params, ev.strategies_dir) for src in sources]
        probe = make_agents(cfg.seed, sources)  # a bad hyperparameter fails here, before the run is opened
        baseline = " and the pooled PPO" if len(probe) > 1 else ""
        plan = _plan_line(wf, folds[0], [src.source for src in sources])
        say(_INDENT + plan)
    tags = {"data.source": ",".join(cfg.data.sources), "data.hash": prices_hash({s.source: s.full for s in sources}),
            "agent.algo": cfg.agent.algo, "job": "run", "walk_forward.folds": str(len(folds[0])), **(extra_tags or {})}
    described = [src.describe() for src in sources]
    uri = cfg.tracking.tracking_uri
    with start_run(cfg.tracking.experiment or cfg.name, run_name=run_name(f"{cfg.agent.algo}-wf", cfg.data.sources,
                                                                          cfg.seed),
                   params=dict(params), tags=tags, tracking_uri=uri, enabled=cfg.tracking.enabled) as tracker:
        set_description(tracker, _description(cfg, described, None, [plan]))
        tracker.log_dict(config_to_dict(cfg), CONFIG_ARTIFACT)
        with clock("train"):
            refits = "" if wf.refit_iterations is None else f" (warm-started refits: {wf.refit_iterations})"
            say(f"[3/5] walk-forward: {len(folds[0])} folds, meta-training {cfg.agent.algo}{baseline} for "
                f"{cfg.agent.iterations} iterations each{refits}, then trading the fold's block")
            tasks = TaskSettings(cfg.regimes.method, cfg.regimes.params, cfg.regimes.min_length,
                                 cfg.regimes.task_labels == "hindsight", env.episode_length or DEFAULT_EPISODE_LENGTH,
                                 env.window, cfg.regimes.task_windows)
            runs = run_folds(sources, folds, make_agents, seed=cfg.seed, iterations=cfg.agent.iterations,
                             warm_start=wf.warm_start, tasks=tasks, progress=progress,
                             refit_iterations=wf.refit_iterations,
                             on_iteration=_iteration_logger(tracker, cfg.agent.algo),
                             on_fold=lambda run: say(_INDENT + _fold_line(run, len(folds[0]), sources[0])))
        with clock("backtest"):
            say("[4/5] stitching the folds' out-of-sample positions; one backtest against the baselines")
            evaluations = [_stitched(cfg, src, runs, i, rule) for i, (src, rule) in enumerate(zip(sources, rules,
                                                                                                    strict=True))]
            table = fold_stats(runs, sources, rules, fees=env.fees, slippage=env.slippage,
                               max_position=env.max_position)
        summary = summary_table(evaluations)
        notes = [plan, *_fold_notes(table)]
        with clock("log"):
            say("[5/5] logging per-fold metrics and the stitched test period")
            _log(tracker, runs, evaluations, table, dict(clock.timings), cfg)
            log_summary(tracker, summary, markdown_table(summary))
            set_description(tracker, _description(cfg, described, summary, notes))
        run_id = tracker.run_id
    return ExperimentOutcome(config=cfg, agent=runs[-1].agents[cfg.agent.algo], evaluations=evaluations, run_id=run_id,
                             tracking_uri=uri, wall_s=sum(clock.timings.values()), timings=clock.timings,
                             periods=described, meta_test_note=_NO_META_TEST, training=notes)


_NO_META_TEST = ("meta-test: not run in a walk-forward (each block trades with its own fold's agent); run without "
                 "evaluation.walk_forward for the adaptation curves")


def _stitched(cfg: ExperimentConfig, src: SourceData, runs: Sequence[FoldRun], i: int,
              rules: pd.DataFrame) -> Evaluation:
    """One backtest of source `i`'s test period: the folds' stitched agent positions (first)
    beside the rule strategies, per regime with each block's causal labels."""
    positions, labels = stitch(runs, i)
    if not positions.index.equals(src.test.index):
        raise AssertionError(f"walk-forward: the folds' blocks do not tile the test period of {src.source}")
    columns = pd.concat([positions, rules.loc[src.test.index]], axis=1)
    env, ev = cfg.env, cfg.evaluation
    return evaluate(asset_name(src.source), src.test, src.test, {}, columns, fees=env.fees, slippage=env.slippage,
                    max_position=env.max_position, bootstrap_samples=ev.bootstrap_samples, seed=cfg.seed,
                    labels=labels)


def _iteration_logger(tracker: Tracker, main: str) -> OnIteration:
    """Log each training iteration as `<prefix>train.<metric>` at its step across the folds."""
    def log(_fold: int, key: str, step: int, metrics: dict[str, float]) -> None:
        prefix = "" if key == main else f"{key}."
        tracker.log_metrics({f"{prefix}train.{k}": v for k, v in metrics.items()}, step=step)

    return log


def _log(tracker: Tracker, runs: Sequence[FoldRun], evaluations: Sequence[Evaluation], table: pd.DataFrame,
         timings: dict[str, float], cfg: ExperimentConfig) -> None:
    """The last fold's agent, the timings, the per-fold table and metrics (step: fold), then the
    stitched test evaluations (test metrics last)."""
    log_agent_model(tracker, runs[-1].agents[cfg.agent.algo], evaluations[0].prices)
    tracker.log_metrics({f"time.{k}_s": v for k, v in timings.items()})
    tracker.log_table(table, FOLDS_ARTIFACT)
    several = len(evaluations) > 1
    for (number, source), rows in table.groupby(["fold", "source"], sort=True):
        prefix = f"fold.{source}." if several else "fold."
        tracker.log_stats(rows.set_index("strategy")[list(FOLD_METRICS)], prefix=prefix, step=int(number))
    for ev in evaluations:
        log_evaluation(tracker, ev, f"test/{ev.name}" if several else "test", offline_html=cfg.tracking.offline_html)
    log_mean_over_sources(tracker, list(evaluations), prefix="test.")
    log_deflated_sharpe(tracker, evaluations)


def _plan_line(wf: WalkForwardConfig, folds: Sequence[Fold], names: Sequence[str]) -> str:
    """One line: how many folds, how often the agent is refitted, the training window, the embargo."""
    first = folds[0]
    refit = first.trade[1] - first.trade[0]
    embargo = first.trade[0] - first.train[1]
    window = "an expanding training window" if wf.train_bars is None else f"a rolling window of {wf.train_bars:,} bars"
    start = "warm-started from the previous fold's agent" if wf.warm_start else "a fresh agent per fold"
    if wf.refit_iterations is not None:
        start += f" for {wf.refit_iterations} iterations"
    return (f"walk-forward with {len(folds)} folds on {', '.join(names)}: refit every {refit:,} bars, {window}, "
            f"embargo {embargo} bars, {start}; the test positions are the folds' out-of-sample blocks "
            "stitched together")


def _fold_line(run: FoldRun, count: int, src: SourceData) -> str:
    """Progress: `fold 2/6: train .. (n bars), trade .. (m bars), 12 s`."""
    return f"fold {run.number + 1}/{count}: {run.folds[0].describe(src.full.index)}, {run.seconds:.0f} s"


def _fold_notes(table: pd.DataFrame) -> list[str]:
    """One line per fold and source: its trade block and each strategy's net Sharpe on it."""
    lines = []
    for (number, source), rows in table.groupby(["fold", "source"], sort=True):
        first = rows.iloc[0]
        sharpes = ", ".join(f"{r.strategy} {r.sharpe:.2f}" for r in rows.itertuples())
        lines.append(f"fold {number + 1} {source} trade {first.trade_start} .. {first.trade_end} "
                     f"({first.trade_bars} bars), net Sharpe: {sharpes}")
    return lines


def _description(cfg: ExperimentConfig, periods: list[str], summary: pd.DataFrame | None,
                 notes: Sequence[str]) -> str:
    """The run's description (`summary.describe_run`) with the walk-forward notes."""
    return describe_run(cfg.agent.algo, cfg.data.sources, cfg.seed, cfg.agent.iterations, periods, summary,
                        [*notes, _NO_META_TEST])
