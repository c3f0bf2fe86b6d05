"""Worker processes for `--jobs J` (seed sets, `fin_meta.pipeline.seeds`; sweeps,
`fin_meta.sweeps.optuna_backend`): `run_pool(fn, tasks, jobs=J)` runs `fn(*task)` for every task
in at most J processes, each worker taking the next task when it is free, and returns the
results in task order. Only the standard library is imported here (`prestart` runs first thing
in the CLI).

The workers fork from a fork server (`multiprocessing`'s "forkserver"; "spawn" where there is
none) that imports torch, vectorbt, MLflow and the pipeline once (`preload`; `prestart` starts it
early, while the caller still reads its files), so a worker starts warm with no store
connection or thread pool copied from this process. Each worker sets its torch CPU
threads (`threads`). A task that raises stops the pool from starting new tasks; the running
ones finish, then `TaskFailed` says which task and why. Ctrl-C (SIGINT reaches this process
only: the workers ignore it) sends each busy worker SIGTERM, which it raises as
KeyboardInterrupt inside its task (a tracked run then ends FAILED), waits for them to stop,
and goes on up.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.context import BaseContext
from typing import Any

from fin_meta.devices import cpu_cores

__all__ = ["PRELOAD", "TaskFailed", "prestart", "run_pool", "threads_per_worker"]

PRELOAD = ["torch", "torch._inductor", "vectorbt", "mlflow", "fin_meta.pipeline.seeds.child"]
"""Modules the fork server imports once by default (`torch._inductor`: what
`use_deterministic_algorithms` loads; the seed sets' child job)."""
POLL_S = 10.0
"""Seconds between two `on_tick` calls while every worker is busy."""
STOP_S = 60.0
"""Seconds a stopped worker has to end its task (mark its run FAILED) before it is killed."""


class TaskFailed(Exception):
    """Task `index` raised `error` (the worker's exception, or a RuntimeError with its text)."""

    def __init__(self, index: int, error: BaseException) -> None:
        super().__init__(index, error)
        self.index, self.error = index, error


def _context() -> BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def prestart(preload: Sequence[str] = PRELOAD) -> None:
    """Start the fork server now, importing `preload` in the background (no-op without a fork
    server, or when it already runs: the first preload wins)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    from multiprocessing import forkserver

    _context().set_forkserver_preload(list(preload))
    forkserver.ensure_running()


def threads_per_worker(jobs: int) -> int:
    """Torch threads for each of `jobs` workers: the cores shared out, at least one."""
    return max(1, cpu_cores() // max(1, jobs))


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling, else a RuntimeError with its type and text."""
    try:
        return pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _worker(conn: Connection, fn: Callable[..., Any], threads: int) -> None:
    """A worker's loop: receive `(index, task, cwd, environ)`, run the task in the sender's
    working folder and environment (the fork server's may be older), send back `("done" |
    "failed", index, value)`, until it receives None; on SIGTERM, `("interrupted", index, None)`
    and exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt)
    import torch

    torch.set_num_threads(threads)
    index = -1
    try:
        while (message := conn.recv()) is not None:
            index, task, cwd, environ = message
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(environ)
            try:
                conn.send(("done", index, fn(*task)))
            except Exception as exc:
                conn.send(("failed", index, _portable(exc)))
    except KeyboardInterrupt:
        conn.send(("interrupted", index, None))
    except EOFError:  # the parent went away
        pass


def _stop(procs: Sequence[Any], busy: Sequence[Any]) -> None:
    """SIGTERM the busy workers, give every worker `STOP_S` to exit, then kill what is left."""
    for proc in busy:
        if proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.join(timeout=STOP_S if proc in busy else 5.0)
        if proc.is_alive():
            proc.kill()
            proc.join()


def run_pool(fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], *, jobs: int, threads: int = 1,
             on_result: Callable[[int, Any], None] | None = None, on_tick: Callable[[], None] | None = None,
             preload: Sequence[str] = PRELOAD, poll_s: float = POLL_S) -> list[Any]:
    """`[fn(*task) for task in tasks]`, computed by `min(jobs, len(tasks))` worker processes with
    `threads` torch threads each (`fn` must be importable: a module-level function). `on_result
    (index, result)` is called here as each task finishes, `on_tick()` every `poll_s` seconds
    without one. `preload`: modules the fork server imports when this call starts it. `TaskFailed` when a task raised (see the module docstring)."""
    ctx = _context()
    if preload and hasattr(ctx, "set_forkserver_preload"):
        ctx.set_forkserver_preload(list(preload))
    results: dict[int, Any] = {}
    failure: TaskFailed | None = None
    todo = list(enumerate(tasks))
    workers: list[tuple[Any, Connection]] = []
    busy: dict[Connection, tuple[Any, int]] = {}  # a busy worker's pipe -> (process, task index)
    try:
        for _ in range(max(1, min(jobs, len(tasks)))):
            here, there = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(there, fn, threads), daemon=True)
            proc.start()
            there.close()
            workers.append((proc, here))
        idle = [conn for _, conn in reversed(workers)]
        procs = {conn: proc for proc, conn in workers}
        while busy or (todo and failure is None):
            while idle and todo and failure is None:
                conn, (index, task) = idle.pop(), todo.pop(0)
                conn.send((index, task, os.getcwd(), dict(os.environ)))
                busy[conn] = (procs[conn], index)
            ready = wait(list(busy), timeout=poll_s)
            if not ready and on_tick is not None:
                on_tick()
            for conn in ready:
                proc, index = busy.pop(conn)
                try:
                    kind, index, value = conn.recv()
                except (EOFError, OSError):  # killed (out of memory?): its task failed, the worker is gone
                    proc.join(timeout=5.0)
                    failure = failure or TaskFailed(index, RuntimeError(f"its worker process died (exit code "
                                                                        f"{proc.exitcode})"))
                    continue
                if kind == "interrupted":
                    raise KeyboardInterrupt
                if kind == "failed":
                    failure = failure or TaskFailed(index, value)
                else:
                    results[index] = value
                    if on_result is not None:
                        on_result(index, value)
                idle.append(conn)
    except BaseException:
        _stop([proc for proc, _ in workers], [proc for proc, _ in busy.values()])
        raise
    finally:
        for proc, conn in workers:
            if proc.is_alive():
                try:
                    conn.send(None)
                except OSError:
                    pass
            proc.join(timeout=5.0)
            if proc.is_alive():
                proc.kill()
            conn.close()
    if failure is not None:
        raise failure
    return [results[i] for i in range(len(tasks))]
