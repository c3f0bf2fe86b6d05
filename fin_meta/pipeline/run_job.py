"""`run_experiment(config)`: data -> regimes -> tasks -> meta-train -> meta-test -> walk forward
-> one backtest against baselines -> MLflow. What `fin-meta run` and `make demo` do.

Every source is split into train / test periods with an embargo; training tasks are regime
segments of the training period; the agent (and the pooled PPO baseline) are then walked forward
online over the test period, with the bars before it as context only (causal: positions at t
use bars up to t). Nothing downstream reaches back upstream. This module orchestrates: it unpacks
the config, runs the stages (`fin_meta.pipeline.stages`), which compute, then hands their values
to `fin_meta.tracking.records`, which logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from fin_meta.agents import Agent, hparams_model
from fin_meta.backtest import Evaluation
from fin_meta.backtest.report import format_results_table
from fin_meta.config import ExperimentConfig, agent_hparams, config_to_dict, load_config
from fin_meta.envs.config import DEFAULT_EPISODE_LENGTH
from fin_meta.pipeline.stages import (
    SourceData,
    asset_name,
    detect_labels,
    evaluate,
    load_sources,
    meta_test,
    task_sampler,
    train,
)
from fin_meta.seeding import seed_everything
from fin_meta.tasks import TaskSampler
from fin_meta.tracking import flatten_params, prices_hash, resolve_tracking_uri, start_run
from fin_meta.tracking.model import log_agent_model
from fin_meta.tracking.records import log_evaluation, log_mean_over_sources, log_meta_test
from fin_meta.tracking.run import Tracker

__all__ = ["ExperimentOutcome", "asset_name", "baseline_hparams", "run_experiment"]

Echo = Callable[[str], Any]


@dataclass
class ExperimentOutcome:
    """What `run_experiment` produced: per-source evaluations, the adaptation summary, the
    trained agent, the MLflow run id (None when not tracked) and the wall time in seconds."""

    config: ExperimentConfig
    agent: Agent
    evaluations: list[Evaluation]
    adaptation: pd.DataFrame | None = None
    run_id: str | None = None
    tracking_uri: str | None = None
    wall_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def print_report(self, echo: Echo = print) -> None:
        """Print the test-period results table per source, then where the run was logged."""
        for ev in self.evaluations:
            echo(f"\n{ev.name} test period, sorted by Sharpe (95% bootstrap CI), fees+slippage included:")
            echo(format_results_table(ev.table))
        if self.adaptation is not None and len(self.adaptation):
            with pd.option_context("display.float_format", "{:.5f}".format, "display.width", 160):
                echo("\nmeta-test adaptation curve (mean per-bar net log return on held-out segments):")
                echo(self.adaptation.to_string(index=False))
        echo(f"\nwall time {self.wall_s:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items()) + ")")
        if self.run_id:
            uri = resolve_tracking_uri(self.tracking_uri)
            echo(f"MLflow run {self.run_id} in {uri}")
            echo(f"  open the UI:   fin-meta ui --tracking-uri {uri}")
            echo(f'  load the agent: fin_meta.load_agent("runs:/{self.run_id}/agent")')


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
    cfg = config if not isinstance(config, (str, Path)) else load_config(config)
    say = echo or (lambda _msg: None)
    clock = _Clock()
    seed_everything(cfg.seed)
    regimes, evaluation = cfg.regimes, cfg.evaluation
    episode_length = cfg.env.episode_length or DEFAULT_EPISODE_LENGTH

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
        tracker.log_dict(config_to_dict(cfg), "config.yaml")
        with clock("regimes"):
            say(f"[2/5] regimes ({regimes.method}) and tasks")
            labels = [detect_labels(src, regimes.method, regimes.params, regimes.min_length,
                                    hindsight_tasks=regimes.task_labels == "hindsight") for src in sources]
            sampler = task_sampler(sources, labels, episode_length=episode_length, window=cfg.env.window,
                                   min_segment=regimes.min_length)
        with clock("train"):
            say(f"[3/5] meta-training {cfg.agent.algo} for {cfg.agent.iterations} iterations")
            agents = _train_agents(cfg, sampler, tracker, say, resume=resume is not None, progress=progress)
        with clock("meta_test"):
            say(f"[4/5] meta-test: adaptation curves at {evaluation.adaptation_steps}")
            adaptation = meta_test(agents, sources, [lab.causal for lab in labels], evaluation.adaptation_steps,
                                   min_length=regimes.min_length, episode_length=episode_length,
                                   bootstrap_samples=evaluation.bootstrap_samples, seed=cfg.seed)
            if adaptation is not None:
                log_meta_test(tracker, adaptation.curves, adaptation.summary)
        with clock("backtest"):
            say("[5/5] walk-forward over the test period and backtest against baselines")
            evaluations = [_evaluate(cfg, src, agents, lab.causal) for src, lab in zip(sources, labels, strict=True)]
            multi = len(evaluations) > 1
            for ev in evaluations:
                log_evaluation(tracker, ev, f"test/{ev.name}" if multi else "test")
            log_mean_over_sources(tracker, evaluations)
        log_agent_model(tracker, agents[cfg.agent.algo])
        tracker.log_metrics({f"time.{k}_s": v for k, v in clock.timings.items()})
        run_id = tracker.run_id

    return ExperimentOutcome(
        config=cfg,
        agent=agents[cfg.agent.algo],
        evaluations=evaluations,
        adaptation=None if adaptation is None else adaptation.summary,
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


# -- the config, unpacked for the stages -------------------------------------------------------
def _load_sources(cfg: ExperimentConfig) -> list[SourceData]:
    """The experiment's sources, split into their periods (`stages.load_sources`)."""
    data = cfg.data
    return load_sources(data.sources, data.split_kwargs(), start=data.start, end=data.end, data_dir=data.data_dir,
                        ffill_limit=data.ffill_limit, source_params=data.source_params)


def baseline_hparams(cfg: ExperimentConfig, algo: str) -> BaseModel:
    """Hyperparameters of a baseline agent trained beside the main one (the pooled PPO:
    `evaluation.ppo`, defaults otherwise) with the experiment's seed and device."""
    given = cfg.evaluation.ppo if algo == "ppo" else {}
    return hparams_model(algo)(**given, seed=cfg.seed, device=cfg.agent.device)


def _train_agents(cfg: ExperimentConfig, sampler: TaskSampler, tracker: Tracker, say: Echo, *, resume: bool,
                  progress: bool) -> dict[str, Agent]:
    """The main agent, and the pooled PPO baseline when configured: `{algo: agent}`, main first."""
    algo, iterations = cfg.agent.algo, cfg.agent.iterations
    agents = {algo: train(algo, cfg.env, agent_hparams(cfg), sampler, iterations, tracker, resume=resume,
                          progress=progress)}
    if cfg.evaluation.pooled_ppo and algo != "ppo":
        say("      pooled PPO baseline")
        agents["ppo"] = train("ppo", cfg.env, baseline_hparams(cfg, "ppo"), sampler, iterations, tracker,
                              baseline=True, progress=progress)
    return agents


def _evaluate(cfg: ExperimentConfig, src: SourceData, agents: dict[str, Agent], causal: pd.Series) -> Evaluation:
    """`stages.evaluate` of one source: the agents, the baselines and buy-and-hold."""
    ev = cfg.evaluation
    return evaluate(asset_name(src.source), src.test, src.walk, agents,
                    list(dict.fromkeys([*ev.baselines, "buy_and_hold"])), ev.strategy_params, ev.strategies_dir,
                    fees=cfg.env.fees, slippage=cfg.env.slippage, max_position=cfg.env.max_position,
                    bootstrap_samples=ev.bootstrap_samples, seed=cfg.seed, labels=causal)
