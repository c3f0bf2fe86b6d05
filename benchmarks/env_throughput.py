"""Env-steps per second of the trading environments, measured in one run on the same data.

Rows: `TradingEnv` alone; `gymnasium.vector.SyncVectorEnv` of 64 `TradingEnv`s; `VectorTradingEnv`
at several N on the CPU (and on CUDA when present or asked for). Every env runs random windows
of `--episode-length` decisions over the shipped S&P 500 sample (synthetic data if that cannot be
loaded), with random actions drawn up front, so the figure is the env alone.

    python benchmarks/env_throughput.py [--quick | --tiny] [--device cpu|cuda|auto] [--max-n 1048576]
                                        [--json FILE]

`--tiny` (seconds in all: the GPU check's `--dry-run`) also runs the device rows and the
device comparison on the CPU, at tiny sizes. `--json FILE` writes the rows and the figures
(rewritten after each row, so a crash keeps what was measured).

OpenMP threads that spin while waiting collapse torch's CPU speed 10-50x when the cores are
shared with other processes, so this script sets OMP_WAIT_POLICY=PASSIVE unless it is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts OpenMP

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from fin_meta.fileio import atomic_write_text  # noqa: E402


def _fail(message: str) -> None:
    """Bad input: one line on stderr, exit status 2."""
    print(f"{Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    raise SystemExit(2)


def _prices() -> tuple[pd.DataFrame, str]:
    try:
        from fin_meta.data import load_prices

        return load_prices("sample:sp500"), "sample:sp500"
    except Exception as exc:  # noqa: BLE001 - the benchmark still runs on synthetic data
        rng = np.random.default_rng(0)
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 5000)))
        index = pd.bdate_range("2000-01-03", periods=5000, name="date")
        frame = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
                              "volume": rng.uniform(1e6, 2e6, 5000)}, index=index)
        return frame, f"random walk (sample unavailable: {exc})"


def _rate(step: Callable[[int], None], n_envs: int, seconds: float, warmup: int = 3,
          sync: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """(env-steps per wall-clock second, per second of this process's CPU time) of `step(i)`
    (one call = n_envs env-steps), run for about `seconds`. The CPU-time figure shows what the
    process would do with its cores to itself (on a shared machine the wall figure drops)."""
    for i in range(warmup):
        step(i)
    sync()
    calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while True:
        step(calls)
        calls += 1
        if calls % 8 == 0 or calls < 8:
            sync()
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                cpu = max(time.process_time() - cpu_start, 1e-9)
                return calls * n_envs / elapsed, calls * n_envs / cpu


def bench_gym(prices: pd.DataFrame, kwargs: dict, seconds: float) -> tuple[float, float]:
    from fin_meta.envs import TradingEnv

    env = TradingEnv(prices, **kwargs)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (4096, 1)).astype(np.float32)

    def step(i: int) -> None:
        _, _, terminated, truncated, _ = env.step(actions[i % 4096])
        if terminated or truncated:
            env.reset()

    return _rate(step, 1, seconds)


def bench_sync(prices: pd.DataFrame, kwargs: dict, seconds: float, n_envs: int = 64) -> tuple[float, float]:
    import gymnasium

    from fin_meta.envs import TradingEnv

    vec = gymnasium.vector.SyncVectorEnv([lambda: TradingEnv(prices, **kwargs) for _ in range(n_envs)])
    vec.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (256, n_envs, 1)).astype(np.float32)
    return _rate(lambda i: vec.step(actions[i % 256]), n_envs, seconds)


def bench_vector(prices: pd.DataFrame, kwargs: dict, seconds: float, n_envs: int,
                 device: str) -> tuple[float, float]:
    from fin_meta.envs import VectorTradingEnv

    env = VectorTradingEnv(prices, n_envs, device=device, seed=0, **kwargs)
    env.reset()
    gen = torch.Generator(device=env.device).manual_seed(0)
    actions = torch.rand(16, n_envs, device=env.device, generator=gen) * 2 - 1
    sync = torch.cuda.synchronize if env.device.type == "cuda" else (lambda: None)
    return _rate(lambda i: env.step(actions[i % 16]), n_envs, seconds, sync=sync)


def compare_devices(prices: pd.DataFrame, kwargs: dict, device: str, n_envs: int = 4096,
                    n_steps: int = 300) -> tuple[float, float, float]:
    """Max |difference| of equity (relative), rewards and observations between the CPU and
    `device` over the same windows (set_tasks) and actions."""
    from fin_meta.envs import VectorTradingEnv

    gen = torch.Generator().manual_seed(1)
    start = torch.randint(kwargs["window"], len(prices) - 1 - n_steps, (n_envs,), generator=gen)
    actions = torch.rand(n_steps, n_envs, generator=gen) * 2.4 - 1.2
    runs = []
    for dev in ("cpu", device):
        env = VectorTradingEnv(prices, n_envs, device=dev, seed=0, **kwargs)
        obs, _ = env.set_tasks(torch.zeros(n_envs), start, torch.full((n_envs,), n_steps))
        equity, rewards, observations = [], [], [obs.cpu()]
        for t in range(n_steps):
            obs, reward, _, _, info = env.step(actions[t].to(env.device))
            equity.append(info["equity"].cpu())
            rewards.append(reward.cpu())
            observations.append(obs.cpu())
        runs.append([torch.stack(v) for v in (equity, rewards, observations)])
    (e0, r0, o0), (e1, r1, o1) = runs
    return (float(((e1 - e0) / e0).abs().max()), float((r1 - r0).abs().max()), float((o1 - o0).abs().max()))


def _sizes(max_n: int, tiny: bool) -> list[int]:
    """N of the device rows: powers of 4 from 4,096 below `max_n`, then `max_n` (tiny: `max_n` only)."""
    return [max_n] if tiny else sorted({n for n in (4**k for k in range(6, 12)) if n < max_n} | {max_n})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (about 0.5 s per row)")
    parser.add_argument("--tiny", action="store_true",
                        help="smoke run in seconds: tiny sizes, device rows also on the CPU")
    parser.add_argument("--device", default="auto", help="device of the GPU rows: auto, cuda or cpu")
    parser.add_argument("--max-n", type=int, default=None,
                        help="largest N of the device rows (default 1048576; --tiny: 1024)")
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--episode-length", type=int, default=252)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--cpu-n", default=None,
                        help="comma-separated N of the CPU rows (default 1024,16384,131072; --tiny: 256)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows and figures to this file")
    args = parser.parse_args(argv)
    seconds = 0.05 if args.tiny else 0.5 if args.quick else 3.0
    max_n = args.max_n or (1024 if args.tiny else 2**20)
    cpu_n = args.cpu_n or ("256" if args.tiny else "1024,16384,131072")
    if args.device not in ("auto", "cpu") and not args.device.startswith("cuda"):
        _fail(f"--device {args.device!r}: use auto, cpu or cuda")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        _fail(f"--device {args.device}: CUDA is not available to torch {torch.__version__}; "
              "use --device auto or cpu")
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    if args.threads:
        torch.set_num_threads(args.threads)
    prices, source = _prices()
    kwargs = {"window": args.window, "episode_length": args.episode_length}
    print(f"data: {source}, {len(prices)} bars; window={args.window}, episode_length={args.episode_length}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    rows: list[tuple[str, int, float, float]] = []
    figures: dict = {"device": device, "torch": torch.__version__, "rows": [], "target_env_steps_per_s": 1e9}

    def save() -> None:
        if args.json is not None:
            figures["rows"] = [{"name": r[0], "n": r[1], "env_steps_per_s": r[2], "per_cpu_second": r[3]}
                               for r in rows]
            atomic_write_text(args.json, json.dumps(figures, indent=1))

    def report(name: str, n: int, rates: tuple[float, float]) -> None:
        rows.append((name, n, *rates))
        print(f"{name:<32} {n:>9,d} {rates[0]:>16,.0f} {rates[1]:>18,.0f}", flush=True)
        save()

    print(f"{'environment':<32} {'N':>9} {'env-steps/s':>16} {'per CPU-second':>18}")
    report("TradingEnv", 1, bench_gym(prices, kwargs, seconds))
    n_sync = 8 if args.tiny else 64
    report(f"SyncVectorEnv({n_sync} x TradingEnv)", n_sync, bench_sync(prices, kwargs, seconds, n_sync))
    sync_wall, sync_cpu = rows[-1][2:]
    for n in (int(v) for v in cpu_n.split(",") if v):
        report("VectorTradingEnv cpu", n, bench_vector(prices, kwargs, seconds, n, "cpu"))
    best_wall = max(row[2] for row in rows if row[0].endswith("cpu"))
    best_cpu = max(row[3] for row in rows if row[0].endswith("cpu"))
    figures["cpu_speedup_vs_sync"] = best_wall / sync_wall
    print(f"best CPU batched / SyncVectorEnv: {best_wall / sync_wall:,.0f}x wall-clock, "
          f"{best_cpu / sync_cpu:,.0f}x per CPU-second (target >= 100x)")
    if device.startswith("cuda") or args.tiny:  # --tiny: the same rows on the CPU, so they never rot
        if device.startswith("cuda"):
            figures["gpu"] = torch.cuda.get_device_name(torch.device(device))
            print(f"GPU: {figures['gpu']}")
        for n in _sizes(max_n, args.tiny):
            report(f"VectorTradingEnv {device}", n, bench_vector(prices, kwargs, seconds, n, device))
        figures["largest_n"], figures["largest_n_env_steps_per_s"] = rows[-1][1], rows[-1][2]
        save()
        print(f"largest N on {device} ({rows[-1][1]:,d}): {rows[-1][2]:,.0f} env-steps/s "
              f"(target >= 1e9 at N = 2^20 on an H100/H200)")
        n_envs, n_steps = (64, 50) if args.tiny else (4096, 300)
        figures["compare"] = {}
        for reward in ("log_return", "differential_sharpe"):
            eq, rw, ob = compare_devices(prices, {**kwargs, "reward": reward, "fees": 5e-4}, device, n_envs, n_steps)
            figures["compare"][reward] = {"rel_equity": eq, "reward": rw, "obs": ob}
            save()
            print(f"{device} vs cpu, {reward}, {n_envs:,d} envs x {n_steps} steps: max |rel equity diff| "
                  f"{eq:.1e}, max |reward diff| {rw:.1e}, max |obs diff| {ob:.1e}")


if __name__ == "__main__":
    main()
