"""The background process of `fin_meta.tracking.background`: a child Python started with
`BOOT` that answers its parent's requests (pickled on its stdin, replies on its stdout) with a
real MLflow client (messages framed by `write_frame`): open the store, start ONE run (`fin_meta.tracking.run.start_run`), carry out
`Tracker` and `MlflowClient` calls, end the run. If the parent goes away before the end, the run
ends FAILED."""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import pickle
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from fin_meta.tracking.store import TrackingError, open_client, sqlite_path

if TYPE_CHECKING:  # the parent imports this module for its framing only: it loads `run` (pandas) when needed
    from fin_meta.tracking.run import Tracker

__all__ = ["BOOT", "ROOT", "named_error", "read_frame", "serve", "write_frame"]

ROOT = str(Path(__file__).resolve().parents[2])
"""The folder that holds the `fin_meta` package: the child imports this very copy of it."""
BOOT = ("import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); sys.path.insert(0, sys.argv[1]); "
        "from fin_meta.tracking.worker import serve; serve()")
"""The child's program (`python -c BOOT ROOT`). Ctrl-C reaches every process of the terminal's
group: the child ignores it from its first line, and its parent decides how the run ends."""
_TRACKER_METHODS = frozenset({"log_params", "set_tags", "log_metrics", "log_artifact", "download_artifact",
                              "log_figure", "log_prepared_figure"})
"""The `Tracker` methods a `RemoteTracker` sends (the others build on them in the parent), and
`log_prepared_figure`: log the chart drawn ahead (`_op_prepare`), or draw it now."""


def write_frame(stream: IO[bytes], data: bytes) -> None:
    """Write one message: its length (8 bytes) then its pickled bytes."""
    stream.write(len(data).to_bytes(8, "little") + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> bytes:
    """Read one message written by `write_frame` (EOFError when the other side has gone). A
    message that cannot be unpickled leaves the next one readable."""
    head = stream.read(8)
    size = int.from_bytes(head, "little") if len(head) == 8 else -1
    data = stream.read(size) if size >= 0 else b""
    if size < 0 or len(data) != size:
        raise EOFError("the other process closed the pipe")
    return data


def named_error(name: str, message: str) -> Exception:
    """An exception whose type is called `name` (what the `fin_meta.error` tag and the CLI show)."""
    return type(name, (Exception,), {"__module__": __name__})(message)


def serve() -> None:
    """The background process: import MLflow, then answer the requests of its parent on stdin
    until the run ends or the parent goes away (then the run ends FAILED). Without the cyclic
    garbage collector: it would walk MLflow's half a million objects again and again while they
    are imported (a quarter of the imports' second or more of CPU), and one run leaves little
    garbage."""
    gc.disable()
    inbox, outbox = os.fdopen(os.dup(0), "rb"), os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the replies
    with contextlib.suppress(Exception):  # MLflow's imports, the bulk of opening any store, before the first
        importlib.import_module("mlflow.tracking")  # request comes (an import that fails fails again in `open`)
    server = _Server(inbox, outbox)
    try:
        server.serve()
    finally:
        shutil.rmtree(server.scratch, ignore_errors=True)
    # the run is ended and every write committed: exit without tearing MLflow, SQLAlchemy and
    # matplotlib down module by module (a second or more), as multiprocessing's workers do
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


class _Server:
    """The child's state: the store's URI, the run (a `start_run` context) and its tracker."""

    def __init__(self, inbox: IO[bytes], outbox: IO[bytes]) -> None:
        self.inbox, self.outbox = inbox, outbox
        self.uri: str | None = None
        self.run: contextlib.AbstractContextManager[Tracker] | None = None
        self.tracker: Tracker | None = None
        self.open_error: BaseException | None = None
        self.unseen_error: BaseException | None = None  # of a request the parent did not wait for
        self.scratch = tempfile.mkdtemp(prefix="fin-meta-charts-")  # the charts drawn ahead (`_op_prepare`)
        self.prepared: dict[str, Path] = {}

    def serve(self) -> None:
        while True:
            try:
                message = read_frame(self.inbox)
            except (EOFError, OSError):  # the parent closed the pipe or died: end the run FAILED
                self._op_end(("ParentExited", "the fin-meta process ended before its MLflow run did"))
                return
            op = None
            try:
                op, args, kwargs = pickle.loads(message)
                reply = ("ok", getattr(self, f"_op_{op}")(*args, **kwargs), None, None, None)
                data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as exc:  # noqa: BLE001 - every error goes back to the parent
                if op == "open":
                    self.open_error = exc
                data = _error_reply(exc)
            try:
                write_frame(self.outbox, data)
            except OSError:
                self._op_end(("ParentExited", "the fin-meta process ended before its MLflow run did"))
                return
            if op == "end":
                return

    def _op_open(self, uri: str, argv: list[str], preload: list[str]) -> None:
        self.uri = uri
        sys.argv = argv  # `run_tags` tags the command line from sys.argv: the parent's
        db = sqlite_path(uri)
        if db is not None and db.exists():
            open_client(uri)  # imports MLflow, opens the store and warms its caches
        else:  # a new store is created by the run's start; until then, only the imports
            importlib.import_module("mlflow.tracking")
            if db is not None:
                importlib.import_module("mlflow.store.tracking.sqlalchemy_store")
        for name in ("fin_meta.tracking.run", *preload):  # only to have them loaded: a module that fails
            with contextlib.suppress(ImportError):  # fails again where it is used
                importlib.import_module(name)

    def _op_prepare(self, draw: Callable[[Path], Any], artifact_file: str) -> None:
        """Draw a chart before the run starts; one that fails is drawn again (and fails, with
        its error reported) when the run logs it."""
        path = Path(self.scratch) / str(len(self.prepared)) / Path(artifact_file).name
        path.parent.mkdir()
        with contextlib.suppress(Exception):
            draw(path)
            self.prepared[artifact_file] = path

    def _log_prepared_figure(self, draw: Callable[[Path], Any], artifact_file: str) -> None:
        path = self.prepared.pop(artifact_file, None)
        if path is None or not path.exists():
            self._live().log_figure(draw, artifact_file)
            return
        folder = str(Path(artifact_file).parent)
        self._live().log_artifact(path, None if folder == "." else folder)

    def _op_from_file(self, request: str) -> Any:
        """A request too large for the pipe, read from the file its parent wrote."""
        op, args, kwargs = pickle.loads(Path(request).read_bytes())
        return getattr(self, f"_op_{op}")(*args, **kwargs)

    def _op_start(self, experiment: str, **kwargs: Any) -> str:
        if self.uri is None or self.open_error is not None:
            raise TrackingError("the MLflow store could not be opened (see the error above)")
        from fin_meta.tracking.run import start_run

        run = start_run(experiment, tracking_uri=self.uri, **kwargs)
        self.tracker = run.__enter__()
        self.run = run
        return self.tracker.run_id

    def _op_tracker(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], waited: bool) -> Any:
        if method not in _TRACKER_METHODS:
            raise AttributeError(f"RemoteTracker does not send {method!r}")
        try:
            if method == "log_prepared_figure":
                return self._log_prepared_figure(*args, **kwargs)
            return getattr(self._live(), method)(*args, **kwargs)
        except BaseException as exc:
            if not waited:  # the parent learns of it later: the run must fail even if it ends first
                self.unseen_error = self.unseen_error or exc
            raise

    def _op_client(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return getattr(self._live().client, method)(*args, **kwargs)

    def _op_apply(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return fn(self._live().client, *args, **kwargs)

    def _op_end(self, failure: tuple[str, str] | None = None) -> None:
        """End the run: FAILED with the parent's error (its type name and message) or with an
        error of a request the parent did not wait for, else FINISHED."""
        run, self.run = self.run, None
        if run is None:
            return
        error = named_error(*failure) if failure is not None else self.unseen_error
        if error is None:
            run.__exit__(None, None, None)
        else:
            run.__exit__(type(error), error, error.__traceback__)

    def _live(self) -> Tracker:
        if self.tracker is None or self.run is None:
            raise TrackingError("no MLflow run is open in the background process")
        return self.tracker


def _error_reply(exc: BaseException) -> bytes:
    trace = "".join(traceback.format_exception(exc))
    try:
        blob: bytes | None = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(blob)
    except Exception:
        blob = None
    reply = ("error", blob, type(exc).__name__, str(exc), trace)
    return pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
