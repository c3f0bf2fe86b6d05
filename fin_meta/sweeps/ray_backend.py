"""The Ray Tune backend (`--backend ray`, `pip install "fin-meta[ray]"`): the same sweep on a
Ray cluster, or on a local Ray. A `Tuner` runs the trials, `OptunaSearch` proposes them from
the same study (TPE, stored beside `mlflow.db` under the sweep's name), so both backends search
alike and a sweep can move from one to the other. Each trial starts its own MLflow child run
inside the trainable (`objective.run_trial`, the same as the Optuna backend), so trials nest
under the sweep's parent run wherever they run: the tracking URI must then be a server every
node reaches (`mlflow server` with a database backend), not a local SQLite file.

Trials are not pruned here (Ray would kill a trial's process and leave its MLflow run open);
`agent.patience` still stops a trial's training early. This module imports Ray at the top: it
is imported only once `--backend ray` is chosen and Ray is there (`job.require_ray`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from fin_meta.sweeps.objective import TrialSpec, run_trial
from fin_meta.sweeps.optuna_backend import TrialEvent
from fin_meta.sweeps.space import SearchSpace
from fin_meta.sweeps.study import DIRECTION, open_storage, sampler
from fin_meta.tracking.store import sqlite_path

__all__ = ["METRIC", "run_ray"]

METRIC = "val_sharpe"
"""What each trial reports to Ray: its validation net Sharpe (the objective)."""
_NUMBER = "fin_meta_trial"
"""The config key carrying the trial's number in the study into the trainable."""
_OUTPUT = "RAY_AIR_NEW_OUTPUT"
_ENV = {"RAY_CHDIR_TO_TRIAL_DIR": "0"}
"""Trials run in the driver's folder, so relative paths of the experiment still hold."""


class NumberedOptunaSearch(OptunaSearch):
    """`OptunaSearch` that hands each trial its number in the study (so child runs are tagged
    alike on both backends) and keeps the trial's MLflow run id as the Optuna user attribute
    `run_id`."""

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        params = super().suggest(trial_id)
        if params is not None:
            params[_NUMBER] = self._ot_trials[trial_id].number
        return params

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is not None and result and result.get("run_id"):
            trial.set_user_attr("run_id", result["run_id"])
        super().on_trial_complete(trial_id, result=result, error=error)


def _trainable(config: dict[str, Any], spec: TrialSpec) -> None:
    """One Ray trial: `run_trial` with the drawn values; reports the objective and the run id."""
    values = {k: v for k, v in config.items() if k != _NUMBER}
    result = run_trial(spec, int(config[_NUMBER]), values)
    value = result.value if math.isfinite(result.value) else -1e9  # Ray and Optuna want a finite number
    tune.report({METRIC: value, "run_id": result.run_id or "", "trial": int(config[_NUMBER])})


class _Events(tune.Callback):
    """Each finished trial as a `TrialEvent`, in the driver."""

    def __init__(self, on_event: Callable[[TrialEvent], None], keys: list[str]) -> None:
        self.on_event, self.keys = on_event, keys

    def _event(self, trial: Any, state: str, value: float | None, note: str = "") -> None:
        params = {k: trial.config[k] for k in self.keys if k in trial.config}
        self.on_event(TrialEvent(int(trial.config.get(_NUMBER, -1)), state, value, params, note))

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._event(trial, "complete", (trial.last_result or {}).get(METRIC))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._event(trial, "failed", None, f"see {trial.local_path or 'the Ray logs'}")


def run_ray(spec: TrialSpec, space: SearchSpace, url: str, name: str, *, trials: int, jobs: int, seed: int,
            address: str | None, gpus_per_trial: float, on_event: Callable[[TrialEvent], None],
            say: Callable[[str], Any] = lambda _msg: None) -> None:
    """Run `trials` trials of the study `name` (storage `url`) on Ray: a local Ray with `jobs`
    CPUs, or the cluster at `address`; each trial takes one CPU and `gpus_per_trial` GPUs, at
    most `jobs` at a time on a cluster when `jobs` > 1. `on_event` is called for each finished
    trial."""
    if address and sqlite_path(spec.tracking_uri) is not None:
        say(f"note: the tracking store {spec.tracking_uri} is a local SQLite file; trials on other nodes cannot "
            "reach it: use an MLflow server (mlflow server --backend-store-uri postgresql://...)")
    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                   "log_to_driver": False}
        if address:
            ray.init(address=address, runtime_env={"env_vars": dict(_ENV)}, **options)
        else:
            for key, value in _ENV.items():
                os.environ.setdefault(key, value)
            ray.init(num_cpus=jobs, **options)
    search = NumberedOptunaSearch(space.distributions(), metric=METRIC, mode=DIRECTION[:3],
                                  sampler=sampler(seed, 0), study_name=name, storage=open_storage(url))
    trainable = tune.with_resources(tune.with_parameters(_trainable, spec=spec),
                                    {"cpu": 1, "gpu": gpus_per_trial})
    store = sqlite_path(spec.tracking_uri)
    run_config = tune.RunConfig(name=name, verbose=0, callbacks=[_Events(on_event, [p.key for p in space.params])],
                                storage_path=None if store is None or address else str(Path(store).parent / "ray_results"))
    tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(
        search_alg=search, num_samples=trials, max_concurrent_trials=jobs if jobs > 1 else None),
        run_config=run_config)
    quiet = os.environ.get(_OUTPUT)
    os.environ[_OUTPUT] = "0"  # Ray's classic reporter, silent at verbose=0: the sweep prints its own lines
    try:
        tuner.fit()
    finally:
        if quiet is None:
            os.environ.pop(_OUTPUT, None)
        else:
            os.environ[_OUTPUT] = quiet
        if started:
            ray.shutdown()
