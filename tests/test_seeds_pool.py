"""The worker pool of `--jobs J` (`fin_meta.pipeline.pool`) on tasks that take no time: the
results come back in task order from real worker processes, a task that raises stops the pool
and names its task, and Ctrl-C stops busy workers through their own KeyboardInterrupt.

The task functions live here, at module level, so the workers can import them. The pool's fork
server imports the pipeline once (the first test pays for it); every later worker forks warm.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fin_meta.pipeline.pool import TaskFailed, run_pool


def square_in(value: int, folder: str) -> tuple[int, int, str, str]:
    """value squared, the worker's pid, its working folder and an environment variable."""
    return value * value, os.getpid(), os.getcwd(), os.environ.get("SEEDS_POOL_PROBE", "")


def fail_on(value: int, bad: int) -> int:
    if value == bad:
        raise ValueError(f"task {value} is bad")
    return value


def wait_for_stop(marker: str, seconds: float) -> None:
    """Write `<marker>.started`, sleep; when stopped, write `marker` (as a run marks itself
    FAILED) and go on up."""
    Path(marker + ".started").write_text("")
    try:
        time.sleep(seconds)
    except KeyboardInterrupt:
        Path(marker).write_text("stopped")
        raise


def test_results_come_back_in_task_order_from_workers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEEDS_POOL_PROBE", "seen")
    seen: list[int] = []
    out = run_pool(square_in, [(v, str(tmp_path)) for v in range(5)], jobs=2,
                   on_result=lambda i, _r: seen.append(i))
    assert [r[0] for r in out] == [v * v for v in range(5)]
    assert sorted(seen) == list(range(5))
    pids = {r[1] for r in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # worker processes, at most J
    assert {r[2] for r in out} == {str(tmp_path)} and {r[3] for r in out} == {"seen"}  # the caller's folder and env


def test_a_failing_task_is_named_and_no_task_starts_after_it():
    started = []
    with pytest.raises(TaskFailed) as info:
        run_pool(fail_on, [(0, 0), (1, 0), (2, 0)], jobs=1, on_result=lambda i, _r: started.append(i))
    assert info.value.index == 0 and isinstance(info.value.error, ValueError)
    assert "task 0 is bad" in str(info.value.error)
    assert started == []  # one worker: after task 0 failed, tasks 1 and 2 never ran


def test_ctrl_c_stops_busy_workers_through_their_own_interrupt(tmp_path):
    markers = [tmp_path / f"stopped{i}" for i in range(2)]
    ticks = []

    def ctrl_c() -> None:  # once both tasks run
        if all(Path(f"{m}.started").exists() for m in markers):
            ticks.append(1)
            raise KeyboardInterrupt

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_pool(wait_for_stop, [(str(m), 120.0) for m in markers], jobs=2, on_tick=ctrl_c, poll_s=0.5)
    assert time.monotonic() - start < 60  # not the tasks' 120 s
    assert ticks == [1]
    assert [m.read_text() for m in markers] == ["stopped", "stopped"]  # each task saw KeyboardInterrupt
