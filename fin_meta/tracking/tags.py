"""Tags that identify a run: fin-meta version, command line, git commit, user."""

from __future__ import annotations

import contextlib
import getpass
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fin_meta.constants import __version__
from fin_meta.tracking.params import clean_key

__all__ = ["tag_items", "git_info", "run_tags"]

_MAX_TAG_LENGTH = 5000  # MLflow 3 allows 8,000; older servers 5,000


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
    user, then `extra` (e.g. `data.source`, `data.hash`), which wins over the defaults."""
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
    tags.update(extra or {})
    return tag_items(tags)
