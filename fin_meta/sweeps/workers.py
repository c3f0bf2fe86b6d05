"""Worker processes for `--jobs J`: J processes, each running its share of the trials, that
report every finished trial to the parent through a queue.

They are forked from a fork server (`multiprocessing`'s "forkserver" start method; "spawn"
where there is none) that imports torch, vectorbt, MLflow and the pipeline once, as soon as a
sweep starts (`prestart`), while the parent is still reading the experiment: a worker then
starts in milliseconds, with no store connection or thread pool copied from the parent. Each
worker uses `cpu_count // J` torch threads, so J workers share the cores instead of fighting
over them. Only the standard library is imported here (the CLI calls `prestart` first thing).
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_mod
from collections.abc import Callable, Sequence
from multiprocessing.context import BaseContext
from typing import Any

__all__ = ["PRELOAD", "prestart", "run_workers", "shares", "threads_per_worker"]

PRELOAD = ["torch", "vectorbt", "mlflow", "optuna", "fin_meta.pipeline.run_job", "fin_meta.sweeps.optuna_backend"]
"""Modules the fork server imports once, so that every worker starts warm."""
_POLL_S = 0.5


def _context() -> BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def prestart() -> None:
    """Start the fork server now, importing `PRELOAD` in the background (no-op without one)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    from multiprocessing import forkserver

    ctx = _context()
    ctx.set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()


def shares(trials: int, jobs: int) -> list[int]:
    """`trials` split over at most `jobs` workers as evenly as possible (no empty share)."""
    jobs = max(1, min(jobs, trials))
    return [trials // jobs + (i < trials % jobs) for i in range(jobs)]


def threads_per_worker(jobs: int) -> int:
    """Torch threads for each of `jobs` workers: the cores shared out, at least one."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def run_workers(target: Callable[..., None], args: Sequence[tuple[Any, ...]],
                on_message: Callable[[Any], None]) -> None:
    """Run `target(*a, queue)` in one process per `a` of `args`; pass each message a worker puts
    on the queue to `on_message` (in this process) until all have exited. A worker that exits
    with an error, or puts `("crash", text)`, stops the others: RuntimeError with its text.
    Ctrl-C (or any error here) terminates the workers and goes on up."""
    ctx = _context()
    messages = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, messages), daemon=True) for a in args]
    crash = None
    try:
        for proc in procs:
            proc.start()
        while True:
            try:
                message = messages.get(timeout=_POLL_S)
            except queue_mod.Empty:
                if all(p.exitcode is not None for p in procs):
                    break
                failed = [p for p in procs if p.exitcode not in (None, 0)]
                if failed and crash is None:
                    crash = f"a sweep worker exited with code {failed[0].exitcode}"
                    break
                continue
            if isinstance(message, tuple) and message[:1] == ("crash",):
                crash = str(message[1])
                break
            on_message(message)
    finally:
        for proc in procs:
            if proc.is_alive():  # after a crash or Ctrl-C; at a normal end every worker has exited
                proc.terminate()
            proc.join(timeout=30)
        messages.close()
    if crash is not None:
        raise RuntimeError(f"sweep worker failed: {crash}")
