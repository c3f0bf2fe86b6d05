"""Overhead of `fin_meta.backtest.backtest` over the bare vectorbt call it wraps.

1,000 strategy columns x 5,000 daily bars with fees and slippage, random targets in [-1, 1]
(shorts and flips on every bar). Both sides are warmed up once (numba compilation), then timed
best of 5 in the same process, calls interleaved and garbage collected between calls (vectorbt
objects hold reference cycles; freeing one must not land in the other's timing):
``backtest()`` (validation, the simulation, equity/returns/traded arrays and all stats) versus
``vbt.Portfolio.from_orders`` alone with the same arguments. Wall and CPU time are printed; the
CPU figure is the steadier one on a shared machine. Target: ratio <= 1.2.
Usage: ``python benchmarks/backtest_bench.py [--columns N] [--bars N] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from fin_meta.backtest import backtest
from fin_meta.seeding import numpy_generator

FEES, SLIPPAGE, INIT_CASH = 5e-4, 5e-4, 1_000_000.0


def best_of_interleaved(fns: dict[str, Callable[[], object]], repeats: int = 3) -> dict[str, tuple[float, float]]:
    """Best wall and best CPU time (seconds) of ``repeats`` calls of each function, calls
    interleaved so that a change in machine load affects every function alike. Everything here
    is single-threaded, so CPU time is the figure least disturbed by other processes."""
    wall = dict.fromkeys(fns, float("inf"))
    cpu = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()  # free the previous call's objects outside the timed region
            start, start_cpu = time.perf_counter(), time.process_time()
            result = fn()
            wall[name] = min(wall[name], time.perf_counter() - start)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
            del result
    return {name: (wall[name], cpu[name]) for name in fns}


def make_inputs(n_bars: int, n_cols: int, seed: int = 0) -> tuple[pd.Series, pd.DataFrame]:
    rng = numpy_generator(seed)
    index = pd.bdate_range("2000-01-03", periods=n_bars, name="date")
    close = pd.Series(100.0 * np.cumprod(1.0 + rng.normal(3e-4, 0.012, n_bars)), index, name="close")
    positions = pd.DataFrame(rng.uniform(-1.0, 1.0, (n_bars, n_cols)), index=index,
                             columns=[f"s{i}" for i in range(n_cols)])
    return close, positions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, default=1000)
    parser.add_argument("--bars", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import vectorbt as vbt

    close, positions = make_inputs(args.bars, args.columns)

    def bare() -> object:
        return vbt.Portfolio.from_orders(
            close, positions, size_type="targetpercent", direction="both", price=np.inf,
            fees=FEES, slippage=SLIPPAGE, init_cash=INIT_CASH, cash_sharing=False, freq="1D",
        )

    def ours() -> object:
        result = backtest(close, positions, fees=FEES, slippage=SLIPPAGE, init_cash=INIT_CASH)
        assert len(result.stats) == args.columns
        return result

    bare()
    ours()  # warm-up: numba compilation and caches
    times = best_of_interleaved({"bare": bare, "ours": ours}, repeats=args.repeats)
    (wall_bare, cpu_bare), (wall_ours, cpu_ours) = times["bare"], times["ours"]
    print(f"backtest_bench: {args.columns} columns x {args.bars} bars, fees {FEES}, slippage {SLIPPAGE}, "
          f"best of {args.repeats}")
    print(f"  bare vbt.Portfolio.from_orders : wall {wall_bare:7.3f} s   cpu {cpu_bare:7.3f} s")
    print(f"  fin_meta.backtest (with stats) : wall {wall_ours:7.3f} s   cpu {cpu_ours:7.3f} s")
    print(f"  ratio ours / bare              : wall {wall_ours / wall_bare:7.3f}     cpu {cpu_ours / cpu_bare:7.3f}"
          "     (target <= 1.2)")


if __name__ == "__main__":
    main()
