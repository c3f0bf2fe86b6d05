"""`fin-meta ui`: the MLflow server's argv, a missing store, a port already taken, and a real
server on a free loopback port that stops with `fin-meta ui` when it is terminated."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fin_meta.tracking import TrackingError, open_client, ui_command
from fin_meta.tracking.ui import port_owner
from tests.test_cli import cli, one_line_error
from tests.test_tracking_store import fin_meta_command

START_TIMEOUT_S = 180.0
"""Longest wait for the MLflow server to listen (seconds; its start takes a few on 2 cores)."""
STOP_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """An existing SQLite store (with MLflow's tables) for the UI to serve."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    open_client(uri)
    return uri


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ui_command_targets_the_same_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    argv = ui_command(uri, port=5123)
    assert argv[:4] == [sys.executable, "-m", "mlflow", "ui"]
    assert argv[argv.index("--backend-store-uri") + 1] == uri
    assert argv[argv.index("--port") + 1] == "5123"
    assert argv[argv.index("--default-artifact-root") + 1] == (tmp_path / "mlruns").as_uri()
    with pytest.raises(TrackingError, match="browser"):
        ui_command("http://server:5000")
    with pytest.raises(TrackingError, match="--port"):
        ui_command(uri, port=0)
    # the installed MLflow knows every option we pass
    help_text = subprocess.run(
        [*argv[:4], "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in (a for a in argv[4:] if a.startswith("--")):
        assert option in help_text


def test_ui_without_a_store_says_so_and_creates_none(capsys, tmp_path):
    missing = tmp_path / "mlflow.db"
    code, _, err = cli(capsys, "ui", "--port", str(free_port()), "--tracking-uri", f"sqlite:///{missing}")
    assert code == 2 and "no MLflow store" in one_line_error(err)
    assert not missing.exists()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="finds the port's owner in Linux's /proc")
def test_ui_on_a_taken_port_names_its_owner(capsys, store):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert port_owner(port)[0] == os.getpid()
        code, _, err = cli(capsys, "ui", "--port", str(port), "--tracking-uri", store)
    assert code == 2
    assert f"port {port} is in use by pid {os.getpid()} (" in one_line_error(err)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="finds the server in Linux's /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_terminated_ui_stops_its_server(store, sig):
    port = free_port()
    ui = subprocess.Popen([*fin_meta_command(), "ui", "--port", str(port), "--tracking-uri", store],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    server_group = None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while (owner := port_owner(port)) is None and ui.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert owner is not None, f"no server on port {port}: {ui.poll()=}"
        server_group = os.getpgid(owner[0])
        assert server_group not in (ui.pid, os.getpgid(0))  # its own process group
        ui.send_signal(sig)
        assert ui.wait(timeout=STOP_TIMEOUT_S) == 128 + sig
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while (alive(owner[0]) or not bindable(port)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(owner[0]) and bindable(port)
    finally:
        for group in (ui.pid, server_group):
            if group is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(group, signal.SIGKILL)
        ui.wait()
        ui.stderr.close()
