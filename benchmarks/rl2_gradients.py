"""How hard the value loss pulls on RL²'s policy trunk, shared vs separate critic (issue 11).

Trains RL² (and, with `--agents rl2,rppo`, the recurrent PPO control) on a `synthetic:regimes` path and, after some iterations, measures on
fresh trials (`fin_meta.agents.rl2.diagnostics.trunk_gradient_norms`): the gradient norm of the
policy loss and of value_coef x the value loss on the policy's encoder + GRU, their ratio, and
the factor the global gradient clip (max_grad_norm) scales the step by. Prints one row per
measurement and the episode return at the end.

    python benchmarks/rl2_gradients.py            # ~1 min on a 2-core CPU
    python benchmarks/rl2_gradients.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fin_meta.data import synthetic_regimes
from fin_meta.seeding import numpy_generator, torch_generator
from fin_meta.tasks import TaskSampler

ENV = {"window": 32, "features": ["realised_vol"], "fees": 5e-4, "slippage": 5e-4}


def measure(algo: str, separate: bool, sampler: TaskSampler, iterations: int, at: list[int],
            hparams: dict) -> tuple[list[dict[str, float]], float]:
    """Train `iterations`; after each iteration in `at` measure the trunk gradients on a fresh
    batch of trials (its own random streams: training is not disturbed)."""
    from fin_meta.agents import make_agent
    from fin_meta.agents.rl2.diagnostics import trunk_gradient_norms

    agent = make_agent(algo, ENV, {**hparams, "separate_critic": separate})
    rows: list[dict[str, float]] = []

    def callback(i: int, metrics: dict[str, float]) -> None:
        if i + 1 in at:
            ctx = agent.fit_context(sampler, numpy_generator(10_000 + i), torch_generator(10_000 + i, agent.device))
            rows.append({"after": i + 1, **trunk_gradient_norms(agent, agent.collect(sampler, ctx))})

    history = agent.fit(sampler, iterations=iterations, progress=False, callback=callback)
    return rows, float(np.mean([m["episode_return"] for m in history[-5:]]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget (smoke run)")
    parser.add_argument("--iterations", type=int, default=None, help="training iterations (default 20; quick 3)")
    parser.add_argument("--agents", default="rl2", help="comma-separated subset of rl2,rppo")
    parser.add_argument("--num-envs", type=int, default=None, help="trials per iteration (default 32; quick 8)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    agents = args.agents.split(",")
    if not set(agents) <= {"rl2", "rppo"}:
        parser.error(f"--agents {args.agents!r}: give a comma-separated subset of rl2,rppo")
    iterations = args.iterations or (3 if args.quick else 20)
    at = sorted({1, 2, 5, 10, 20, iterations} & set(range(1, iterations + 1)))
    prices, labels = synthetic_regimes(630 if args.quick else 2520, seed=args.seed)
    sampler = TaskSampler(prices, labels, episode_length=16 if args.quick else 64, window=ENV["window"])
    hparams = {"num_envs": args.num_envs or (8 if args.quick else 32), "episodes_per_trial": 2,
               "trial_sampling": "stream", "device": args.device, "seed": args.seed,
               **({"hidden_size": 16, "encoder_size": 16} if args.quick else {})}
    print(f"synthetic:regimes seed {args.seed}, {len(prices)} bars, episode_length={sampler.episode_length}, "
          f"{hparams['episodes_per_trial']} episodes per trial, {hparams['num_envs']} trials per iteration, "
          f"{iterations} iterations; gradient norms on the policy's encoder + GRU")
    print(f"{'agent':<22} {'after':>5} {'policy':>9} {'value':>9} {'value/policy':>12} {'global':>9} {'clip':>7}")
    for algo, separate in [(a, s) for a in agents for s in (False, True)]:
        t0 = time.perf_counter()
        rows, ret = measure(algo, separate, sampler, iterations, at, hparams)
        name = f"{algo} {'separate' if separate else 'shared'} critic"
        for r in rows:
            print(f"{name:<22} {r['after']:>5.0f} {r['policy_trunk']:>9.3g} {r['value_trunk']:>9.3g} "
                  f"{r['ratio']:>12.3g} {r['global']:>9.3g} {r['clip_factor']:>7.3g}")
        print(f"{name:<22} mean episode return of the last 5 iterations {ret:+.4f} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
