"""Backtests on vectorbt: `backtest(prices, positions)` -> `BacktestResult`; `Evaluation` (one
evaluated backtest with its tables); report tables in `fin_meta.backtest.report`.

`fin_meta.backtest` names both this package and the public function: importing a submodule
(`fin_meta.backtest.engine`) makes Python bind the package to the attribute `fin_meta.backtest`,
so the package itself is callable and calls `backtest`, whatever the import order.
"""

import sys
import types
from typing import Any

from fin_meta.backtest.engine import backtest
from fin_meta.backtest.result import BacktestResult, Evaluation

__all__ = ["BacktestResult", "Evaluation", "backtest"]

__wrapped__ = backtest  # `inspect.signature(fin_meta.backtest)` shows backtest's signature


class _CallablePackage(types.ModuleType):
    """This package, callable as `backtest(...)`."""

    def __call__(self, *args: Any, **kwargs: Any) -> BacktestResult:
        return backtest(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
