"""Where a sweep's Optuna study lives and how it searches: the study is stored in SQLite beside
the MLflow store (`optuna.db` next to `mlflow.db`; `./optuna.db` when MLflow is a server; or
`--storage URL`) under the sweep's name, so running the same sweep again continues it. TPE
sampling (seeded: the experiment's seed, the trials already in the study and the worker's task), median
pruning of the validation net Sharpe reported at each evaluation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fin_meta.tracking.store import sqlite_path

if TYPE_CHECKING:
    import optuna

__all__ = ["DIRECTION", "STUDY_FILE", "default_pruner", "fail_stale_trials", "open_storage", "open_study",
           "sampler", "storage_url"]

STUDY_FILE = "optuna.db"
"""The study's SQLite file, beside the MLflow store's."""
DIRECTION = "maximize"
"""The objective, validation net Sharpe, is maximised."""
_SEED_STRIDE = 7919
"""The samplers of a session's tasks (one trial each in a worker process) are seeded this far apart."""


def storage_url(tracking_uri: str, storage: str | None = None) -> str:
    """The study's storage: `storage` (a URL, or a file path for SQLite) when given, else
    `optuna.db` beside a SQLite MLflow store, else `./optuna.db`."""
    if storage:
        return storage if "://" in storage else f"sqlite:///{Path(storage).expanduser().resolve().as_posix()}"
    store = sqlite_path(tracking_uri)
    folder = store.parent if store is not None else Path.cwd()
    return f"sqlite:///{(folder / STUDY_FILE).resolve().as_posix()}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage; SQLite waits up to a minute for a lock (several workers write to it)."""
    import optuna

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def sampler(seed: int, existing: int, task: int = 0) -> optuna.samplers.BaseSampler:
    """A TPE sampler seeded by the experiment's `seed`, the number of trials `existing` in the
    study (a resumed sweep does not redraw its first points) and the worker's `task`."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed + existing + _SEED_STRIDE * task)


def default_pruner(prune: bool = True) -> optuna.pruners.BasePruner:
    """Median pruning (a trial whose validation net Sharpe at an evaluation is below the median
    of earlier trials' at the same iteration stops, once 3 trials have completed), or none."""
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=3) if prune else optuna.pruners.NopPruner()


def open_study(url: str, name: str, *, sampler: optuna.samplers.BaseSampler | None = None,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """The study `name` in the storage `url`, created when missing."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # fin-meta reports trials itself
    return optuna.create_study(storage=open_storage(url), study_name=name, direction=DIRECTION, load_if_exists=True,
                               sampler=sampler, pruner=pruner)


def fail_stale_trials(study: optuna.Study) -> int:
    """Mark the trials an interrupted session left RUNNING as failed (call before a session
    starts trials: no other session of the sweep may be running); how many there were."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=TrialState.FAIL)
    return len(stale)
