"""MLflow in a second process, so that opening the store overlaps the computing.

Importing MLflow and opening a SQLite store cost about 3 s of CPU, as much as importing
vectorbt, and a fresh `fin-meta backtest` process needs both. `open_store(...)` starts a child
Python at once; it imports MLflow, opens the store (only an existing SQLite file, only to read:
a new store is created when the run starts, as `start_run` does) and loads the chart libraries
(`preload`) while this process loads vectorbt and backtests. `store.start_run(...)` then starts
the run there and yields a `RemoteTracker`: a `Tracker` whose calls the child carries out, in
order. Tables and charts are still written here and copied into the run by the child, except
the charts of `fin_meta.plots` (`portable_draw`), which the child draws itself while this
process goes on.

The child is `fin_meta.tracking.worker`. The run ends as `start_run`'s do: FINISHED, or FAILED
with a `fin_meta.error` tag when the body raises. An error in the child is raised here as the
same exception (its traceback attached as a note, which `--debug` shows); if the child dies,
this process marks the run FAILED itself.
`background=None` (the default) uses the child only where it saves time: in a process that has
not imported MLflow yet (a fresh command; a notebook or the test suite opens runs in-process),
with a second core to run on. The child repeats some imports (pandas, which MLflow needs too):
about 1 s more CPU in all, for about 3 s less wall time when a core is free.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fin_meta.tracking.run import Tracker, _check_figure, start_run
from fin_meta.tracking.store import TrackingError, open_client, resolve_tracking_uri
from fin_meta.tracking.worker import BOOT, ROOT, named_error, read_frame, write_frame

__all__ = ["BackgroundStore", "LocalStore", "RemoteClient", "RemoteTracker", "call_with_client", "open_store",
           "portable_draw"]

_END_WAIT_S = 60.0
"""Longest wait for the child to exit once its run has ended (seconds)."""


def portable_draw(draw: Callable[[Path], Any]) -> bool:
    """True for a chart writer of `fin_meta.plots` with its data bound (`functools.partial`):
    such writers take plain pandas/numpy data and a path, so one can be drawn in another process."""
    func = draw.func if isinstance(draw, functools.partial) else None
    return func is not None and str(getattr(func, "__module__", "")).startswith("fin_meta.plots.")


class LocalStore:
    """Runs started in this process: `start_run` is `fin_meta.tracking.run.start_run`."""

    def __init__(self, experiment: str, tracking_uri: str | None = None, enabled: bool = True) -> None:
        self.experiment, self.tracking_uri, self.enabled = experiment, tracking_uri, enabled

    def start_run(self, **kwargs: Any) -> contextlib.AbstractContextManager[Tracker]:
        """`start_run(experiment, **kwargs)` on this store (`enabled=False`: a tracker that does nothing)."""
        return start_run(self.experiment, tracking_uri=self.tracking_uri, enabled=self.enabled, **kwargs)

    def close(self) -> None:
        """Nothing to release."""


class BackgroundStore:
    """A child process that opens the MLflow store at `tracking_uri` now and runs ONE run of
    `experiment` when `start_run` is entered (module docstring). `preload`: modules the child
    imports once the store is open (e.g. matplotlib, for the charts it will draw)."""

    def __init__(self, experiment: str, tracking_uri: str | None = None, *, preload: Sequence[str] = ()) -> None:
        self.experiment = experiment
        self.uri = resolve_tracking_uri(tracking_uri)
        # its own session: the terminal's Ctrl-C and hang-up go to this process, which ends the run
        self._proc = subprocess.Popen([sys.executable, "-c", BOOT, ROOT], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, start_new_session=True)
        self._pending: list[str] = []  # what each request not yet answered was doing, in order
        self._dead: int | None = None  # the child's exit code once it is known to be gone
        self._out_of_step = False  # a read was interrupted (Ctrl-C): no reply can be matched any more
        self._started = False
        self._send("open", what="opening the MLflow store", uri=self.uri, argv=list(sys.argv), preload=list(preload))

    @property
    def pid(self) -> int:
        """The process id of the background process."""
        return self._proc.pid

    # requests and replies ------------------------------------------------------------------------
    def _send(self, op: str, *args: Any, what: str, **kwargs: Any) -> None:
        """Queue a request; its reply is read by the next `_collect`."""
        data = pickle.dumps((op, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)  # fails before writing
        self._pending.append(what)
        if self._dead is None:
            with contextlib.suppress(OSError):  # a dead child: `_collect` says so
                write_frame(self._proc.stdin, data)

    def _collect(self) -> Any:
        """Read the replies of every request sent; return the last one's value, or raise the
        first error among them (an error of a request that did not wait surfaces here)."""
        value, error = None, None
        while self._pending and not self._out_of_step:
            what = self._pending.pop(0)
            try:
                frame = read_frame(self._proc.stdout)
            except (EOFError, OSError):  # the child is gone
                self._pending.clear()
                raise error or self._gone(what) from None
            except BaseException:  # Ctrl-C in the middle of a reply
                self._out_of_step = True
                raise
            try:
                status, value, name, message, trace = pickle.loads(frame)
            except Exception as exc:  # a result that cannot be read here
                status, value, name, message, trace = "error", None, type(exc).__name__, str(exc), None
            if status == "error" and error is None:
                error = _revive(value, name, message, f"while {what}", trace)
        self._pending.clear()
        if error is not None:
            raise error
        return value

    def _call(self, op: str, *args: Any, what: str, **kwargs: Any) -> Any:
        self._send(op, *args, what=what, **kwargs)
        return self._collect()

    def _gone(self, what: str) -> TrackingError:
        self._dead = self._wait(5.0)
        return TrackingError(f"the MLflow background process stopped (exit code {self._dead}) while {what}; "
                             "see its messages above")

    # the run -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def start_run(self, *, run_name: str | None = None, params: Mapping[str, Any] | Any | None = None,
                  tags: Mapping[str, Any] | None = None, command_line: str | None = None) -> Iterator[RemoteTracker]:
        """Start the run in the child (as `fin_meta.tracking.run.start_run` with these arguments:
        this process's command line is tagged) and yield its `RemoteTracker`."""
        if self._started:
            raise RuntimeError("a BackgroundStore runs one run; open another store for the next")
        self._started = True
        run_id = self._call("start", what="starting the MLflow run", experiment=self.experiment, run_name=run_name,
                            params=params, tags=tags, command_line=command_line)
        try:
            yield RemoteTracker(self, run_id)
        except BaseException as exc:
            ok = isinstance(exc, SystemExit) and exc.code in (0, None)
            self._end(run_id, None if ok else exc)
            raise
        self._end(run_id, None)

    def _end(self, run_id: str, error: BaseException | None) -> None:
        """End the run: FINISHED, or FAILED with `error` (or with an error of the child, raised
        here). A child that died leaves the run to this process to mark FAILED."""
        try:
            failure = None if error is None else (type(error).__name__, str(error))
            self._call("end", failure, what="ending the MLflow run")
            if self._out_of_step and self._wait(_END_WAIT_S) != 0:  # no reply to read: its exit says
                raise self._gone("ending the MLflow run")
        except BaseException as problem:
            if self._dead is not None:
                _fail_here(self.uri, run_id, error or problem)
            if error is None:
                raise
            error.add_note(f"(and in the MLflow background process: {problem})")
        finally:
            self.close()

    def close(self) -> None:
        """Let the child go: it exits after its current request. One that never started a run has
        only read the store and is not waited for (a command that fails early exits at once)."""
        proc = self._proc
        with contextlib.suppress(OSError):
            proc.stdin.close()
        if not self._started:
            return
        self._wait(_END_WAIT_S)
        proc.stdout.close()

    def _wait(self, timeout: float) -> int:
        """The child's exit code, once it has exited (killed after `timeout` seconds)."""
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait()


def _fail_here(uri: str, run_id: str, error: BaseException) -> None:
    """Mark `run_id` FAILED from this process (its background process died)."""
    try:
        Tracker(open_client(uri), run_id, uri)._end("FAILED", error)
    except Exception as exc:
        error.add_note(f"(fin-meta could not mark MLflow run {run_id} as FAILED: {exc!r})")


class RemoteTracker(Tracker):
    """The `Tracker` of a run that a `BackgroundStore`'s child holds: params, tags, metrics and
    artifacts go to the child (a file is read there before the call returns); `log_figure`
    sends the charts of `fin_meta.plots` to be drawn there and goes on at once (an error comes
    back with the next call or at the end). `client` is a `RemoteClient`."""

    def __init__(self, store: BackgroundStore, run_id: str) -> None:
        super().__init__(None, run_id, store.uri)
        self._store = store
        self.client = RemoteClient(store)

    def _remote(self, method: str, *args: Any, what: str, wait: bool = True, **kwargs: Any) -> Any:
        if wait:
            return self._store._call("tracker", method, args, kwargs, True, what=what)
        self._store._send("tracker", method, args, kwargs, False, what=what)
        return None

    def log_params(self, params: Mapping[str, Any] | Any) -> None:
        self._remote("log_params", params, what="logging params")

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._remote("set_tags", dict(tags), what="setting tags")

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._remote("log_metrics", dict(metrics), step, what="logging metrics")

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path).resolve()
        if not path.exists():
            raise FileNotFoundError(f"cannot log artifact {path}: no such file or folder")
        self._remote("log_artifact", path, artifact_path, what=f"logging {path.name}")

    def download_artifact(self, artifact_path: str, dst_dir: str | Path | None = None) -> Path | None:
        return self._remote("download_artifact", artifact_path, dst_dir, what=f"downloading {artifact_path}")

    def log_figure(self, draw: Callable[[Path], Any], artifact_file: str) -> None:
        if not portable_draw(draw):
            super().log_figure(draw, artifact_file)
            return
        _check_figure("log_figure", artifact_file)
        self._remote("log_figure", draw, artifact_file, what=f"drawing {artifact_file}", wait=False)


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


@contextlib.contextmanager
def open_store(experiment: str, *, tracking_uri: str | None = None, enabled: bool = True,
               background: bool | None = None, preload: Sequence[str] = ()) -> Iterator[BackgroundStore | LocalStore]:
    """Where the job's run will be started (`store.start_run(...)`): a `BackgroundStore` whose
    child opens the store now, or a `LocalStore`; `background=None` picks the child when tracking
    is on and this process has not imported MLflow (module docstring). The child is let go on exit."""
    if background is None:
        background = "mlflow" not in sys.modules and bool(sys.executable) and _cores() > 1
    store = BackgroundStore(experiment, tracking_uri, preload=preload) if enabled and background else \
        LocalStore(experiment, tracking_uri, enabled)
    try:
        yield store
    finally:
        store.close()


def _cores() -> int:
    """CPU cores this process may use (on one, the two processes would only take turns)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def _revive(blob: bytes | None, name: str, message: str, where: str, trace: str | None) -> BaseException:
    """The child's exception: unpickled, or (when that fails) an exception of the same name and
    message; its traceback in the child is attached as a note."""
    exc: BaseException | None = None
    if blob is not None:
        with contextlib.suppress(Exception):
            exc = pickle.loads(blob)
    if not isinstance(exc, BaseException):
        exc = named_error(name, message)
    if trace:
        exc.add_note(f"(raised in the MLflow background process {where})\n{trace.rstrip()}")
    return exc
