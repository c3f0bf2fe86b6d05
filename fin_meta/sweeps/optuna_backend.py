"""The Optuna backend (the default): TPE over the space file, median pruning of the validation
net Sharpe reported at each evaluation, trials in this process (`jobs=1`) or one a task in `jobs`
worker processes sharing the study's storage (`fin_meta.pipeline.pool`, `fin_meta.sweeps.workers`).
Every finished trial becomes a `TrialEvent` for the parent process (progress bar, the parent
run's running figures)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fin_meta.errors import FinMetaError
from fin_meta.pipeline.pool import TaskFailed, run_pool, threads_per_worker
from fin_meta.sweeps.objective import Pruned, TrialSpec, run_trial
from fin_meta.sweeps.space import SearchSpace
from fin_meta.sweeps.study import open_study, sampler
from fin_meta.sweeps.workers import PRELOAD

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["OptunaJob", "TrialEvent", "event_of", "run_optuna"]


@dataclass(frozen=True)
class TrialEvent:
    """A finished trial: its `number`, `state` (`complete`, `pruned`, `failed`), objective
    `value` (None unless complete), values drawn and a note (why it was pruned or failed)."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    note: str = ""


@dataclass(frozen=True)
class OptunaJob:
    """Everything a worker needs (plain data): the trials' shared `spec`, the `space`, the
    study (`url`, `name`), the sampler's seed parts and the pruner."""

    spec: TrialSpec
    space: SearchSpace
    url: str
    name: str
    seed: int
    existing: int
    pruner: Any


def event_of(trial: FrozenTrial) -> TrialEvent:
    """The `TrialEvent` of a finished Optuna trial."""
    state = {"COMPLETE": "complete", "PRUNED": "pruned"}.get(trial.state.name, "failed")
    attrs = trial.user_attrs
    return TrialEvent(trial.number, state, trial.value if state == "complete" else None, dict(trial.params),
                      str(attrs.get("note") or attrs.get("error") or ""))


def objective(job: OptunaJob) -> Callable[[optuna.Trial], float]:
    """Optuna's objective: one trial (`run_trial`), the validation net Sharpe reported at each
    evaluation and pruned when the study's pruner says so; its child run id kept as the user
    attribute `run_id`, a trial's input error (`FinMetaError`) as `error`."""
    import optuna

    def run(trial: optuna.Trial) -> float:
        values = job.space.suggest(trial)

        def report(iterations: int, score: float) -> None:
            trial.report(score, iterations)
            if trial.should_prune():
                raise Pruned(iterations, score)

        try:
            result = run_trial(job.spec, trial.number, values, report)
        except Pruned as signal:
            trial.set_user_attr("note", str(signal))
            if signal.run_id:
                trial.set_user_attr("run_id", signal.run_id)
            raise optuna.TrialPruned(str(signal)) from None
        except FinMetaError as exc:
            trial.set_user_attr("error", str(exc).splitlines()[0])
            raise
        trial.set_user_attr("run_id", result.run_id)
        return result.value

    return run


def run_optuna(job: OptunaJob, trials: int, jobs: int, on_event: Callable[[TrialEvent], None]) -> None:
    """Run `trials` more trials of the study, `jobs` at a time (1: in this process), calling
    `on_event` here for each finished one. A trial that fails on its input is recorded as
    failed and the sweep goes on; a bug stops it (RuntimeError naming it, once the trials
    running alongside have finished)."""
    if jobs <= 1 or trials == 1:
        study = open_study(job.url, job.name, sampler=sampler(job.seed, job.existing), pruner=job.pruner)
        study.optimize(objective(job), n_trials=trials, catch=(FinMetaError,),
                       callbacks=[lambda _study, trial: on_event(event_of(trial))])
        return
    try:
        run_pool(one_trial, [(job, task) for task in range(trials)], jobs=jobs,
                 threads=threads_per_worker(min(jobs, trials)), on_result=lambda _i, event: on_event(event),
                 preload=PRELOAD)
    except TaskFailed as failed:
        error = failed.error
        raise RuntimeError(f"sweep worker failed: {type(error).__name__}: {error}") from error


def one_trial(job: OptunaJob, task: int) -> TrialEvent:
    """One trial of the study in a worker process, its sampler seeded by the `task`'s number
    in this session (task 0 draws as a one-process sweep's first trial would)."""
    study = open_study(job.url, job.name, sampler=sampler(job.seed, job.existing, task), pruner=job.pruner)
    events: list[TrialEvent] = []
    study.optimize(objective(job), n_trials=1, catch=(FinMetaError,),
                   callbacks=[lambda _study, trial: events.append(event_of(trial))])
    return events[0]
