"""Choose an experiment file's cost handling on its validation period only (issue 12).

Runs the experiment (untracked, the file's own budget and `data.val_start`) once for each point
of a grid of `--set` overrides, by default `env.adjust` in {1.0, 0.2} x
`env.train_cost_multiplier` in {1, 5}, and prints, per point, the validation figures of the agent
and of the pooled PPO baseline (net and gross Sharpe, turnover and cost drag a year) beside their
in-sample net Sharpe (how much they memorised). The runs compute the test period too, but this
script never reads it: nothing is chosen on the test period. The suggested point has the best
validation net Sharpe of the meta agent among the points where every learned agent trades at most
`--max-turnover` times a year on validation (all points when none does); PPO's own best point is
printed beside it, so a reader sees what the shared choice cost the baseline.

Usage: ``python benchmarks/cost_defaults.py [experiments/sp500_rl2.yaml] [--grid KEY=V1,V2 ...]
[--set KEY=VALUE ...] [--seed N] [--jobs 2] [--out FILE]``. Each point is one whole run (minutes on
the 2-core CPU); `--jobs` runs that many points at once, one core each.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_GRID = ["env.adjust=1.0,0.2", "env.train_cost_multiplier=1,5"]
FIGURES = ("sharpe", "gross_sharpe", "turnover", "cost_drag")


def grid_points(specs: list[str]) -> list[list[str]]:
    """`["env.adjust=1.0,0.2", "k=a,b"]` -> every combination as `--set` strings."""
    axes = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not values:
            raise SystemExit(f"--grid {spec!r}: write KEY=V1,V2,... e.g. env.adjust=1.0,0.2")
        axes.append([f"{key}={v.strip()}" for v in values.split(",")])
    return [list(point) for point in itertools.product(*axes)]


def run_point(path: str, sets: list[str], point: list[str], seed: int) -> dict:
    """One untracked run of the experiment; returns only in-sample and validation figures."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from fin_meta.config import load_config
    from fin_meta.pipeline import run_experiment

    torch.set_num_threads(1)
    cfg = load_config(path, [*sets, *point, f"seed={seed}", "tracking.enabled=false"])
    if cfg.data.val_start is None:
        raise SystemExit(f"{path}: no data.val_start; give one with --set data.val_start=YYYY-MM-DD")
    t0 = time.perf_counter()
    outcome = run_experiment(cfg, progress=False)
    rows = {}
    for period, evaluations in (("val", outcome.validation), ("train", outcome.in_sample)):
        for ev in evaluations:
            table = ev.table.set_index("strategy")
            for learned in (cfg.agent.algo, "ppo"):
                if learned in table.index:
                    rows[(ev.name, learned, period)] = {f: float(table.loc[learned, f]) for f in FIGURES}
    return {"sets": point, "rows": rows, "wall_s": time.perf_counter() - t0, "algo": cfg.agent.algo,
            "timings": {k: round(v) for k, v in outcome.timings.items()}}


HEADER = (f"{'point':40} {'agent':6} {'source':7} {'val net':>8} {'val gross':>9} {'turn/yr':>8} "
          f"{'drag/yr':>8} {'train net':>9} {'min':>5}")


def point_lines(r: dict) -> list[str]:
    """One point's rows of the table: validation figures per learned agent and source."""
    lines = []
    for (source, learned, period), f in sorted(r["rows"].items()):
        if period != "val":
            continue
        train = r["rows"].get((source, learned, "train"), {}).get("sharpe", float("nan"))
        lines.append(f"{' '.join(r['sets']):40} {learned:6} {source:7} {f['sharpe']:8.2f} {f['gross_sharpe']:9.2f} "
                     f"{f['turnover']:8.1f} {f['cost_drag']:8.2%} {train:9.2f} {r['wall_s'] / 60:5.1f}")
    return lines


def report(results: list[dict], max_turnover: float) -> str:
    """The per-point table and the suggested point."""
    lines = [HEADER, *(line for r in results for line in point_lines(r))]

    def val(r: dict, learned: str) -> list[dict]:
        return [f for (_s, a, p), f in r["rows"].items() if a == learned and p == "val"]

    def mean_sharpe(r: dict, learned: str) -> float:
        figures = val(r, learned)
        return sum(f["sharpe"] for f in figures) / len(figures) if figures else float("-inf")

    algo = results[0]["algo"]
    calm = [r for r in results if all(f["turnover"] <= max_turnover for (_s, _a, p), f in r["rows"].items() if p == "val")]
    pool = calm or results
    best = max(pool, key=lambda r: mean_sharpe(r, algo))
    lines.append(f"suggested (best {algo} validation net Sharpe"
                 f"{f' among points with turnover <= {max_turnover:g}/yr' if calm else '; no point kept turnover low'}): "
                 f"{' '.join(best['sets'])}")
    if any(val(r, "ppo") for r in results):
        ppo_best = max(results, key=lambda r: mean_sharpe(r, "ppo"))
        lines.append(f"pooled PPO's own best point: {' '.join(ppo_best['sets'])} "
                     f"(validation net Sharpe {mean_sharpe(ppo_best, 'ppo'):.2f}; at the suggested point "
                     f"{mean_sharpe(best, 'ppo'):.2f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "experiments" / "sp500_rl2.yaml"),
                        help="experiment file with data.val_start (default experiments/sp500_rl2.yaml)")
    parser.add_argument("--grid", action="append", default=None, metavar="KEY=V1,V2",
                        help=f"a swept key and its values (repeatable; default {' '.join(DEFAULT_GRID)})")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override for every point, e.g. agent.iterations=20")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--jobs", type=int, default=2, help="points at once (default 2)")
    parser.add_argument("--max-turnover", type=float, default=12.0, help="turnover/yr cap (default 12)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    points = grid_points(args.grid or DEFAULT_GRID)
    print(f"{args.config}: {len(points)} points, seed {args.seed}, jobs {args.jobs}; load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max(1, min(args.jobs, len(points)))) as pool:
        futures = [pool.submit(run_point, args.config, args.sets, p, args.seed) for p in points]
        results = []
        for p, fut in zip(points, futures, strict=True):
            results.append(fut.result())
            print(f"  {' '.join(p)}: {results[-1]['wall_s'] / 60:.1f} min (s: {results[-1]['timings']})", flush=True)
            print("\n".join(f"    {line}" for line in point_lines(results[-1])), flush=True)  # kept if stopped
    text = report(results, args.max_turnover) + f"\nwall time {(time.perf_counter() - t0) / 60:.1f} min; load " \
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
