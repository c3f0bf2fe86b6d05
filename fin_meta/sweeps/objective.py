"""One trial of a sweep: `fin_meta.pipeline.run_experiment` on the experiment with the trial's
values set, as an MLflow child run of the sweep's parent run (`tracking.nesting.child_tags`).

The objective is the **validation** net Sharpe of the checkpoint the run selects (the best of
its validation evaluations, what early stopping keeps); the test period plays no part in it.
Each validation evaluation is also handed to `on_validation(iterations, sharpe)`, which may
raise `Pruned` to stop a trial that is not worth finishing: its child run then ends KILLED with
the tag `fin_meta.pruned` saying when and why, never FAILED.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from fin_meta.config.experiment import ExperimentConfig
from fin_meta.config.yaml_io import format_errors
from fin_meta.errors import ConfigError
from fin_meta.pipeline import run_experiment
from fin_meta.sweeps.space import trial_data
from fin_meta.tracking.nesting import child_tags
from fin_meta.tracking.run import StopRun

__all__ = ["PRUNED_TAG", "RERUN_TAG", "SWEEP_TAG", "TRIAL_TAG", "Pruned", "TrialResult", "TrialSpec",
           "best_score", "run_trial", "trial_config"]

SWEEP_TAG = "fin_meta.sweep"
"""The sweep's name, on its parent run and on every trial's child run."""
TRIAL_TAG = "trial"
"""The trial's number in the study (`child_tags(parent, "trial", trial=...)`)."""
PRUNED_TAG = "fin_meta.pruned"
"""On a pruned trial's child run (status KILLED): after how many iterations, at which score."""
RERUN_TAG = "fin_meta.rerun"
"""The `fin-meta run` command that repeats the trial on its own."""


class Pruned(StopRun):
    """Raised by an `on_validation` hook to stop a trial after `iterations` iterations whose
    validation net Sharpe was `score`: `start_run` ends its child run KILLED, tagged `PRUNED_TAG`
    (never FAILED), and sets `run_id`."""

    def __init__(self, iterations: int, score: float) -> None:
        why = f"pruned after {iterations} iteration{'' if iterations == 1 else 's'} (validation net Sharpe {score:.4g})"
        super().__init__(why, tags={PRUNED_TAG: why})
        self.iterations, self.score = iterations, score


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of a sweep shares (plain data: it travels to worker processes and to
    Ray): the experiment's config data `base` (tracking URI and experiment resolved), the
    sweep's `name`, the parent run and the command that reruns a trial (`rerun` + `--set`s)."""

    base: dict[str, Any]
    name: str
    parent_run_id: str
    rerun: str = "fin-meta run EXPERIMENT.yaml"

    @property
    def tracking_uri(self) -> str:
        return str(self.base["tracking"]["tracking_uri"])


@dataclass
class TrialResult:
    """A finished trial: its objective `value` (the best validation net Sharpe), its child run
    and every `(iterations, validation net Sharpe)` evaluation."""

    value: float
    run_id: str | None
    scores: list[tuple[int, float]] = field(default_factory=list)


def best_score(scores: list[tuple[int, float]]) -> float:
    """The best of the evaluations' scores (NaN counts as -inf, as in early stopping)."""
    finite = [s for _, s in scores if not math.isnan(s)]
    return max(finite, default=-math.inf)


def trial_config(base: Mapping[str, Any], values: Mapping[str, Any]) -> ExperimentConfig:
    """The experiment with a trial's `values` set; `ConfigError` (one line per problem) when
    the combination is invalid (each value alone was checked with the space file)."""
    data = trial_data(base, values)
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        lines = format_errors(exc, root=ExperimentConfig, data=data, doc=None)
        given = ", ".join(f"{k}={v!r}" for k, v in values.items())
        raise ConfigError(f"trial ({given}): " + "; ".join(x.removeprefix("<config>: ") for x in lines)) from None


def rerun_command(spec: TrialSpec, values: Mapping[str, Any]) -> str:
    """`fin-meta run X.yaml --set ... --set k=v`: the trial on its own."""
    sets = " ".join(f"--set {shlex.quote(f'{k}={_yaml_value(v)}')}" for k, v in values.items())
    return f"{spec.rerun} {sets}".strip()


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def run_trial(spec: TrialSpec, number: int, values: Mapping[str, Any],
              on_validation: Callable[[int, float], None] | None = None) -> TrialResult:
    """Run trial `number` with `values` (`{dotted key: value}`) as a child run of the sweep.
    `Pruned` raised by `on_validation` ends the child run KILLED (`start_run`) and goes on up."""
    cfg = trial_config(spec.base, values)
    scores: list[tuple[int, float]] = []

    def hook(iterations: int, score: float) -> None:
        scores.append((iterations, score))
        if on_validation is not None:
            on_validation(iterations, score)

    tags = child_tags(spec.parent_run_id, "trial", **{TRIAL_TAG: str(number), SWEEP_TAG: spec.name,
                                                      RERUN_TAG: rerun_command(spec, values)})
    outcome = run_experiment(cfg, progress=False, extra_tags=tags, on_validation=hook)  # Pruned goes on up
    return TrialResult(best_score(scores), outcome.run_id, scores)
