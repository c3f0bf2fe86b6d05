"""Overhead of `fin_meta.backtest.backtest` over the bare vectorbt call it wraps.

1,000 strategy columns x 5,000 daily bars with fees and slippage, random targets in [-1, 1]
(shorts and flips on every bar). Both sides are warmed up once (numba compilation), then timed
best of 3 in the same process (calls interleaved): ``backtest()`` (validation, the simulation, equity/returns/traded
arrays and all stats) versus ``vbt.Portfolio.from_orders`` alone with the same arguments.
Target: ratio <= 1.2. Usage: ``python benchmarks/backtest_bench.py [--columns N] [--bars N]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from fin_meta.backtest import backtest
from fin_meta.seeding import numpy_generator

FEES, SLIPPAGE, INIT_CASH = 5e-4, 5e-4, 1_000_000.0


def best_of_interleaved(fns: dict[str, Callable[[], object]], repeats: int = 3) -> dict[str, float]:
    """Best wall time (seconds) of ``repeats`` calls of each function, calls interleaved so that
    a change in machine load affects every function alike."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


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
    args = parser.parse_args()

    import vectorbt as vbt

    close, positions = make_inputs(args.bars, args.columns)

    def bare() -> object:
        return vbt.Portfolio.from_orders(
            close, positions, size_type="targetpercent", direction="both", price=np.inf,
            fees=FEES, slippage=SLIPPAGE, init_cash=INIT_CASH, cash_sharing=False, freq="1D",
        )

    def ours() -> object:
        return backtest(close, positions, fees=FEES, slippage=SLIPPAGE, init_cash=INIT_CASH).stats

    bare()
    ours()  # warm-up: numba compilation and caches
    times = best_of_interleaved({"bare": bare, "ours": ours})
    t_bare, t_ours = times["bare"], times["ours"]
    print(f"backtest_bench: {args.columns} columns x {args.bars} bars, fees {FEES}, slippage {SLIPPAGE}")
    print(f"  bare vbt.Portfolio.from_orders : {t_bare:8.3f} s (best of 3)")
    print(f"  fin_meta.backtest (with stats) : {t_ours:8.3f} s (best of 3)")
    print(f"  ratio ours / bare              : {t_ours / t_bare:8.3f}  (target <= 1.2)")


if __name__ == "__main__":
    main()
