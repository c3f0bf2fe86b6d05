"""The parent's side of a run held by the MLflow background process (`fin_meta.tracking.background`):
`RemoteTracker` (a `Tracker` whose calls the child carries out), `RemoteClient` (its MlflowClient)
and `call_with_client`. Apart from `background` because `Tracker` loads pandas: the child is started
before that."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from fin_meta.tracking.background import BackgroundStore, portable_draw
from fin_meta.tracking.run import Tracker, _check_figure

__all__ = ["RemoteClient", "RemoteTracker", "call_with_client"]


class RemoteTracker(Tracker):
    """The `Tracker` of a run that a `BackgroundStore`'s child holds. Params, tags, metrics, the
    files the tracker writes itself (tables, texts, charts: kept in the store's scratch folder
    until the run ends) and the charts of `fin_meta.plots` (drawn there) go to the child without
    waiting, so this process goes on while the child logs them; an error among them comes back
    with the next call that waits (`log_artifact` of a file of yours: read there before it
    returns; downloads, `client`, `call_with_client`) or at the end, and fails the run either way.
    `client` is a `RemoteClient`. It is enabled from the start; its `run_id` is the child's
    reply to the start of the run, read when first asked for."""

    def __init__(self, store: BackgroundStore) -> None:
        self._store = store
        super().__init__(None, None, store.uri)
        self.client = RemoteClient(store)

    @property
    def run_id(self) -> str:  # type: ignore[override]
        return self._store.run_id()

    @run_id.setter
    def run_id(self, value: str | None) -> None:
        """`Tracker.__init__` sets it: the store's reply gives it here."""

    @property
    def enabled(self) -> bool:
        return True

    def _remote(self, method: str, *args: Any, what: str, wait: bool = True, **kwargs: Any) -> Any:
        if wait:
            return self._store._call("tracker", method, args, kwargs, True, what=what)
        self._store._send("tracker", method, args, kwargs, False, what=what)
        return None

    def log_params(self, params: Mapping[str, Any] | Any) -> None:
        self._remote("log_params", params, what="logging params", wait=False)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._remote("set_tags", dict(tags), what="setting tags", wait=False)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._remote("log_metrics", dict(metrics), step, what="logging metrics", wait=False)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path).resolve()
        if not path.exists():
            raise FileNotFoundError(f"cannot log artifact {path}: no such file or folder")
        self._remote("log_artifact", path, artifact_path, what=f"logging {path.name}")

    def _log_written(self, artifact_file: str, write: Callable[[Path], None]) -> None:
        """Write `artifact_file` with `write` into a folder of the store's scratch space (removed
        when the run has ended) and have the child log it without waiting."""
        rel = PurePosixPath(artifact_file)
        if rel.is_absolute() or ".." in rel.parts or not rel.name:
            raise ValueError(f"artifact_file must be a relative path inside the run, got {artifact_file!r}")
        target = self._store.scratch_file(rel.name)
        write(target)
        folder = str(rel.parent)
        self._remote("log_artifact", target, None if folder == "." else folder, what=f"logging {rel.name}", wait=False)

    def download_artifact(self, artifact_path: str, dst_dir: str | Path | None = None) -> Path | None:
        return self._remote("download_artifact", artifact_path, dst_dir, what=f"downloading {artifact_path}")

    def log_figure(self, draw: Callable[[Path], Any], artifact_file: str) -> None:
        if not portable_draw(draw):
            super().log_figure(draw, artifact_file)
            return
        _check_figure("log_figure", artifact_file)
        method = "log_prepared_figure" if self._store.prepared(draw, artifact_file) else "log_figure"
        self._remote(method, draw, artifact_file, what=f"drawing {artifact_file}", wait=False)


class RemoteClient:
    """The `MlflowClient` of a `RemoteTracker`: each method runs in the background process and
    returns its result (MLflow's entities: reading them back imports MLflow here, so prefer
    `call_with_client` with a function that returns plain data)."""

    def __init__(self, store: BackgroundStore) -> None:
        self._store = store
        self.tracking_uri = store.uri

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._store._call("client", name, args, kwargs, what=f"calling MlflowClient.{name}")

        return method


def call_with_client(tracker: Tracker, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(tracker.client, *args, **kwargs)` where the tracker's client lives: in the background
    process for a `RemoteTracker` (`fn`, a module-level function, its arguments and its result are
    pickled), here otherwise. For reads of MLflow that return plain data (e.g. `count_trials`)."""
    if isinstance(tracker, RemoteTracker):
        return tracker._store._call("apply", fn, args, kwargs, what=f"running {getattr(fn, '__name__', fn)}")
    return fn(tracker.client, *args, **kwargs)
