"""MLflow in a second process, so that opening the store overlaps the computing.

Importing MLflow and opening a SQLite store cost about 3 s of CPU, as much as importing
vectorbt, and a fresh `fin-meta backtest` process needs both. `open_store(...)` starts a child
Python at once (this module and `worker` load no pandas, so a job can start it first;
`fin-meta backtest` starts it before parsing its arguments, `fin_meta.tracking.spawn`); it
imports MLflow, opens the store (only an existing SQLite file, only to read: a new store is
created when the run starts, as `start_run` does) and loads the chart libraries (`preload`)
while this process loads vectorbt and backtests. `prepare_figure` has it draw a chart of
`fin_meta.plots` ahead of its logging (`fin-meta backtest`: while the results table's bootstrap
runs here). `store.start_run(...)` then has the child start the run and yields a
`RemoteTracker` (`fin_meta.tracking.remote`) at once, without waiting for the run's id (read when
first asked for): a `Tracker` whose calls the child carries out, in order, most of them without
this process waiting (tables are written here, into a scratch folder, and copied into the run by
the child; the charts of `fin_meta.plots`, `portable_draw`, are drawn there).

The child is `fin_meta.tracking.worker`. The run ends as `start_run`'s do: FINISHED, or FAILED
with a `fin_meta.error` tag when the body raises. An error in the child is raised here as the
same exception, with the next call that waits or at the end (its traceback attached as a note,
which `--debug` shows), and fails the run; if the child dies, this process marks the run FAILED
itself.
`background=None` (the default) uses the child only where it saves time: in a process that has
not imported MLflow yet (a fresh command; a notebook or the test suite opens runs in-process),
with a second core to run on. The child repeats some imports (pandas, which MLflow needs too):
about 1 s more CPU in all, for about 3 s less wall time when a core is free.
"""

from __future__ import annotations

import contextlib
import functools
import pickle
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fin_meta.tracking.spawn import background_wanted, spawn, take_early_child
from fin_meta.tracking.store import TrackingError, open_client, resolve_tracking_uri
from fin_meta.tracking.worker import named_error, read_frame, write_frame

if TYPE_CHECKING:
    from fin_meta.tracking.remote import RemoteClient, RemoteTracker, call_with_client
    from fin_meta.tracking.run import Tracker

__all__ = ["BackgroundStore", "LocalStore", "RemoteClient", "RemoteTracker", "call_with_client", "open_store",
           "portable_draw"]

_REMOTE = ("RemoteClient", "RemoteTracker", "call_with_client")
"""Defined in `fin_meta.tracking.remote` (they need `Tracker`, which loads pandas): named here too."""


def __getattr__(name: str) -> Any:
    if name in _REMOTE:
        from fin_meta.tracking import remote

        return getattr(remote, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_END_WAIT_S = 60.0
"""Longest wait for the child to exit once its run has ended (seconds)."""
_PIPE_BYTES = 32 * 1024
"""Requests larger than this go through a file (`BackgroundStore._send`)."""
_STARTING = "starting the MLflow run"
"""What the start request is doing: its reply is the run id (`BackgroundStore._collect`)."""
_MAX_PENDING = 100
"""Requests sent without reading their replies before `_send` reads them (about 100 bytes each)."""


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
        from fin_meta.tracking.run import start_run

        return start_run(self.experiment, tracking_uri=self.tracking_uri, enabled=self.enabled, **kwargs)

    def prepare_figure(self, draw: Callable[[Path], Any], artifact_file: str) -> None:
        """Nothing: the run's `log_figure` draws here."""

    def close(self) -> None:
        """Nothing to release."""


class BackgroundStore:
    """A child process that opens the MLflow store at `tracking_uri` now and runs ONE run of
    `experiment` when `start_run` is entered (module docstring). `preload`: modules the child
    imports once the store is open (e.g. matplotlib, for the charts it will draw)."""

    def __init__(self, experiment: str, tracking_uri: str | None = None, *, preload: Sequence[str] = ()) -> None:
        self.experiment = experiment
        self.uri = resolve_tracking_uri(tracking_uri)
        self._proc = take_early_child() or spawn()
        self._pending: list[str] = []  # what each request not yet answered was doing, in order
        self._dead: int | None = None  # the child's exit code once it is known to be gone
        self._out_of_step = False  # a read was interrupted (Ctrl-C): no reply can be matched any more
        self._started = False
        self._run_id: str | None = None  # the child's reply to the start, once read
        self._prepared: dict[str, Callable[[Path], Any]] = {}  # artifact file -> the draw the child drew
        self._scratch: Path | None = None  # the files sent to the child to log (`scratch_file`)
        self._send("open", what="opening the MLflow store", uri=self.uri, argv=list(sys.argv), preload=list(preload))

    @property
    def pid(self) -> int:
        """The process id of the background process."""
        return self._proc.pid

    # requests and replies ------------------------------------------------------------------------
    def _send(self, op: str, *args: Any, what: str, **kwargs: Any) -> None:
        """Queue a request; its reply is read by the next `_collect`. A large one (a chart's data)
        goes through a scratch file: a pipe holds 64 kB, and writing more would wait for the child
        to finish what it is doing (opening the store). Replies are read every `_MAX_PENDING`
        requests, so that neither pipe fills up."""
        if len(self._pending) >= _MAX_PENDING:
            self._collect()
        data = pickle.dumps((op, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)  # fails before writing
        if len(data) > _PIPE_BYTES:
            request = self.scratch_file("request.pickle")
            request.write_bytes(data)
            data = pickle.dumps(("from_file", (str(request),), {}), protocol=pickle.HIGHEST_PROTOCOL)
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
            elif status == "ok" and what == _STARTING:
                self._run_id = value
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

    def scratch_file(self, name: str) -> Path:
        """A new path called `name` in a folder of its own, kept until the store is closed."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="fin-meta-artifacts-"))
        folder = Path(tempfile.mkdtemp(dir=self._scratch))
        return folder / name

    def prepare_figure(self, draw: Callable[[Path], Any], artifact_file: str) -> None:
        """Have the child draw a chart of `fin_meta.plots` (`portable_draw`) now, while this
        process goes on computing: the run's `log_figure` of the same `draw` (same writer, same
        data objects) as `artifact_file` then logs that file instead of drawing it again. Anything
        else: nothing (`log_figure` draws it). Drawing errors come with `log_figure`."""
        if portable_draw(draw) and artifact_file not in self._prepared:
            self._send("prepare", draw, artifact_file, what=f"drawing {artifact_file}")
            self._prepared[artifact_file] = draw

    def prepared(self, draw: Callable[[Path], Any], artifact_file: str) -> bool:
        """True (once) when the child drew `draw` as `artifact_file` ahead (`prepare_figure`)."""
        ahead = self._prepared.get(artifact_file)
        if ahead is None or not _same_draw(ahead, draw):
            return False
        del self._prepared[artifact_file]
        return True

    # the run -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def start_run(self, *, run_name: str | None = None, params: Mapping[str, Any] | Any | None = None,
                  tags: Mapping[str, Any] | None = None, command_line: str | None = None) -> Iterator[RemoteTracker]:
        """Start the run in the child (as `fin_meta.tracking.run.start_run` with these arguments:
        this process's command line is tagged) and yield its `RemoteTracker` at once: the run id
        is read when first asked for (`run_id`), so this process goes on logging while the child
        finishes what it was doing (drawing a chart ahead) and starts the run."""
        if self._started:
            raise RuntimeError("a BackgroundStore runs one run; open another store for the next")
        self._started = True
        from fin_meta.tracking.remote import RemoteTracker

        self._send("start", what=_STARTING, experiment=self.experiment, run_name=run_name, params=params, tags=tags,
                   command_line=command_line)
        try:
            yield RemoteTracker(self)
        except BaseException as exc:
            ok = isinstance(exc, SystemExit) and exc.code in (0, None)
            self._end(None if ok else exc)
            raise
        self._end(None)

    def run_id(self) -> str:
        """The id of the run `start_run` started (waits for the child's reply if not read yet)."""
        if self._run_id is None:
            self._collect()
        if self._run_id is None:
            raise TrackingError("the MLflow run has not been started in the background process")
        return self._run_id

    def _end(self, error: BaseException | None) -> None:
        """End the run: FINISHED, or FAILED with `error` (or with an error of the child, raised
        here). A child that died leaves the run to this process to mark FAILED."""
        try:
            failure = None if error is None else (type(error).__name__, str(error))
            self._call("end", failure, what="ending the MLflow run")
            if self._out_of_step and self._wait(_END_WAIT_S) != 0:  # no reply to read: its exit says
                raise self._gone("ending the MLflow run")
        except BaseException as problem:
            if self._dead is not None and self._run_id is not None:
                _fail_here(self.uri, self._run_id, error or problem)
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
        if self._started:
            self._wait(_END_WAIT_S)
            proc.stdout.close()
        if self._scratch is not None:  # the child has read its files (or its run never started)
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _wait(self, timeout: float) -> int:
        """The child's exit code, once it has exited (killed after `timeout` seconds)."""
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.wait()


def _same_draw(a: Callable[[Path], Any], b: Callable[[Path], Any]) -> bool:
    """Both `functools.partial`s of the same writer with the very same bound objects."""
    if not (isinstance(a, functools.partial) and isinstance(b, functools.partial)) or a.func is not b.func:
        return False
    same_args = len(a.args) == len(b.args) and all(x is y for x, y in zip(a.args, b.args, strict=True))
    return same_args and a.keywords.keys() == b.keywords.keys() and \
        all(a.keywords[k] is b.keywords[k] or a.keywords[k] == b.keywords[k] for k in a.keywords)


def _fail_here(uri: str, run_id: str, error: BaseException) -> None:
    """Mark `run_id` FAILED from this process (its background process died)."""
    from fin_meta.tracking.run import Tracker

    try:
        Tracker(open_client(uri), run_id, uri)._end("FAILED", error)
    except Exception as exc:
        error.add_note(f"(fin-meta could not mark MLflow run {run_id} as FAILED: {exc!r})")


@contextlib.contextmanager
def open_store(experiment: str, *, tracking_uri: str | None = None, enabled: bool = True,
               background: bool | None = None, preload: Sequence[str] = ()) -> Iterator[BackgroundStore | LocalStore]:
    """Where the job's run will be started (`store.start_run(...)`): a `BackgroundStore` whose
    child opens the store now, or a `LocalStore`; `background=None` picks the child when tracking
    is on and this process has not imported MLflow (module docstring). The child is let go on exit."""
    if background is None:
        background = background_wanted()
    store = BackgroundStore(experiment, tracking_uri, preload=preload) if enabled and background else \
        LocalStore(experiment, tracking_uri, enabled)
    try:
        yield store
    finally:
        store.close()


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
