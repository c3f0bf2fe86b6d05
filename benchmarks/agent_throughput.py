"""Training throughput of the PPO baseline and RL²: agent env-steps per second, learning
included (rollout collection with `VectorTradingEnv` + GAE + the PPO epochs), on
`synthetic:regimes` with the default hyperparameters except `num_envs`.

    python benchmarks/agent_throughput.py [--quick] [--device cpu|cuda|auto] [--iterations 5]

Each row: the mean over `--iterations` iterations after one warm-up iteration, per wall-clock
second and per second of this process's CPU time (on a shared machine the wall figure drops).
Then the deployment cost of RL² (`positions` over the 2,520 bars): `deploy_context` `stream`
(one GRU step per bar) vs `trial` (every decision ends a fresh 4 x 32-bar trial, replayed batched).
Like the env benchmark, OMP_WAIT_POLICY=PASSIVE is set unless already set (spinning OpenMP
threads collapse torch's CPU speed when cores are shared).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import torch  # noqa: E402

from fin_meta.agents import make_agent  # noqa: E402
from fin_meta.data import synthetic_regimes  # noqa: E402
from fin_meta.tasks import TaskSampler  # noqa: E402

ENV = {"window": 32, "fees": 5e-4, "slippage": 5e-4}


def measure(algo: str, num_envs: int, sampler: TaskSampler, device: str, iterations: int) -> tuple[float, float, int]:
    """(env-steps/s wall, env-steps/s CPU time, env-steps per iteration) of `algo`."""
    agent = make_agent(algo, ENV, {"num_envs": num_envs, "device": device, "seed": 0})
    agent.fit(sampler, iterations=1, progress=False)  # warm-up (allocations, first kernels)
    if agent.device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    history = agent.fit(sampler, iterations=iterations, progress=False)
    if agent.device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall, max(time.process_time() - cpu, 1e-9)
    steps = int(history[-1]["env_steps"] / (history[-1]["iteration"] + 1))  # env_steps count across fits
    return steps * iterations / wall, steps * iterations / cpu, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and env counts")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--iterations", type=int, default=None, help="timed iterations per row")
    args = parser.parse_args()
    iterations = args.iterations or (2 if args.quick else 5)
    prices, labels = synthetic_regimes(2520, seed=0)
    sampler = TaskSampler(prices, labels, episode_length=32, window=ENV["window"])
    rows = {"ppo": [64, 256] if args.quick else [64, 256, 1024],
            "rl2": [32, 128] if args.quick else [32, 128, 512]}
    if args.device != "cpu":
        rows = {"ppo": [256, 1024, 4096, 16384], "rl2": [128, 512, 2048, 8192]}
    print(f"device={args.device} torch={torch.__version__} threads/agent=1 (cpu_threads) "
          f"window={ENV['window']} episode_length=32 (rl2: 4 episodes per trial)")
    print(f"{'agent':<6}{'num_envs':>10}{'steps/iter':>12}{'env-steps/s (wall)':>22}{'(cpu time)':>14}")
    for algo, sizes in rows.items():
        for n in sizes:
            wall, cpu, steps = measure(algo, n, sampler, args.device, iterations)
            print(f"{algo:<6}{n:>10}{steps:>12}{wall:>22,.0f}{cpu:>14,.0f}")
    print(f"RL² positions over {len(prices)} bars (untrained net, episode_length 32, 4 per trial):")
    for mode in ("stream", "trial"):
        agent = make_agent("rl2", {**ENV, "episode_length": 32},
                           {"device": args.device, "deploy_context": mode, "episodes_per_trial": 4})
        agent.positions(prices)  # warm-up
        wall = time.perf_counter()
        agent.positions(prices)
        print(f"  deploy_context={mode:<7}{time.perf_counter() - wall:8.2f} s")


if __name__ == "__main__":
    main()
