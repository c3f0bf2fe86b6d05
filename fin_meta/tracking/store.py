"""Where MLflow runs live: the tracking URI, the client, experiments by name.

MLflow is imported inside functions (the CLI imports this module at start-up).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from fin_meta.errors import FinMetaError

if TYPE_CHECKING:
    from mlflow.entities import Experiment
    from mlflow.tracking import MlflowClient

__all__ = [
    "TrackingError",
    "resolve_tracking_uri",
    "sqlite_path",
    "require_store",
    "open_client",
    "quiet_logger",
    "get_or_create_experiment",
    "find_experiment",
    "active_experiments",
    "experiment_names",
]

_SQLITE = "sqlite:///"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_LOCK_TIMEOUT_S = 300.0
"""Longest wait for another process creating the same SQLite store's tables (seconds)."""
_SCHEMA_LOGGER = "mlflow.store.db.utils"
"""MLflow's logger of "Creating initial MLflow database tables..." / "Updating database tables"."""


class TrackingError(FinMetaError, LookupError):
    """An MLflow store, experiment, run or metric that does not exist or cannot be used; the
    message names it and lists what does exist."""


def resolve_tracking_uri(explicit: str | None = None) -> str:
    """The MLflow tracking URI to use: `explicit` (e.g. `--tracking-uri`), else the
    `MLFLOW_TRACKING_URI` environment variable, else `sqlite:///<cwd>/mlflow.db`.

    MLflow 3.17's own default is `sqlite:///mlflow.db` relative to the working directory (or
    `./mlruns` when that folder already holds a legacy file store). fin-meta uses the same
    SQLite file but spells it with an absolute path, so the URI printed in run logs, passed to
    `fin-meta ui` or stored in a notebook still points at the same store after a `cd`; a legacy
    `./mlruns` file store is used only when named explicitly. Relative `sqlite:///x.db` URIs are
    made absolute the same way, and a bare path ending in `.db` means a SQLite file.
    """
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI") or ""
    uri = uri.strip()
    if not uri:
        return _SQLITE + (Path.cwd().resolve() / "mlflow.db").as_posix()
    if uri.endswith(".db") and not _SCHEME.match(uri):
        return _SQLITE + Path(uri).expanduser().resolve().as_posix()
    if uri.startswith(_SQLITE) and not uri.startswith(_SQLITE + "/"):
        relative = uri[len(_SQLITE) :]
        return _SQLITE + (Path.cwd().resolve() / relative).as_posix()
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (None for any other kind of store)."""
    if not uri.startswith(_SQLITE):
        return None
    return Path(uri[len(_SQLITE) :].split("?", 1)[0])


def require_store(uri: str) -> None:
    """`TrackingError` when `uri` is a SQLite store whose file does not exist (read-only
    commands such as `fin-meta compare` and `fin-meta ui` must not create empty stores)."""
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        raise TrackingError(
            f"no MLflow store at {db} (tracking URI {uri}): log a run first (fin-meta backtest / "
            "fin-meta run), or point --tracking-uri / MLFLOW_TRACKING_URI at an existing store"
        )


def open_client(uri: str, *, must_exist: bool = False) -> MlflowClient:
    """An `MlflowClient` bound to `uri` (no global MLflow state is changed), its store opened
    now. With `must_exist`, a SQLite file that does not exist yet raises `TrackingError` instead
    of being created (`require_store`).

    A new SQLite store is created (its folder too) under a file lock, so commands started
    together on a fresh store do not all run MLflow's schema creation at once (which fails with
    "duplicate column name" or "table already exists" in all but one)."""
    if must_exist:
        require_store(uri)
    from mlflow.tracking import MlflowClient

    with _store_lock(uri), quiet_logger(_SCHEMA_LOGGER), warnings.catch_warnings():
        # MLflow's SQLAlchemy store calls configure_mappers() on a relationship that uses the
        # deprecated `noload` loader; the warning is about MLflow's code, not ours or the
        # user's, and appears every time a store opens. Ignore exactly that one, here only.
        warnings.filterwarnings(
            "ignore",
            message=r"The ``noload`` loader strategy is deprecated",
            category=DeprecationWarning,
        )
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # opens (and if needed creates) the store now
    return client


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Hold `.<name>.lock` beside a SQLite store's file (created with its folder when missing)
    while the block runs; nothing for other stores. A folder where no lock file can be written
    (a read-only copy of a store) is opened without the lock: it cannot be created there."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    lock_file = db.parent / f".{db.name}.lock"
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_file, timeout=_LOCK_TIMEOUT_S)
        lock.acquire()
    except Timeout:
        raise TrackingError(
            f"another process has held {lock_file} for {_LOCK_TIMEOUT_S:.0f} s while creating the "
            f"MLflow store {db}; stop it, or delete the lock file if no fin-meta is running"
        ) from None
    except OSError as exc:
        if not db.exists():
            raise TrackingError(f"cannot create the MLflow store {db}: {exc}") from exc
        yield
        return
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Logger `name` at WARNING for the block, then as it was: for MLflow's INFO lines that are
    no news to a fin-meta user ("Creating initial MLflow database tables..."); its warnings and
    errors still show, and no other logger changes."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _artifact_location(uri: str, name: str) -> str | None:
    """For a SQLite store: artifacts in `mlruns/<experiment>` beside the database file, not in
    whatever folder the process happens to run from (MLflow's default). None elsewhere."""
    db = sqlite_path(uri)
    if db is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "experiment"
    return (db.parent.resolve() / "mlruns" / slug).as_uri()


def active_experiments(client: MlflowClient) -> list[Experiment]:
    """The active experiments in the store (all of MLflow's result pages)."""
    from mlflow.entities import ViewType

    experiments: list[Experiment] = []
    token = None
    while True:
        page = client.search_experiments(view_type=ViewType.ACTIVE_ONLY, page_token=token)
        experiments.extend(page)
        token = page.token
        if not token:
            return experiments


def experiment_names(client: MlflowClient) -> list[str]:
    """Names of the active experiments in the store, sorted."""
    return sorted(exp.name for exp in active_experiments(client))


def find_experiment(client: MlflowClient, name: str) -> str:
    """The id of the active experiment `name`; `TrackingError` listing the existing ones if
    there is none."""
    exp = client.get_experiment_by_name(name)
    if exp is None or exp.lifecycle_stage != "active":
        existing = ", ".join(experiment_names(client)) or "none yet"
        raise TrackingError(
            f"unknown MLflow experiment {name!r} in {client.tracking_uri}; existing experiments: "
            f"{existing} (pass one with --experiment NAME)"
        )
    return exp.experiment_id


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created when missing (artifacts beside a SQLite store)."""
    if not isinstance(name, str) or not name.strip():
        raise TrackingError(f"MLflow experiment name must be a non-empty string, got {name!r}")
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(
                name, artifact_location=_artifact_location(client.tracking_uri, name)
            )
        except MlflowException as exc:  # created by another process since the lookup
            exp = client.get_experiment_by_name(name)
            if exc.error_code != "RESOURCE_ALREADY_EXISTS" or exp is None:
                raise
    if exp.lifecycle_stage != "active":
        raise TrackingError(
            f"MLflow experiment {name!r} was deleted; restore it (mlflow experiments restore "
            f"--experiment-id {exp.experiment_id}) or choose another experiment name"
        )
    return exp.experiment_id
