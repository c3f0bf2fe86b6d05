"""The MLflow UI on the store fin-meta logs to (`fin-meta ui`)."""

from __future__ import annotations

import subprocess
import sys

from fin_meta.tracking_store import TrackingError, resolve_tracking_uri, sqlite_path

__all__ = ["ui_command", "launch_ui"]


def ui_command(
    tracking_uri: str | None = None, port: int = 5000, host: str = "127.0.0.1"
) -> list[str]:
    """The argv of `mlflow ui --backend-store-uri URI --port PORT --host HOST`, run with this
    Python (`python -m mlflow`) so it works without the venv on PATH. For a SQLite store, new
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
    ]
    db = sqlite_path(uri)
    if db is not None:
        argv += ["--default-artifact-root", (db.parent.resolve() / "mlruns").as_uri()]
    return argv


def launch_ui(tracking_uri: str | None = None, port: int = 5000, host: str = "127.0.0.1") -> int:
    """Run the MLflow UI (`ui_command`) in the foreground until it exits or Ctrl-C; returns
    its exit status (0 after Ctrl-C)."""
    argv = ui_command(tracking_uri, port=port, host=host)
    process = subprocess.Popen(argv)
    try:
        return process.wait()
    except KeyboardInterrupt:  # Ctrl-C reaches the server too; wait for it to stop cleanly
        process.wait()
        return 0
