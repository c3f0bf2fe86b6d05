"""Starting the background process of `fin_meta.tracking.background` (`spawn`), and starting it
early: `fin-meta backtest` calls `start_child_early` before it parses its arguments, so that
MLflow's imports begin about 0.3 s sooner; the store the command opens takes the child over
(`take_early_child`), or the command stops it (`drop_early_child`). No pandas, no MLflow here."""

from __future__ import annotations

import subprocess
import sys

from fin_meta.devices import cpu_cores
from fin_meta.tracking.worker import BOOT, ROOT

__all__ = ["background_wanted", "drop_early_child", "spawn", "start_child_early", "take_early_child"]

_early_child: subprocess.Popen[bytes] | None = None
"""The child `start_child_early` started, until a `BackgroundStore` takes it over."""


def spawn() -> subprocess.Popen[bytes]:
    """A new background process (`fin_meta.tracking.worker`); it starts importing MLflow at once.
    In its own session: the terminal's Ctrl-C and hang-up go to this process, which ends the run."""
    return subprocess.Popen([sys.executable, "-c", BOOT, ROOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            start_new_session=True)


def start_child_early() -> None:
    """Start the background process now, for the `BackgroundStore` this command will open
    (module docstring). Nothing where `open_store` would not use a child."""
    global _early_child
    if _early_child is None and background_wanted():
        _early_child = spawn()


def take_early_child() -> subprocess.Popen[bytes] | None:
    """The child `start_child_early` started (None if none): the caller owns it now."""
    global _early_child
    child, _early_child = _early_child, None
    return child


def drop_early_child() -> None:
    """Stop the child `start_child_early` started if no store took it over (the command failed
    before opening its store, or did not need one): it holds no run."""
    child = take_early_child()
    if child is not None:
        child.kill()
        child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


def background_wanted() -> bool:
    """Whether `open_store(background=None)` runs the store in a child: this process has not
    imported MLflow (a fresh command, not a notebook or the tests) and a second core is free."""
    return "mlflow" not in sys.modules and bool(sys.executable) and cpu_cores() > 1  # on one core the two would only take turns
