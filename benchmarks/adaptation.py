"""The controlled adaptation benchmark of issue 4, on `synthetic:regimes`.

Meta-train RL², MAML and pooled PPO on training paths (synthetic seeds), then walk every agent
forward over held-out paths (other seeds) and backtest it with vectorbt against the oracle (knows
the true regime) and the best rule strategy (chosen on the TRAINING paths). Prints:

* test Sharpe (annualised, 252 bars/year) with a 95 % stationary-block bootstrap CI over the
  concatenated held-out returns, for every agent, the oracle and the rule;
* the targets: best meta agent's Sharpe / the oracle's (>= 70 %), and the paired-bootstrap CI of
  (meta agent - pooled PPO) Sharpe (its lower bound must be > 0);
* the meta-test adaptation curves (mean per-bar net log return after k adaptation steps /
  context episodes, 95 % CI over held-out segments);
* wall time and training throughput (agent env-steps/s, learning included) per agent.

    python benchmarks/adaptation.py            # default budget (~10 min on a 2-core CPU)
    python benchmarks/adaptation.py --quick    # smoke run (about a minute)
    python benchmarks/adaptation.py --device cuda --seed 1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fin_meta.config.yaml_io import parse_override
from fin_meta.constants import BARS_PER_YEAR
from fin_meta.data import synthetic_regimes
from fin_meta.errors import ConfigError
from fin_meta.metatest import adaptation_curves, summarise_curves
from fin_meta.metrics import annualised_sharpe, bootstrap_ci
from fin_meta.seeding import numpy_generator, seed_everything
from fin_meta.sources.oracle import oracle_positions
from fin_meta.tasks import TaskSampler, held_out_tasks
from strategies import available_strategies, strategy_positions

FEES, SLIPPAGE = 5e-4, 5e-4
BLOCK = 21  # mean block length (bars) of the stationary bootstrap: returns are autocorrelated
META = ("rl2", "maml")


@dataclass
class Budget:
    """Data sizes and training iterations of one benchmark run."""

    n_train: int
    n_test: int
    n_bars: int
    iterations: dict[str, int]
    hparams: dict[str, dict[str, Any]]
    curve_steps: list[int]
    max_segments: int
    env: dict[str, Any] = field(default_factory=lambda: {"window": 32, "features": ["realised_vol"],
                                                         "fees": FEES, "slippage": SLIPPAGE})


def budget(quick: bool) -> Budget:
    """The default (~10 min on 2 CPU cores) or the quick budget."""
    if quick:
        return Budget(
            n_train=8, n_test=2, n_bars=1260, curve_steps=[0, 1, 2], max_segments=6,
            iterations={"ppo": 10, "rl2": 4, "maml": 20},
            hparams={"ppo": {"num_envs": 64}, "rl2": {"num_envs": 32, "episodes_per_trial": 3},
                     "maml": {"meta_batch_size": 32}},
        )
    return Budget(
        n_train=400, n_test=12, n_bars=2520, curve_steps=[0, 1, 2, 3], max_segments=40,
        iterations={"ppo": 1000, "rl2": 300, "maml": 2000},
        hparams={"ppo": {"num_envs": 256},
                 # stream trials (run across regime changes) + trial deployment: 0.64 vs 0.56 Sharpe
                 "rl2": {"num_envs": 128, "episodes_per_trial": 4, "trial_sampling": "stream",
                         "deploy_context": "trial"},
                 "maml": {"meta_batch_size": 64}},
    )


def apply_overrides(b: Budget, overrides: list[str]) -> Budget:
    """`ALGO.KEY=VALUE` sets hparams[ALGO][KEY]; `iterations.ALGO=N` sets the training budget
    (values read as YAML, like `fin-meta run --set`)."""
    for item in overrides:
        try:
            ov = parse_override(item)
        except ConfigError as exc:
            raise SystemExit(f"{exc}; here: ALGO.KEY=VALUE, e.g. rl2.episodes_per_trial=4") from None
        if len(ov.path) != 2:
            raise SystemExit(f"--set {item!r}: write ALGO.KEY=VALUE, e.g. rl2.episodes_per_trial=4")
        algo, name = ov.path
        if algo == "iterations":
            b.iterations[name] = int(ov.value)
        elif algo in b.hparams:
            b.hparams[algo][name] = ov.value
        else:
            raise SystemExit(f"--set {item!r}: unknown agent {algo!r}; use one of {sorted(b.hparams)} or iterations")
    return b


def paths(seeds: list[int], n_bars: int) -> list[tuple[pd.DataFrame, pd.Series]]:
    """Synthetic regime paths (prices, true labels), one per seed."""
    return [synthetic_regimes(n_bars, seed=s) for s in seeds]


def train(algo: str, sampler: TaskSampler, b: Budget, device: str, seed: int) -> tuple[Any, dict[str, float]]:
    """Train one agent; returns it and its wall time / env-step figures."""
    from fin_meta.agents import make_agent  # torch: slow to import

    agent = make_agent(algo, b.env, {**b.hparams[algo], "device": device, "seed": seed})
    t0 = time.perf_counter()
    history = agent.fit(sampler, iterations=b.iterations[algo], progress=False)
    wall = time.perf_counter() - t0
    steps = history[-1]["env_steps"]
    return agent, {"train_s": wall, "env_steps": steps, "env_steps_per_s": steps / wall,
                   "first_return": history[0]["episode_return"], "last_return": history[-1]["episode_return"]}


def best_rule(train_paths: list[tuple[pd.DataFrame, pd.Series]]) -> str:
    """The rule strategy (default parameters) with the best Sharpe on the training paths."""
    from fin_meta.backtest.engine import backtest  # vectorbt: slow to import

    names = sorted(available_strategies())
    returns = []
    for prices, _ in train_paths:
        pos = pd.DataFrame({n: strategy_positions(n, prices) for n in names})
        returns.append(backtest(prices, pos, fees=FEES, slippage=SLIPPAGE).returns)
    sharpe = annualised_sharpe(pd.concat(returns).to_numpy())
    return names[int(np.nanargmax(sharpe))]


def test_returns(agents: dict[str, Any], rule: str, test_paths: list[tuple[pd.DataFrame, pd.Series]]) -> pd.DataFrame:
    """Daily net strategy returns of every contender on the held-out paths (concatenated)."""
    from fin_meta.backtest.engine import backtest  # vectorbt: slow to import

    frames = []
    for prices, labels in test_paths:
        pos = {"oracle": oracle_positions(prices, labels), f"rule:{rule}": strategy_positions(rule, prices)}
        pos.update({name: agent.positions(prices) for name, agent in agents.items()})
        res = backtest(prices, pd.DataFrame(pos), fees=FEES, slippage=SLIPPAGE)
        frames.append(res.returns.iloc[1:])  # bar 0 has no return yet
    return pd.concat(frames, ignore_index=True)


def paired_ci(a: np.ndarray, b: np.ndarray, fn: Callable[[Any, Any], Any], rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    """Block-bootstrap CI of fn(sharpe(a), sharpe(b)) resampling the SAME bars for both series
    (bootstrap_ci resamples bar indices; the statistic looks both series up)."""
    idx = np.arange(a.size, dtype=np.float64)

    def stat(res_idx: np.ndarray) -> np.ndarray:
        """The statistic on one resample of bar indices."""
        i = res_idx.astype(np.int64)
        return fn(annualised_sharpe(a[i]), annualised_sharpe(b[i]))

    return bootstrap_ci(idx, statistic=stat, n_resamples=n, rng=rng, block_length=BLOCK)


def sharpe_table(returns: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Sharpe and its 95 % CI per contender."""
    rows = []
    for name in returns.columns:
        r = returns[name].to_numpy()
        low, high = bootstrap_ci(r, n_resamples=2000, rng=rng, block_length=BLOCK)
        rows.append((name, annualised_sharpe(r), low, high, float(np.mean(r) * BARS_PER_YEAR)))
    return pd.DataFrame(rows, columns=["contender", "sharpe", "ci_low", "ci_high", "mean_annual_return"]).set_index("contender")


def curves(agents: dict[str, Any], test_paths: list[tuple[pd.DataFrame, pd.Series]], b: Budget, rng: np.random.Generator) -> pd.DataFrame:
    """Meta-test adaptation curves on the held-out regime segments of the true labels, as
    `fin-meta run` defines them (`held_out_tasks`: runs under 200 bars merged into a neighbour,
    at least 200 bars after the observation window: long enough for every agent)."""
    frames = [p for p, _ in test_paths]
    tasks = held_out_tasks(frames, [lab for _, lab in test_paths], window=b.env["window"], min_length=200)
    tasks = tasks[: b.max_segments]
    if not tasks:
        return pd.DataFrame()
    df = adaptation_curves(agents, frames, tasks, steps=b.curve_steps)
    return summarise_curves(df, rng)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (see the module docstring for the options) and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget: a smoke run")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the paths, the agents and the bootstrap")
    parser.add_argument("--agents", default="ppo,rl2,maml", help="comma-separated subset of ppo,rl2,maml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="ALGO.KEY=VALUE",
                        help="override an agent hyperparameter, e.g. --set rl2.episodes_per_trial=4 "
                             "or --set iterations.maml=500 (repeatable; values are YAML)")
    args = parser.parse_args(argv)
    b = apply_overrides(budget(args.quick), args.overrides)
    seed_everything(args.seed)
    rng = numpy_generator(args.seed)
    t_start = time.perf_counter()
    base, offset = 10_000 * args.seed, max(500, b.n_train)  # test seeds never overlap train seeds
    train_paths = paths([base + i for i in range(b.n_train)], b.n_bars)
    test_paths = paths([base + offset + i for i in range(b.n_test)], b.n_bars)
    sampler = TaskSampler([p for p, _ in train_paths], [lab for _, lab in train_paths],
                          episode_length=32, window=b.env["window"], min_segment=40)
    print(f"synthetic:regimes  train seeds {base}..{base + b.n_train - 1}, test seeds {base + offset}.."
          f"{base + offset + b.n_test - 1}, {b.n_bars} bars each; fees {FEES}, slippage {SLIPPAGE}; "
          f"env {b.env}; device {args.device}", flush=True)
    print(f"budget: iterations {b.iterations}; hparams {b.hparams}", flush=True)

    agents, perf = {}, {}
    for algo in [a.strip() for a in args.agents.split(",") if a.strip()]:
        agents[algo], perf[algo] = train(algo, sampler, b, args.device, args.seed)
        p = perf[algo]
        print(f"  trained {algo:5s} {b.iterations[algo]:4d} it  {p['train_s']:7.1f} s  "
              f"{p['env_steps_per_s']:9.0f} env-steps/s  episode return {p['first_return']:+.4f} -> "
              f"{p['last_return']:+.4f}", flush=True)

    rule = best_rule(train_paths)
    returns = test_returns(agents, rule, test_paths)
    table = sharpe_table(returns, rng)
    print(f"\nHeld-out test Sharpe ({b.n_test} paths, {len(returns)} bars, 95% block-bootstrap CI):")
    print(table.to_string(float_format=lambda v: f"{v:8.3f}"))

    oracle = returns["oracle"].to_numpy()
    print("\nTargets:")
    for algo in [a for a in META if a in agents]:
        r = returns[algo].to_numpy()
        ratio = table.loc[algo, "sharpe"] / table.loc["oracle", "sharpe"]
        lo, hi = paired_ci(r, oracle, lambda x, y: x / y, rng)
        print(f"  {algo}: Sharpe / oracle = {ratio:6.1%} (95% CI {lo:6.1%} .. {hi:6.1%}); "
              f"target >= 70%: {'MET' if ratio >= 0.7 else 'MISSED'}")
        if "ppo" in agents:
            d_lo, d_hi = paired_ci(r, returns["ppo"].to_numpy(), lambda x, y: x - y, rng)
            diff = table.loc[algo, "sharpe"] - table.loc["ppo", "sharpe"]
            print(f"  {algo} - ppo Sharpe = {diff:+.3f} (95% CI {d_lo:+.3f} .. {d_hi:+.3f}); "
                  f"beats pooled PPO with CI support: {'YES' if d_lo > 0 else 'NO'}")

    summary = curves(agents, test_paths, b, rng)
    if not summary.empty:
        print("\nMeta-test adaptation curves (mean net log return per bar, bp; 95% CI over segments):")
        show = summary.assign(**{c: summary[c] * 1e4 for c in ("mean", "ci_low", "ci_high")})
        print(show.to_string(index=False, float_format=lambda v: f"{v:7.2f}"))

    print("\nThroughput (training, learning included):")
    for algo, p in perf.items():
        print(f"  {algo:5s} {p['env_steps']:10.0f} env-steps in {p['train_s']:7.1f} s = "
              f"{p['env_steps_per_s']:9.0f} env-steps/s")
    print(f"\nwall time {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
