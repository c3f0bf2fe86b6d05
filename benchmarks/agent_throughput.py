"""Training throughput of RL², PPO and MAML: agent env-steps per second, learning included
(rollout collection with `VectorTradingEnv` + the update: GAE and PPO epochs, or MAML's inner and
outer steps), on `synthetic:regimes` with the default hyperparameters except the batch size
(`num_envs`; MAML: `meta_batch_size`).

    python benchmarks/agent_throughput.py [--quick | --tiny] [--device cpu|cuda|auto]
                                          [--agents rl2,ppo,maml] [--iterations N] [--json FILE]

Each row: the mean over `--iterations` iterations after one warm-up iteration, per wall-clock
second and per second of this process's CPU time (on a shared machine the wall figure drops).
On CUDA the rows go up to about 10^6 env-steps per iteration (the RL² target: >= 10^6 env-steps/s
learning included). Then the deployment cost of RL² (`positions` over the bars): `deploy_context`
`stream` (one GRU step per bar) vs `trial` (every decision ends a fresh 4 x 32-bar trial,
replayed batched). `--tiny`: seconds in all (the GPU check's `--dry-run`). `--json FILE` writes
the rows (rewritten after each row, so a crash keeps what was measured).
Like the env benchmark, OMP_WAIT_POLICY=PASSIVE is set unless already set (spinning OpenMP
threads collapse torch's CPU speed when cores are shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import torch  # noqa: E402

from fin_meta.agents import make_agent  # noqa: E402
from fin_meta.data import synthetic_regimes  # noqa: E402
from fin_meta.fileio import atomic_write_text  # noqa: E402
from fin_meta.tasks import TaskSampler  # noqa: E402

ENV = {"window": 32, "fees": 5e-4, "slippage": 5e-4}
BATCH_KEY = {"ppo": "num_envs", "rl2": "num_envs", "maml": "meta_batch_size"}
"""The hyperparameter each row sets (parallel envs / trials, or MAML's tasks per outer step)."""
SIZES = {
    "tiny": {"rl2": [8], "ppo": [16], "maml": [8]},
    "quick": {"rl2": [32, 128], "ppo": [64, 256], "maml": [16, 64]},
    "cpu": {"rl2": [32, 128, 512], "ppo": [64, 256, 1024], "maml": [16, 64, 256]},
    "cuda": {"rl2": [512, 2048, 8192, 32768], "ppo": [1024, 4096, 16384], "maml": [256, 1024, 4096]},
}
"""Batch sizes of the rows by mode (steps per iteration: rl2 x 128, ppo x 64, maml x 96)."""
TINY_HPARAMS = {"rl2": {"hidden_size": 16, "encoder_size": 16, "epochs": 1, "minibatches": 1},
                "ppo": {"hidden_sizes": [16], "epochs": 1, "minibatches": 1}, "maml": {"hidden_sizes": [16]}}
"""--tiny only: small networks and one update pass, so the smoke run takes seconds."""
TARGET_RL2 = 1e6
"""RL² env-steps/s, learning included, on one GPU (issue 14)."""


def _fail(message: str) -> None:
    """Bad input: one line on stderr, exit status 2."""
    print(f"{Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    raise SystemExit(2)


def measure(algo: str, batch: int, sampler: TaskSampler, device: str, iterations: int,
            hparams: dict | None = None) -> tuple[float, float, int]:
    """(env-steps/s wall, env-steps/s CPU time, env-steps per iteration) of `algo` (default
    hyperparameters but the batch size, updated by `hparams`)."""
    agent = make_agent(algo, ENV, {BATCH_KEY[algo]: batch, "device": device, "seed": 0, **(hparams or {})})
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


def _device(name: str) -> str:
    """`name` checked and resolved (`auto` -> cuda or cpu); a one-line exit when unusable."""
    if name not in ("auto", "cpu") and not name.startswith("cuda"):
        _fail(f"--device {name!r}: use auto, cpu or cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        _fail(f"--device {name}: CUDA is not available to torch {torch.__version__}; use cpu or auto")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and batch sizes")
    parser.add_argument("--tiny", action="store_true", help="smoke run in seconds (one tiny row per agent)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--agents", default="rl2,ppo,maml", help="comma-separated, in the order run")
    parser.add_argument("--iterations", type=int, default=None,
                        help="timed iterations per row (default 5; --quick, cuda: 2-3; --tiny: 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and figures to this file")
    args = parser.parse_args(argv)
    device = _device(args.device)
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    unknown = sorted(set(agents) - set(BATCH_KEY))
    if unknown or not agents:
        _fail(f"--agents {args.agents!r}: choose from {', '.join(BATCH_KEY)} (comma-separated)")
    mode = "tiny" if args.tiny else "quick" if args.quick else "cuda" if device.startswith("cuda") else "cpu"
    iterations = args.iterations or {"tiny": 1, "quick": 2, "cuda": 3, "cpu": 5}[mode]
    prices, labels = synthetic_regimes(1260 if args.tiny else 2520, seed=0)
    sampler = TaskSampler(prices, labels, episode_length=32, window=ENV["window"])
    figures: dict = {"device": device, "torch": torch.__version__, "iterations": iterations, "rows": [],
                     "target_rl2_env_steps_per_s": TARGET_RL2, "deploy_s": {}}
    if device.startswith("cuda"):
        figures["gpu"] = torch.cuda.get_device_name(torch.device(device))

    def save() -> None:
        if args.json is not None:
            atomic_write_text(args.json, json.dumps(figures, indent=1))

    print(f"device={device}{' (' + figures['gpu'] + ')' if 'gpu' in figures else ''} torch={torch.__version__} "
          f"threads/agent=1 (cpu_threads) window={ENV['window']} episode_length=32 "
          f"(rl2: 4 episodes per trial; maml: 48 + 48 bars per task); {iterations} timed iterations per row")
    print(f"{'agent':<6}{'batch':>10}{'steps/iter':>12}{'env-steps/s (wall)':>22}{'(cpu time)':>14}")
    for algo in agents:
        for n in SIZES[mode][algo]:
            wall, cpu, steps = measure(algo, n, sampler, device, iterations, TINY_HPARAMS[algo] if args.tiny else None)
            figures["rows"].append({"algo": algo, "batch": n, "batch_key": BATCH_KEY[algo], "steps_per_iter": steps,
                                    "env_steps_per_s": wall, "per_cpu_second": cpu})
            save()
            print(f"{algo:<6}{n:>10}{steps:>12}{wall:>22,.0f}{cpu:>14,.0f}", flush=True)
    if "rl2" in agents:
        best = max(r["env_steps_per_s"] for r in figures["rows"] if r["algo"] == "rl2")
        print(f"RL² best: {best:,.0f} env-steps/s learning included (target >= {TARGET_RL2:.0e} on one GPU)")
        deploy = prices.iloc[:300] if args.tiny else prices
        print(f"RL² positions over {len(deploy)} bars (untrained net, episode_length 32, 4 per trial):")
        for context in ("stream", "trial"):
            agent = make_agent("rl2", {**ENV, "episode_length": 32},
                               {"device": device, "deploy_context": context, "episodes_per_trial": 4})
            agent.positions(deploy)  # warm-up
            wall = time.perf_counter()
            agent.positions(deploy)
            figures["deploy_s"][context] = time.perf_counter() - wall
            save()
            print(f"  deploy_context={context:<7}{figures['deploy_s'][context]:8.2f} s", flush=True)


if __name__ == "__main__":
    main()
