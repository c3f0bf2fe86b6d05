"""Does `fin-meta sweep --jobs 2` use both cores? Whole `fin-meta sweep` processes, timed end to
end: one trial (`--trials 1 --jobs 1`) against two trials in parallel (`--trials 2 --jobs 2`),
each on a fresh MLflow store and Optuna study, after one untimed warm-up sweep (numba's caches).
Target (issue 14): two trials in parallel take <= 1.3x the wall time of one.

The experiment is `experiments/quickstart.yaml` with a validation period (2011-02 .. 2012-10)
and `--iterations` meta-iterations (default 10, validated every 5); `--quick` is a tiny budget for
a smoke run. Pruning is off, so both trials train their whole budget. Figures depend on the
machine's load: run it alone (the load average is printed before and after).
Usage: ``python benchmarks/sweep_scaling.py [--iterations N] [--repeats N] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIN_META = [sys.executable, "-c", "from fin_meta.cli import main; main()"]
SPACE = "agent.lr: {loguniform: [1.0e-4, 1.0e-2]}\nenv.adjust: {uniform: [0.2, 1.0]}\n"
VALIDATION = ["data.train_end=2010-12-31", "data.val_start=2011-02-01"]
QUICK = ["agent.num_envs=8", "agent.hidden_size=16", "evaluation.bootstrap_samples=100",
         "evaluation.adaptation_steps=[0]", "evaluation.baselines=[buy_and_hold]", "data.start=2006-01-03",
         "data.train_start=2006-01-03", "data.train_end=2009-12-31", "data.val_start=2010-02-03",
         "data.test_start=2011-02-03", "data.test_end=2012-06-29", "evaluation.min_test_bars=200"]


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def sweep(folder: Path, trials: int, jobs: int, sets: list[str]) -> float:
    """Wall seconds of one `fin-meta sweep` process on a fresh store in `folder`."""
    folder.mkdir(parents=True)
    space = folder / "space.yaml"
    space.write_text(SPACE, encoding="utf-8")
    args = ["sweep", str(ROOT / "experiments" / "quickstart.yaml"), "--space", str(space), "--trials", str(trials),
            "--jobs", str(jobs), "--no-prune", "--tracking-uri", f"sqlite:///{folder}/mlflow.db",
            *[a for s in sets for a in ("--set", s)]]
    t0 = time.perf_counter()
    done = subprocess.run([*FIN_META, *args], cwd=folder, capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"fin-meta sweep failed ({done.returncode}): {done.stderr[-800:]}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10, help="meta-iterations per trial (default 10)")
    parser.add_argument("--repeats", type=int, default=1, help="timed sweeps of each kind (default 1; median)")
    parser.add_argument("--quick", action="store_true", help="a tiny budget: a smoke run, not a measurement")
    args = parser.parse_args(argv)
    iterations = 1 if args.quick else args.iterations
    sets = [f"agent.iterations={iterations}", f"agent.eval_every={max(1, iterations // 2)}",
            *(QUICK if args.quick else VALIDATION)]
    print(f"load average before: {load()} ({os.cpu_count()} cores); {iterations} iterations a trial")
    with tempfile.TemporaryDirectory(prefix="fin-meta-sweep-bench-") as scratch:
        root = Path(scratch)
        warm = sweep(root / "warm", 1, 1, sets)
        one, two = [], []
        for i in range(args.repeats):
            one.append(sweep(root / f"one{i}", 1, 1, sets))
            two.append(sweep(root / f"two{i}", 2, 2, sets))
    t1, t2 = statistics.median(one), statistics.median(two)
    ratio = t2 / t1
    print(f"warm-up sweep (1 trial, untimed): {warm:.1f} s")
    print(f"1 trial,  --jobs 1: {t1:.1f} s wall (runs: {', '.join(f'{x:.1f}' for x in one)})")
    print(f"2 trials, --jobs 2: {t2:.1f} s wall (runs: {', '.join(f'{x:.1f}' for x in two)})")
    verdict = "met" if ratio <= 1.3 else "missed"
    print(f"2 trials in parallel / 1 trial = {ratio:.2f}x (target <= 1.3x: {verdict}; serial would be ~2x)")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
