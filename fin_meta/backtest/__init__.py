"""Backtests on vectorbt: `backtest(prices, positions)` -> `BacktestResult`; report tables."""

from fin_meta.backtest.engine import BacktestResult, backtest

__all__ = ["BacktestResult", "backtest"]
