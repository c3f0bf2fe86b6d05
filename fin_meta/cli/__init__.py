"""The `fin-meta` command line: data, regimes, strategies, backtest, run, audit, compare, ui.
Typer commands only, one module per group (`data`, `jobs`, `audit`, `runs`; the app and shared
options in `app`): each parses its options and calls the library (the jobs live in `fin_meta.pipeline`).

Errors caused by the user's input (`FinMetaError`) print as one line and exit 2; `--debug`
(anywhere on the command line, or FIN_META_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading
from typing import Any

import click
import typer

from fin_meta.cli import audit, data, jobs, runs, sweep  # noqa: F401  registers the commands on `app`
from fin_meta.cli.app import app
from fin_meta.errors import FinMetaError

__all__ = ["app", "main"]

INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT), as shells report it."""
_USAGE_ERRORS: tuple[type[Any], ...] = (
    click.exceptions.ClickException,
    *(cls for cls in typer.TyperException.__subclasses__() if hasattr(cls, "show")),
)
"""click's usage errors, and typer's own copy of them (typer >= 0.2x vendors click: its
`NoSuchOption` is a `TyperException`, not a `click.ClickException`); each can `show()` itself."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `fin-meta` console script."""
    console = argv is None
    if console:  # at exit, skip the garbage collection of everything the command loaded
        atexit.register(gc.freeze)  # (vectorbt, pandas, MLflow: a second of CPU); the OS frees it
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("FIN_META_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    # MLflow draws a progress bar for every artifact copy; ours already show the long work
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    early = console and _tracked_backtest(args)
    if early:  # its MLflow process starts importing while typer parses
        from fin_meta.tracking import spawn

        spawn.start_child_early()
    try:
        code = _run(args, debug)
    finally:
        if early:
            spawn.drop_early_child()
    if console:
        _exit_now(code)
    sys.exit(code)


def _run(args: list[str], debug: bool) -> int:
    """Run the command; its exit code (errors print as one line unless `debug`)."""
    try:  # not standalone: exit codes and Ctrl-C come back to us (click would print "Aborted!")
        code = app(args=args, prog_name="fin-meta", standalone_mode=False)
    except _USAGE_ERRORS as exc:  # a usage error (an unknown option, a bad value): click's own message
        exc.show()
        return exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
        if debug:
            raise
        typer.echo("interrupted", err=True)
        return INTERRUPTED
    except FinMetaError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        return 2
    except Exception as exc:  # a bug, not bad input: still one line unless --debug
        if debug:
            raise
        typer.echo(
            f"error: internal {type(exc).__name__}: {exc} (run again with --debug for the traceback)",
            err=True,
        )
        return 1
    if code == INTERRUPTED:  # typer turns Ctrl-C into Exit(130) before it reaches us
        typer.echo("interrupted", err=True)
    return code if isinstance(code, int) else 0


def _tracked_backtest(args: list[str]) -> bool:
    """`fin-meta backtest` logging to MLflow: its store opens in a background process."""
    return bool(args) and args[0] == "backtest" and not {"--no-track", "--help"} & set(args)


def _exit_now(code: int) -> None:
    """Exit as Python does, less the teardown of every module (0.1-0.2 s once vectorbt and
    MLflow are loaded): the exit handlers run and the output is flushed first. Only with no
    other thread running (their own shutdown would wait for them); otherwise a plain exit."""
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()  # what the interpreter runs at exit (logging, multiprocessing, temp folders)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe (| head) has nothing left to take
            stream.flush()
    os._exit(code)
