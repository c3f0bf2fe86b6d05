"""`run_experiment(config)`: data -> regimes -> tasks -> meta-train -> meta-test -> walk forward
-> one backtest against baselines -> MLflow. What `fin-meta run` and `make demo` do.

Every source is split into train / (validation) / test periods with an embargo; training tasks
are regime segments of the training period only. With a validation period (`data.val_start`)
the agent and the pooled PPO baseline are scored on it during training and the best checkpoint
is kept, with early stopping after `agent.patience` evaluations without improvement
(`fin_meta.pipeline.training`); nothing is chosen on the test period. The agents are then walked
forward online over each period, with a year of bars before it as context only (causal:
positions at t use bars up to t), and backtested against the rule strategies: the test period,
and beside it the in-sample (training) and validation periods, net and gross of costs. Nothing
downstream reaches back upstream. This module orchestrates: it
unpacks the config, runs the stages (`fin_meta.pipeline.stages`), which compute, then hands their
values to `fin_meta.tracking.records`, which logs.

Everything that can be wrong with the experiment is found before training starts and before an
MLflow run is opened: the sources and their periods (a test period shorter than
`evaluation.min_test_bars` is refused), the regimes on the data, the rule strategies and their
parameters (their positions are computed first), the agents' hyperparameters, and whether the
meta-test has held-out segments (said, not refused). `resume` continues a run from its own
config and last checkpoints, and gives the same results as the run uninterrupted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from fin_meta.agents import Agent, hparams_model, make_agent
from fin_meta.backtest import Evaluation
from fin_meta.config import ExperimentConfig, agent_hparams, config_to_dict, load_config
from fin_meta.envs.config import DEFAULT_EPISODE_LENGTH, EnvConfig
from fin_meta.errors import ConfigError
from fin_meta.pipeline.checks import HeldOut, check_test_length, held_out
from fin_meta.pipeline.deflate import log_deflated_sharpe
from fin_meta.pipeline.outcome import Clock, ExperimentOutcome
from fin_meta.pipeline.resume import resume_config
from fin_meta.pipeline.stages import (
    SourceData,
    asset_name,
    detect_labels,
    evaluate,
    fit_env_features,
    load_sources,
    meta_test,
    rule_positions,
    task_sampler,
    validation_scores,
)
from fin_meta.pipeline.summary import describe_run, markdown_table, run_name, summary_table
from fin_meta.pipeline.training import Trained, Validation, train
from fin_meta.pipeline.walk_forward import run_walk_forward
from fin_meta.seeding import seed_everything
from fin_meta.tasks import TaskSampler
from fin_meta.tracking import flatten_params, prices_hash, start_run
from fin_meta.tracking.checkpoints import (
    CONFIG_ARTIFACT,
    ResumePoint,
    check_resume_params,
    resume_command,
)
from fin_meta.tracking.model import log_agent_model
from fin_meta.tracking.records import (
    log_evaluation,
    log_mean_over_sources,
    log_meta_test,
    log_summary,
    set_description,
)
from fin_meta.tracking.run import Tracker

__all__ = ["ExperimentOutcome", "asset_name", "baseline_hparams", "run_experiment"]

Echo = Callable[[str], Any]
_INDENT = "      "


def run_experiment(
    config: ExperimentConfig | str | Path | None = None,
    *,
    resume: str | None = None,
    tracking_uri: str | None = None,
    echo: Echo | None = None,
    progress: bool = True,
    extra_tags: Mapping[str, str] | None = None,
    on_validation: Callable[[int, float], None] | None = None,
) -> ExperimentOutcome:
    """Run one experiment end to end (see the module docstring); `config` is an
    `ExperimentConfig` or the path of an experiment file. `resume` (a run id or unique prefix)
    continues that MLflow run from its own `config.yaml` and last checkpoints: `config` may then
    be left out (given, it must agree); `tracking_uri` names the run's store (default: the
    config's, else the default store). A FINISHED run is refused and left as it is. Ctrl-C
    during a tracked run says how to resume it. `extra_tags` are added to the run's tags (e.g.
    `tracking.nesting.child_tags` to make it a seed or trial of a parent run). `on_validation
    (iterations, net Sharpe)` is called after each validation evaluation of the main agent (needs
    `data.val_start`) and may raise to stop the run (a sweep's pruning). Returns an
    `ExperimentOutcome`."""
    cfg = config if config is None or isinstance(config, ExperimentConfig) else load_config(config)
    point: ResumePoint | None = None
    if resume is not None:
        cfg, point = resume_config(resume, tracking_uri=tracking_uri, config=cfg)
    elif cfg is None:
        raise ConfigError("run_experiment needs an experiment config (or resume=RUN_ID)")
    if cfg.seeds is not None:  # a seed set (`fin_meta.pipeline.seeds`); one seed loads as `seed`
        raise ConfigError(f"resume: run {point.run_id} is the parent of the seed set {cfg.seeds}: resume a seed's own "
                          "run (fin-meta run --resume CHILD_ID) or run the set again" if point is not None else
                          f"seeds {cfg.seeds}: run_experiment runs one seed; run a seed set with "
                          "fin_meta.pipeline.run_seeds (fin-meta run --seeds), or set `seed`")
    say = echo or (lambda _msg: None)
    if point is not None:
        say(f"resuming MLflow run {point.run_id} ({point.status}) with its own config")
    clock = Clock()
    seed_everything(cfg.seed)
    regimes, evaluation = cfg.regimes, cfg.evaluation
    episode_length = cfg.env.episode_length or DEFAULT_EPISODE_LENGTH

    with clock("data"):
        say(f"[1/5] data: {', '.join(cfg.data.sources)}")
        sources = _load_sources(cfg)
        for src in sources:
            say(_INDENT + src.describe())
        check_test_length(sources, evaluation.min_test_bars)
    if evaluation.walk_forward is not None:  # refits over the test period: fin_meta.pipeline.walk_forward
        return run_walk_forward(cfg, sources, make_agents=lambda seed, parts: _make_agents(
                                    cfg.model_copy(update={"seed": seed}),
                                    fit_env_features(cfg.env, parts, regimes.method, regimes.params)),
                                rule_names=_rule_names(cfg), params=_run_params(cfg, sources), resumed=point is not None,
                                extra_tags=extra_tags, echo=say, progress=progress, clock=clock)
    periods = _periods(sources)
    with clock("regimes"):
        say(f"[2/5] baselines' positions, regimes ({regimes.method}), tasks and meta-test segments")
        rules = {period: [rule_positions(src.period(period)[1], _rule_names(cfg), evaluation.strategy_params,
                                         evaluation.strategies_dir) for src in sources] for period in periods}
        labels = [detect_labels(src, regimes.method, regimes.params, regimes.min_length,
                                hindsight_tasks=regimes.task_labels == "hindsight") for src in sources]
        sampler = task_sampler(sources, labels, episode_length=episode_length, window=cfg.env.window,
                               min_segment=regimes.min_length, windows=regimes.task_windows)
        env = fit_env_features(cfg.env, sources, regimes.method, regimes.params)  # training periods only
        agents = _make_agents(cfg, env)
        held = held_out(agents, sources, [lab.causal for lab in labels], evaluation.adaptation_steps,
                        min_length=regimes.min_length, episode_length=episode_length)
        say(_INDENT + (held.note or f"meta-test: {held.count} held-out segments of >= {held.min_bars} bars"))
    params = _run_params(cfg, sources)
    if point is not None:
        check_resume_params(point, params)  # before the run is touched: a refusal changes nothing
    tags = {
        "data.source": ",".join(cfg.data.sources),
        "data.hash": prices_hash({s.source: s.full for s in sources}),
        "agent.algo": cfg.agent.algo,
        "job": "run",
        **(extra_tags or {}),
    }
    if point is None:
        experiment, uri, resume_id = cfg.tracking.experiment or cfg.name, cfg.tracking.tracking_uri, None
    else:
        experiment, uri, resume_id = point.experiment, point.tracking_uri, point.run_id
    described = [src.describe() for src in sources]
    name = None if point is not None else run_name(cfg.agent.algo, cfg.data.sources, cfg.seed)
    run_id: str | None = None
    try:
        with start_run(experiment, run_name=name, params=params, tags=tags, tracking_uri=uri,
                       enabled=cfg.tracking.enabled, resume_run_id=resume_id) as tracker:
            run_id = tracker.run_id
            set_description(tracker, _description(cfg, described, None, held))
            tracker.log_dict(config_to_dict(cfg), CONFIG_ARTIFACT)
            with clock("train"):
                say(f"[3/5] meta-training {cfg.agent.algo} for {cfg.agent.iterations} iterations")
                trained = _train_agents(cfg, agents, sampler, tracker, say, sources, resume=point is not None,
                                        progress=progress, on_validation=on_validation)
                agents = {key: t.agent for key, t in trained.items()}
                notes = [t.describe(key, cfg.agent.iterations) for key, t in trained.items()]
                for line in notes:
                    say(_INDENT + line)
            with clock("meta_test"):
                say(f"[4/5] meta-test: adaptation curves at {evaluation.adaptation_steps}")
                adaptation = meta_test(agents, sources, held.bounds, evaluation.adaptation_steps,
                                       bootstrap_samples=evaluation.bootstrap_samples, seed=cfg.seed)
            with clock("backtest"):
                say(f"[5/5] walk-forward over the {', '.join(periods)} periods and backtest against baselines")
                scored = {period: [_evaluate(cfg, src, agents, rule, lab.causal if period == "test" else None, period)
                                   for src, rule, lab in zip(sources, rules[period], labels, strict=True)]
                          for period in periods}
            evaluations = scored.pop("test")
            summary = summary_table(evaluations, scored)
            with clock("log"):
                last_step = max(t.iterations for t in trained.values())
                _log_results(tracker, agents[cfg.agent.algo], adaptation, scored, evaluations, dict(clock.timings),
                             offline_html=cfg.tracking.offline_html, val_step=last_step)
                log_deflated_sharpe(tracker, evaluations)
                log_summary(tracker, summary, markdown_table(summary))
                set_description(tracker, _description(cfg, described, summary, held, notes))
    except KeyboardInterrupt as exc:
        if run_id is not None:
            message = (f"interrupted: MLflow run {run_id} keeps its last checkpoint; continue it with: "
                       f"{resume_command(run_id, uri)}")
            say(message)
            exc.add_note(message)
        raise

    return ExperimentOutcome(
        config=cfg,
        agent=agents[cfg.agent.algo],
        evaluations=evaluations,
        adaptation=None if adaptation is None else adaptation.summary,
        run_id=run_id,
        tracking_uri=uri,
        wall_s=sum(clock.timings.values()),
        timings=clock.timings,
        periods=described,
        meta_test_note=held.note,
        in_sample=scored["train"],
        validation=scored.get("val", []),
        training=notes,
    )


# -- the config, unpacked for the stages -------------------------------------------------------
def _load_sources(cfg: ExperimentConfig) -> list[SourceData]:
    """The experiment's sources, split into their periods (`stages.load_sources`)."""
    data = cfg.data
    return load_sources(data.sources, data.split_kwargs(), start=data.start, end=data.end, data_dir=data.data_dir,
                        ffill_limit=data.ffill_limit, source_params=data.source_params,
                        bars_per_year=data.bars_per_year)


def _run_params(cfg: ExperimentConfig, sources: list[SourceData]) -> dict[str, str]:
    """The run's params: the flattened config, with `data.bars_per_year` resolved from the data."""
    params = flatten_params(config_to_dict(cfg))
    params["data.bars_per_year"] = ", ".join(dict.fromkeys(str(float(src.bars_per_year)) for src in sources))
    return params


def _periods(sources: list[SourceData]) -> list[str]:
    """The periods every source is scored on: `train` (in-sample), `val` when set, `test`."""
    return ["train", *(["val"] if all(src.val is not None for src in sources) else []), "test"]


def _rule_names(cfg: ExperimentConfig) -> list[str]:
    """The rule strategies backtested beside the agents: the baselines, then buy-and-hold."""
    return list(dict.fromkeys([*cfg.evaluation.baselines, "buy_and_hold"]))


def baseline_hparams(cfg: ExperimentConfig, algo: str) -> BaseModel:
    """Hyperparameters of a baseline agent trained beside the main one (the pooled PPO:
    `evaluation.ppo`, defaults otherwise) with the experiment's seed and device."""
    given = cfg.evaluation.ppo if algo == "ppo" else {}
    return hparams_model(algo)(**given, seed=cfg.seed, device=cfg.agent.device)


def _make_agents(cfg: ExperimentConfig, env: EnvConfig | None = None) -> dict[str, Agent]:
    """Fresh agents on `env` (`cfg.env` with its fitted feature models; None: `cfg.env`), before
    any training (a bad hyperparameter fails here): the main one, and the pooled PPO baseline
    when configured; `{algo: agent}`, main first."""
    algo, env = cfg.agent.algo, env or cfg.env
    agents = {algo: make_agent(algo, env, agent_hparams(cfg))}
    if cfg.evaluation.pooled_ppo and algo != "ppo":
        agents["ppo"] = make_agent("ppo", env, baseline_hparams(cfg, "ppo"))
    return agents


def _train_agents(cfg: ExperimentConfig, agents: dict[str, Agent], sampler: TaskSampler, tracker: Tracker,
                  say: Echo, sources: list[SourceData], *, resume: bool, progress: bool,
                  on_validation: Callable[[int, float], None] | None = None) -> dict[str, Trained]:
    """Train every agent of `_make_agents` for the experiment's budget, in order, validated on
    the sources' validation periods when they have one; a baseline logs `<algo>.train.*` (and
    `<algo>.val.*`) and checkpoints to `checkpoint_<algo>/`. `resume`: from the checkpoints.
    `on_validation`: the main agent's `Validation.report`."""
    validation = None
    if on_validation is not None and not all(src.val is not None for src in sources):
        raise ConfigError("on_validation needs a validation period: set data.val_start")
    if all(src.val is not None for src in sources):
        env = cfg.env

        def score(agent: Agent) -> dict[str, float]:
            return validation_scores(agent, sources, fees=env.fees, slippage=env.slippage,
                                     max_position=env.max_position)

        validation = Validation(score, cfg.agent.evaluation_interval, cfg.agent.patience)
    trained = {}
    for key, agent in agents.items():
        main = key == cfg.agent.algo
        if not main:
            say(f"{_INDENT}pooled {key.upper()} baseline")
        own = validation if validation is None or not main else replace(validation, report=on_validation)
        trained[key] = train(agent, sampler, cfg.agent.iterations, tracker,
                             checkpoint="checkpoint" if main else f"checkpoint_{key}", prefix="" if main else f"{key}.",
                             resume=resume, progress=progress, validation=own)
    return trained


def _evaluate(cfg: ExperimentConfig, src: SourceData, agents: dict[str, Agent], rules: pd.DataFrame,
              causal: pd.Series | None, period: str = "test") -> Evaluation:
    """`stages.evaluate` of one source's `period`: the agents, the rule strategies' positions
    `rules` (over that period's walk frame), per regime with the `causal` labels when given."""
    ev = cfg.evaluation
    frame, walk = src.period(period)
    return evaluate(asset_name(src.source), frame, walk, agents, rules, fees=cfg.env.fees,
                    slippage=cfg.env.slippage, max_position=cfg.env.max_position,
                    bootstrap_samples=ev.bootstrap_samples, seed=cfg.seed, labels=causal)


def _description(cfg: ExperimentConfig, periods: list[str], summary: pd.DataFrame | None, held: HeldOut,
                 notes: Sequence[str] = ()) -> str:
    """The run's description from its own config (`summary.describe_run`)."""
    return describe_run(cfg.agent.algo, cfg.data.sources, cfg.seed, cfg.agent.iterations, periods, summary,
                        [*notes, *([held.note] if held.note else [])])


def _log_results(tracker: Tracker, agent: Agent, adaptation: Any, scored: dict[str, list[Evaluation]],
                 evaluations: list[Evaluation], timings: dict[str, float], *, offline_html: bool,
                 val_step: int) -> None:
    """Log the meta-test, the agent (the one tested), the timings, the in-sample and validation
    evaluations (tables and metrics, no charts; the selected `val.*` at step `val_step`, the end
    of training), then every test evaluation with the test metrics last."""
    if adaptation is not None:
        log_meta_test(tracker, adaptation.curves, adaptation.summary)
    log_agent_model(tracker, agent, evaluations[0].prices if evaluations else None)  # a real input example
    tracker.log_metrics({f"time.{k}_s": v for k, v in timings.items()})
    for period, evs in [*scored.items(), ("test", evaluations)]:
        step = val_step if period == "val" else None
        for ev in evs:
            log_evaluation(tracker, ev, f"{period}/{ev.name}" if len(evs) > 1 else period, plots=period == "test",
                           offline_html=offline_html, step=step)
        log_mean_over_sources(tracker, evs, prefix=f"{period}.", step=step)
