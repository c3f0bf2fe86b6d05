"""The MLflow UI on the store fin-meta logs to (`fin-meta ui`)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

from fin_meta.tracking.store import TrackingError, resolve_tracking_uri, sqlite_path

__all__ = ["ui_command", "launch_ui"]

_STOP_TIMEOUT_S = 10.0


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


def launch_ui(tracking_uri: str | None = None, port: int = 5000, host: str = "127.0.0.1") -> int:
    """Run the MLflow UI (`ui_command`) in the foreground until it exits or Ctrl-C; returns
    its exit status (0 after Ctrl-C). The server runs in its own process group, so Ctrl-C
    (or a SIGINT sent to this process alone) stops the server and its workers together,
    with a forced kill if they have not stopped after `_STOP_TIMEOUT_S` seconds.

    MLflow's background job runner (7 extra processes for its GenAI jobs, unused by fin-meta)
    is switched off unless `MLFLOW_SERVER_ENABLE_JOB_EXECUTION` is set in the environment."""
    argv = ui_command(tracking_uri, port=port, host=host)
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    posix = os.name == "posix"
    process = subprocess.Popen(argv, env=env, start_new_session=posix)
    try:
        return process.wait()
    except KeyboardInterrupt:
        _stop(process, posix)
        return 0


def _stop(process: subprocess.Popen[bytes], posix: bool) -> None:
    """Interrupt the server (its whole process group on POSIX), then kill it if it lingers."""
    if posix:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
    else:
        process.terminate()
    try:
        process.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        if posix:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait()
