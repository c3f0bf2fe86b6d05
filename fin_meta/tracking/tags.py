"""Tags that identify a run: fin-meta version, command line, git commit, user; and the
heartbeat that tells a live run from one whose process died (`kill -9`, a power cut)."""

from __future__ import annotations

import contextlib
import getpass
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fin_meta.constants import __version__
from fin_meta.tracking.params import clean_key

__all__ = [
    "HEARTBEAT_INTERVAL_S",
    "HEARTBEAT_TAG",
    "Heartbeat",
    "heartbeat_tags",
    "last_heartbeat",
    "tag_items",
    "git_info",
    "run_tags",
]

_MAX_TAG_LENGTH = 5000  # MLflow 3 allows 8,000; older servers 5,000

HEARTBEAT_TAG = "fin_meta.heartbeat"
"""Tag holding when a RUNNING run last showed life (Unix epoch seconds): set when the run
starts or resumes, refreshed as it logs metrics (`Tracker.log_metrics`)."""


HEARTBEAT_INTERVAL_S = 30.0
"""Least time between two renewals of a run's heartbeat tag (seconds)."""


class Heartbeat:
    """When a run's heartbeat tag is due again. `Tracker.log_metrics` asks after each write
    (no thread: a beat then means the run is making progress, a hung process stops beating
    where a background thread would hide it, and no second writer contends for SQLite); at
    most one tag write per `HEARTBEAT_INTERVAL_S`."""

    def __init__(self) -> None:
        self.at = time.time()

    def due(self) -> dict[str, str]:
        """`heartbeat_tags()` when the interval has passed since the last beat, else `{}`."""
        now = time.time()
        if now - self.at < HEARTBEAT_INTERVAL_S:
            return {}
        self.at = now
        return heartbeat_tags(now)


def heartbeat_tags(now: float | None = None) -> dict[str, str]:
    """`{HEARTBEAT_TAG: <epoch seconds>}` for `now` (default: the current time)."""
    return {HEARTBEAT_TAG: str(int(time.time() if now is None else now))}


def last_heartbeat(tags: Mapping[str, str], start_time_ms: int | None) -> float | None:
    """When a run last showed life (epoch seconds): its heartbeat tag, else (a run logged
    before heartbeats, or a malformed tag) its start time; None when neither is known."""
    try:
        return float(tags[HEARTBEAT_TAG])
    except (KeyError, ValueError):
        return None if start_time_ms is None else start_time_ms / 1000.0


def tag_items(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tags as MLflow accepts them: clean names, string values cut to 5,000 characters, None
    values dropped."""
    return {clean_key(k): str(v)[:_MAX_TAG_LENGTH] for k, v in tags.items() if v is not None}


def git_info(cwd: str | Path | None = None) -> dict[str, str]:
    """`{"git.commit": sha, "git.dirty": "true"/"false"}` when `cwd` is inside a git work tree;
    `{}` when it is not, or git is missing, slow or failing (never raises)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git.commit": commit, "git.dirty": str(dirty).lower()} if commit else {}


def run_tags(
    command_line: str | None = None, extra: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Tags for a new run: `fin_meta.version`, `command` (given, or `sys.argv`), the git commit
    when available (also as MLflow's own `mlflow.source.*` tags, so the UI shows them), the
    user, the heartbeat (now), then `extra` (e.g. `data.source`, `data.hash`), which wins over
    the defaults."""
    argv = [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else ["python"]
    command = command_line if command_line is not None else shlex.join(argv)
    tags: dict[str, Any] = {
        "fin_meta.version": __version__,
        "command": command,
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": command.split(" ", 1)[0] if command else "python",
    }
    git = git_info()
    tags.update(git)
    if "git.commit" in git:
        tags["mlflow.source.git.commit"] = git["git.commit"]
    with contextlib.suppress(Exception):  # no user name in some containers: simply no tag
        tags["mlflow.user"] = getpass.getuser()
    tags.update(heartbeat_tags())
    tags.update(extra or {})
    return tag_items(tags)
