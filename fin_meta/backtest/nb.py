"""Numba kernel that turns vectorbt's order records into equity, returns, traded fractions and
the costs paid.

vectorbt's own ``Portfolio.value()`` derives the same equity from the same order records, but
through several full-size intermediate frames (cash flow, cash, asset flow, assets, asset value),
which for 1,000 columns x 5,000 bars costs about a third of the simulation itself. This kernel
makes one pass over the records instead. It is imported lazily by `fin_meta.backtest.engine` (numba is
vectorbt's engine and comes with it). Tests check it against ``Portfolio.value()``/``returns()``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["portfolio_arrays_nb"]


@njit(cache=True)
def portfolio_arrays_nb(records, close, init_cash):  # pragma: no cover - compiled by numba
    """Equity (portfolio value / ``init_cash``), traded fractions and costs per column and bar.

    records: vectorbt order records (fields col, idx, size, price, fees, side; side 1 = sell),
    sorted by column then bar with at most one order per bar, as ``Portfolio.from_orders`` writes
    them without cash sharing. close: (n_bars, 1) shared by all columns, or (n_bars, n_cols).
    init_cash: (n_cols,). Returns ``equity (n_cols, n_bars)``, ``traded (n_cols, n_bars)``
    (|shares bought or sold| x close / value before the trade, 0 without an order), ``cost
    (n_cols, n_bars)`` (the fees plus the slippage paid, |shares| x |fill price - close|, over
    the value before the trade) and ``ok``, False when the records were not in that order (the
    outputs are then meaningless).
    """
    n_bars = close.shape[0]
    n_cols = init_cash.shape[0]
    equity = np.empty((n_cols, n_bars))
    traded = np.zeros((n_cols, n_bars))
    cost = np.zeros((n_cols, n_bars))
    n_records = records.shape[0]
    k = 0
    for col in range(n_cols):
        cc = col if close.shape[1] > 1 else 0
        cash = init_cash[col]
        scale = 1.0 / init_cash[col]
        shares = 0.0
        for i in range(n_bars):
            p = close[i, cc]
            if k < n_records and records[k]["col"] == col and records[k]["idx"] == i:
                value_before = cash + shares * p
                size = records[k]["size"]
                if records[k]["side"] == 1:
                    size = -size
                fill = records[k]["price"]
                if value_before > 0:
                    traded[col, i] = abs(size) * p / value_before
                    cost[col, i] = (records[k]["fees"] + abs(size) * abs(fill - p)) / value_before
                shares += size
                cash -= size * fill + records[k]["fees"]
                k += 1
            equity[col, i] = (cash + shares * p) * scale
    return equity, traded, cost, k == n_records
