"""The MLflow UI on the store fin-meta logs to (`fin-meta ui`)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from fin_meta.tracking.store import TrackingError, require_store, resolve_tracking_uri, sqlite_path

__all__ = ["ui_command", "launch_ui", "port_owner"]

_STOP_TIMEOUT_S = 10.0
_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
"""Signals that stop `fin-meta ui` and its server, besides Ctrl-C: `kill`, a closed terminal."""
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


class _Stopped(Exception):
    """Raised in the main thread by a stop signal's handler."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def ui_command(
    tracking_uri: str | None = None, port: int = 5000, host: str = "127.0.0.1", workers: int = 1
) -> list[str]:
    """The argv of `mlflow ui --backend-store-uri URI --port PORT --host HOST --workers N`, run
    with this Python (`python -m mlflow`) so it works without the venv on PATH. One server
    worker (MLflow starts 4) is plenty for one person browsing runs. For a SQLite store, new
    experiments created from the UI keep their artifacts in `mlruns/` beside the database, as
    fin-meta's own runs do. A remote `http(s)://` tracking server already serves its UI:
    `TrackingError` says to open it in a browser."""
    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith(("http://", "https://", "databricks")):
        raise TrackingError(f"{uri} is a tracking server with its own UI: open it in a browser")
    if not 0 < port < 65536:
        raise TrackingError(f"--port must be between 1 and 65535, got {port}")
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--port",
        str(port),
        "--host",
        host,
        "--workers",
        str(workers),
    ]
    db = sqlite_path(uri)
    if db is not None:
        argv += ["--default-artifact-root", (db.parent.resolve() / "mlruns").as_uri()]
    return argv


def launch_ui(
    tracking_uri: str | None = None,
    port: int = 5000,
    host: str = "127.0.0.1",
    echo: Callable[[str], object] | None = None,
) -> int:
    """Run the MLflow UI (`ui_command`) in the foreground until it exits or is stopped; returns
    the server's exit status, 0 after Ctrl-C, 128 + N after signal N (SIGTERM, SIGHUP: `kill`,
    a closed terminal). The server runs in its own process group, which is stopped on any of
    these (SIGTERM, then SIGKILL after `_STOP_TIMEOUT_S` seconds), so no server keeps the port.

    Raises `TrackingError` (nothing started) when a SQLite store does not exist (no empty
    `mlflow.db` is created) or the port is taken, naming the process that holds it. MLflow's
    background job runner (7 extra processes for its GenAI jobs, unused by fin-meta) is switched
    off unless `MLFLOW_SERVER_ENABLE_JOB_EXECUTION` is set in the environment. `echo` gets the
    line that says where the UI is, once these checks have passed."""
    argv = ui_command(tracking_uri, port=port, host=host)
    uri = resolve_tracking_uri(tracking_uri)
    require_store(uri)
    _check_port_free(host, port)
    if echo is not None:
        echo(f"MLflow UI for {uri} on http://{host}:{port} (Ctrl-C to stop)")
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    posix = os.name == "posix"
    process = None
    with _signals_raise_stopped():
        try:
            process = subprocess.Popen(argv, env=env, start_new_session=posix)
            return process.wait()
        except KeyboardInterrupt:
            return 0
        except _Stopped as stop:
            return 128 + stop.signum
        finally:
            if process is not None:
                _stop(process, posix)


@contextlib.contextmanager
def _signals_raise_stopped() -> Iterator[None]:
    """In the main thread, for the block: SIGTERM and SIGHUP raise `_Stopped` (Python's default
    would end the process at once and leave the server running), SIGINT `KeyboardInterrupt`, the
    first of them only, so that a second one cannot cut the server's stop short; then the old
    handlers return."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if not received:
            received.append(signum)
            raise KeyboardInterrupt if signum == signal.SIGINT else _Stopped(signum)

    signals = (signal.SIGINT, *_STOP_SIGNALS)
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)  # None: set outside Python


def _stop(process: subprocess.Popen[bytes], posix: bool) -> None:
    """Terminate the server (its whole process group on POSIX), kill it if it lingers, then
    kill any of its group left behind (a worker whose parent died)."""
    if process.poll() is None:
        if posix:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # uvicorn's clean stop (SIGINT: a traceback)
        else:
            process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if posix:  # the group id stays reserved while any member lives: only stragglers are hit
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def _check_port_free(host: str, port: int) -> None:
    """`TrackingError` naming the owner when `host:port` cannot be bound (as the server binds
    it: with SO_REUSEADDR, so a port in TIME_WAIT counts as free)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise TrackingError(f"cannot serve the MLflow UI on {host}:{port}: {exc.strerror}") from None
            owner = port_owner(port)
            holder = "another process" if owner is None else f"pid {owner[0]} ({owner[1]})"
            raise TrackingError(
                f"port {port} is in use by {holder}: stop it (an old `fin-meta ui`?) or pass --port"
            ) from None


def port_owner(port: int, proc: Path = Path("/proc")) -> tuple[int, str] | None:
    """(pid, command line cut to 80 characters) of a process of this user listening on TCP
    `port`, read from Linux's `/proc/net/tcp{,6}` and `/proc/<pid>/fd`; None when there is none
    or it cannot be seen (another user's process, a system without `/proc`)."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for row in (proc / "net" / table).read_text().splitlines()[1:]:
                fields = row.split()
                if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                command = " ".join(a.decode(errors="replace") for a in argv if a)
                return int(entry.name), command[:77] + "..." if len(command) > 80 else command
    return None
