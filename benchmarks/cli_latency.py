"""Latency a user feels at the command line: whole `fin-meta` processes, timed end to end.

Each command runs `--repeats` times in a fresh process (min / median / max wall seconds) in a
scratch folder with its own MLflow store; the first tracked backtest creates the store and is
timed apart ("cold"), the others find it ("warm"). Target (issue: a user's first hour): a warm
tracked `fin-meta backtest --strategy all` on `sample:sp500` in <= 5 s on the 2-core machine.
Usage: ``python benchmarks/cli_latency.py [--repeats N] [--source-tree DIR] [--against DIR]``;
``--source-tree`` times the `fin_meta` package of another checkout (e.g. ``git worktree add
/tmp/before <commit>``) with this environment's libraries, for before/after figures;
``--against DIR`` times that checkout too, its runs taking turns with this one's (A B A B ...),
and prints the ratio of their medians and the median of the per-pair ratios: on a machine whose
speed drifts (a shared VM), a comparison that holds where two separate medians do not. Figures depend on the machine's
load: run it alone (the load average is printed before and after; "cpu" is the CPU time of the
command's processes, which a busy machine inflates less than the wall time). The processes may
cache their bytecode (`__pycache__`, as on a user's machine after the first run) even where
PYTHONDONTWRITEBYTECODE is set; otherwise every run would recompile fin_meta's own modules.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIN_META = [sys.executable, "-c", "from fin_meta.cli import main; main()"]
"""`fin-meta` as the console script runs it (the same entry point)."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `fin-meta ARGS` process and the processes it waited for
    (raises if it fails)."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    done = subprocess.run([*FIN_META, *args], cwd=cwd, capture_output=True, text=True, env=env)
    elapsed, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if done.returncode != 0:
        raise SystemExit(f"fin-meta {' '.join(args)} failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed, cpu


def pythonpath_env(env: dict[str, str], tree: Path | None) -> dict[str, str]:
    """`env` with the `fin_meta` of checkout `tree` first on the path (None: this environment's)."""
    return env if tree is None else {**env, "PYTHONPATH": str(tree.resolve())}


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="processes per command (default 3)")
    parser.add_argument("--source-tree", type=Path, default=None,
                        help="time the fin_meta package of this checkout instead (PYTHONPATH)")
    parser.add_argument("--against", type=Path, default=None,
                        help="also time this checkout, its runs in turn with the others (A B A B ...)")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # see the module docstring
    env_a = pythonpath_env(env, args.source_tree)
    env_b = None if args.against is None else pythonpath_env(env, args.against)
    with tempfile.TemporaryDirectory(prefix="fin-meta-latency-") as tmp:
        cwd = Path(tmp)
        uri = f"sqlite:///{cwd / 'mlflow.db'}"
        tracked = ["backtest", "--data", "sample:sp500", "--strategy", "all", "--tracking-uri", uri]
        print(f"load average before: {load()} ({os.cpu_count()} CPUs)")
        cold, cold_cpu = timed(tracked, cwd, env_a)
        commands = {
            "fin-meta --help": ["--help"],
            "fin-meta data show sample:sp500": ["data", "show", "sample:sp500"],
            "backtest --strategy all --no-track": ["backtest", "--data", "sample:sp500", "--strategy", "all", "--no-track"],
            "backtest --strategy all (tracked, warm)": tracked,
        }
        print(f"{'command':<42} {'min':>7} {'median':>7} {'max':>7} {'cpu':>7}  (s; wall, {args.repeats} runs; "
              "median CPU)")
        print(f"{'backtest --strategy all (tracked, cold)':<42} {cold:7.2f} {'':>7} {'':>7} {cold_cpu:7.2f}  "
              "(creates the store)")
        for name, command in commands.items():
            runs_a, runs_b = [], []
            for _ in range(args.repeats):
                runs_a.append(timed(command, cwd, env_a))
                if env_b is not None:
                    runs_b.append(timed(command, cwd, env_b))
            print(row(name, runs_a))
            if runs_b:
                print(row(f"  against {args.against.name}", runs_b))
                pairs = statistics.median(a[0] / b[0] for a, b in zip(runs_a, runs_b, strict=True))
                medians = statistics.median(a for a, _ in runs_a) / statistics.median(b for b, _ in runs_b)
                print(f"  {'wall ratio (this / against)':<40} median of pairs {pairs:.3f}, of medians {medians:.3f}")
        print(f"load average after: {load()}")


def row(name: str, runs: list[tuple[float, float]]) -> str:
    """One line of the table: min, median and max wall seconds, median CPU seconds."""
    times = [wall for wall, _ in runs]
    cpu = statistics.median(c for _, c in runs)
    return f"{name:<42} {min(times):7.2f} {statistics.median(times):7.2f} {max(times):7.2f} {cpu:7.2f}"


if __name__ == "__main__":
    main()
