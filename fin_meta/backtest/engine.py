"""Backtest target positions with vectorbt: input checks and one ``Portfolio.from_orders`` call for
any number of strategies; what it returns (`BacktestResult`: metrics, per-regime breakdown,
charts) is in `fin_meta.backtest.result`.

Accounting (DESIGN.md): ``positions[t]`` is the target fraction of equity decided at close t;
vectorbt fills it at close t (``size_type="targetpercent"``, ``direction="both"`` so negative
targets go short, no cash sharing: every column is an independent strategy with its own
``init_cash``), charging ``fees`` (fraction of the traded value) and ``slippage`` (fraction of the
price, against us). Without costs the result equals `fin_meta.accounting.simulate` to floating
point. With costs it differs from that reference by second-order terms, both exact consequences
of how vectorbt fills a target percentage:

1. vectorbt converts the target into shares with the equity *before* costs
   (``shares = w * value / close``), so after paying ``cost * traded`` the held weight is
   ``w / (1 - cost * traded)`` instead of the reference's ``w``; the next bar's return then
   differs by about ``cost * traded[t] * w[t] * r[t+1]`` (e.g. 2e-5 for cost 1e-3, a full flip
   and a 1% move).
2. When a long target needs more cash than there is (``w = 1`` with costs), vectorbt buys what
   the cash pays for, ending fully invested (weight exactly ``w``, as in the reference).
3. A buy costs ``slippage + fees * (1 + slippage)`` and a sell ``slippage + fees * (1 - slippage)``
   of the traded value (fees are charged on the slipped price), not ``fees + slippage``.

``tests/test_backtest.py`` reproduces vectorbt to 1e-10 with a model of exactly these rules and
bounds the difference from `simulate`.

Annualisation uses the prices' bars per year (`fin_meta.frequency.bars_per_year_of`: 252 for
daily bars, 12 for monthly, ...); vectorbt's own ``year_freq`` default (365 days) is never used
by fin-meta: `BacktestResult.returns_acc` / `BacktestResult.vbt_stats` give vectorbt's metrics
with the same bars per year.

Gross and costs: `BacktestResult.gross_returns` are the returns of the same target positions
without costs, from the accounting (``w[t-1] r[t]``: what vectorbt gives with fees = slippage =
0, to floating point, without a second simulation); `BacktestResult.costs` is what each bar's
fill paid (fees plus slippage) as a fraction of the equity before it, read from the order
records. `stats` gives `gross_sharpe` and `cost_drag` (`fin_meta.metrics.summary_stats`).

Ruin: when a column's equity reaches zero (a short through a rally, leverage), the strategy is
ruined: its equity stays at zero from that bar on (return -1 on the bar, 0 after, no more
trades), `BacktestResult.ruined_at` gives the date and a `RuinWarning` says so.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fin_meta.accounting import bar_returns
from fin_meta.backtest.result import BacktestResult
from fin_meta.constants import BARS_PER_YEAR
from fin_meta.errors import ConfigError, DataError, StrategyError
from fin_meta.frequency import bars_per_year_of, check_bars_per_year
from fin_meta.metrics import summary_stats

if TYPE_CHECKING:
    import vectorbt as vbt

__all__ = ["backtest", "POSITION_TOLERANCE", "RuinWarning"]


class RuinWarning(UserWarning):
    """A backtested strategy lost all its equity (see `BacktestResult.ruined_at`)."""

POSITION_TOLERANCE: float = 1e-9
"""Positions may exceed ``max_position`` in magnitude by this much (floating-point noise)."""


def _check_costs(fees: float, slippage: float, init_cash: float, max_position: float) -> None:
    for name, value in (("fees", fees), ("slippage", slippage)):
        if not (np.isfinite(value) and 0.0 <= value < 1.0):
            raise ConfigError(f"{name}: must be a fraction in [0, 1) (5e-4 = 5 bp), got {value}")
    if not (np.isfinite(init_cash) and init_cash > 0):
        raise ConfigError(f"init_cash: must be a positive amount, got {init_cash}")
    if not (np.isfinite(max_position) and max_position > 0):
        raise ConfigError(f"max_position: must be a positive fraction of equity, got {max_position}")


def _close_of(prices: pd.DataFrame | pd.Series, columns: pd.Index) -> pd.Series | pd.DataFrame:
    """The close: a prices frame's ``close`` column, a Series of closes, or a frame of closes
    with one column per strategy column."""
    if isinstance(prices, pd.Series):
        close = prices
    elif isinstance(prices, pd.DataFrame) and "close" in prices.columns:
        close = prices["close"]
    elif isinstance(prices, pd.DataFrame) and prices.columns.equals(columns):
        close = prices
    else:
        found = list(prices.columns) if isinstance(prices, pd.DataFrame) else type(prices).__name__
        raise DataError(
            f"prices: expected a prices frame with a 'close' column, a Series of closes, or one close "
            f"column per positions column; got {found}"
        )
    if not (close.index.is_unique and close.index.is_monotonic_increasing):
        raise DataError("prices: the index must be strictly increasing dates without duplicates")
    values = close.to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataError(f"prices: close must be finite and positive; got {values.reshape(len(values), -1)[row]} on {close.index[row]}")
    return close.astype(np.float64)


def _check_index(prices_index: pd.Index, positions_index: pd.Index) -> None:
    if positions_index.equals(prices_index):
        return
    n = min(len(prices_index), len(positions_index))
    same = np.asarray(prices_index[:n] == positions_index[:n])
    first = int(np.argmin(same)) if not same.all() else n
    pos_at = positions_index[first] if first < len(positions_index) else "(no more bars)"
    px_at = prices_index[first] if first < len(prices_index) else "(no more bars)"
    raise StrategyError(
        f"positions: dates do not match the prices' dates ({len(positions_index)} vs {len(prices_index)} bars); "
        f"first mismatch at bar {first}: positions {pos_at}, prices {px_at}. "
        "Compute positions from the same prices, or reindex them to prices.index (0 = flat)."
    )


def _check_positions(values: np.ndarray, frame: pd.DataFrame, max_position: float) -> None:
    """Finite and within [-max_position, max_position] (fast reductions; slow path only to name
    the first offending cell)."""
    high, low = values.max(axis=0), values.min(axis=0)
    limit = max_position + POSITION_TOLERANCE
    bad_cols = ~(np.isfinite(high) & np.isfinite(low) & (high <= limit) & (low >= -limit))
    if not bad_cols.any():
        return
    col = int(np.argmax(bad_cols))
    column = values[:, col]
    bad = ~np.isfinite(column) | (np.abs(np.nan_to_num(column, nan=0.0)) > limit)
    row = int(np.argmax(bad))
    value, name, date = column[row], frame.columns[col], frame.index[row]
    if not np.isfinite(value):
        raise StrategyError(
            f"positions: column {name!r} is {value} on {date}; positions must be finite "
            "(use 0 for flat, e.g. during a warm-up period)"
        )
    raise StrategyError(
        f"positions: column {name!r} is {value} on {date}, outside [-{max_position}, {max_position}]; "
        "clip the strategy's output or raise max_position"
    )


def _positions_frame(positions: pd.Series | pd.DataFrame) -> pd.DataFrame:
    if isinstance(positions, pd.Series):
        frame = positions.to_frame(name=positions.name if positions.name is not None else "positions")
    elif isinstance(positions, pd.DataFrame):
        frame = positions
    else:
        raise StrategyError(f"positions: expected a pandas Series or DataFrame, got {type(positions).__name__}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise StrategyError(f"positions: empty ({frame.shape[0]} bars x {frame.shape[1]} columns)")
    if not frame.columns.is_unique:
        dupes = sorted(set(frame.columns[frame.columns.duplicated()]), key=str)
        raise StrategyError(f"positions: duplicate column names {dupes}; give every strategy its own name")
    try:
        return frame.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise StrategyError(f"positions: must be numbers (fractions of equity): {exc}") from exc


def _run_vectorbt(close: pd.Series | pd.DataFrame, positions: pd.Series | pd.DataFrame, fees: float,
                  slippage: float, init_cash: float, freq: str) -> vbt.Portfolio:
    import vectorbt as vbt

    return vbt.Portfolio.from_orders(
        close,
        positions,
        size_type="targetpercent",
        direction="both",
        price=np.inf,  # fill at this bar's close
        fees=fees,
        slippage=slippage,
        init_cash=init_cash,
        cash_sharing=False,
        freq=freq,
    )


def _portfolio_arrays(portfolio: vbt.Portfolio, close: np.ndarray, init_cash: float,
                      n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(equity, returns, traded, costs) as bars x columns arrays (F-ordered) from the order records."""
    from fin_meta.backtest.nb import portfolio_arrays_nb  # numba: vectorbt's engine, loaded with it

    close_2d = np.ascontiguousarray(close.reshape(close.shape[0], -1))
    equity_cb, traded_cb, cost_cb, ok = portfolio_arrays_nb(
        portfolio.order_records, close_2d, np.full(n_cols, float(init_cash))
    )
    if not ok:  # vectorbt changed its record layout: fail loudly, never silently
        raise RuntimeError("vectorbt order records are not sorted by column and bar")
    equity = equity_cb.T
    returns = np.empty_like(equity)
    returns[0] = equity[0] - 1.0
    np.divide(equity[1:], equity[:-1], out=returns[1:])
    returns[1:] -= 1.0
    return equity, returns, traded_cb.T, cost_cb.T


def _gross_returns(close: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-bar returns of the target weights `values` (bars x columns) without costs, from the
    accounting: ``w[t-1] r[t]`` (0 at bar 0), what vectorbt gives with fees = slippage = 0 (to
    floating point). A bar with a return <= -1 ruins the column (-1 on it, 0 after)."""
    r = bar_returns(close)
    gross = np.zeros_like(values)
    np.multiply(values[:-1], r[1:].reshape(len(r) - 1, -1), out=gross[1:])
    dead = gross <= -1.0
    if dead.any():
        _ruin_columns(np.cumprod(np.maximum(1.0 + gross, 0.0), axis=0), gross)
    return gross


def _ruin_columns(equity: np.ndarray, returns: np.ndarray, *per_bar: np.ndarray) -> np.ndarray:
    """In place: from the first bar whose equity is <= 0, equity is 0, the return of that bar
    -1 and of every later bar 0, and the `per_bar` arrays (traded, costs) 0 after that bar.
    Returns the ruin bar per column (-1: never)."""
    dead = equity <= 0.0
    ruined = np.where(dead.any(axis=0), dead.argmax(axis=0), -1)
    if (ruined < 0).all():
        return ruined
    bars = np.arange(equity.shape[0])[:, None]
    after = (ruined >= 0) & (bars >= ruined)
    equity[after] = 0.0
    returns[after] = 0.0
    returns[bars == ruined] = -1.0
    for arr in per_bar:
        arr[after & (bars > ruined)] = 0.0
    return ruined


def _resolve_bars_per_year(prices: pd.DataFrame | pd.Series, given: float | None) -> float:
    if given is not None:
        return check_bars_per_year(given)
    if isinstance(prices.index, pd.DatetimeIndex):
        return bars_per_year_of(prices)
    return float(BARS_PER_YEAR)


def backtest(
    prices: pd.DataFrame | pd.Series,
    positions: pd.Series | pd.DataFrame,
    fees: float = 0.0,
    slippage: float = 0.0,
    init_cash: float = 1_000_000.0,
    freq: str = "1D",
    max_position: float = 1.0,
    bars_per_year: float | None = None,
) -> BacktestResult:
    """Backtest target positions on one vectorbt ``Portfolio.from_orders`` call.

    prices: a prices frame (its ``close`` is used), a Series of closes, or a frame of closes with
        the same columns as ``positions`` (one asset per strategy).
    positions: target fraction of equity per bar (negative = short), decided at close t and held
        to close t+1; a Series (one strategy) or a DataFrame (one column per strategy), on exactly
        the prices' dates, finite, within [-max_position, max_position].
    fees: fraction of each order's value (5e-4 = 5 bp). slippage: fraction of the price paid
        against us on each fill. init_cash: starting cash per strategy (currency).
    freq: vectorbt's unit of one bar (keep "1D": annualisation uses ``bars_per_year``).
    bars_per_year: for every annualised figure; None: the prices' own (`load_prices` records it,
        else it is inferred from the dates: 252 daily, 52 weekly, 12 monthly, ...).
    Raises StrategyError (positions), DataError (prices), ConfigError (numbers). A strategy whose
    equity reaches zero is ruined (see the module docstring; `RuinWarning`).
    """
    _check_costs(fees, slippage, init_cash, max_position)
    frame = _positions_frame(positions)
    close = _close_of(prices, frame.columns)
    _check_index(close.index, frame.index)
    values = frame.to_numpy()
    _check_positions(values, frame, max_position)

    single = isinstance(positions, pd.Series)
    # a Series stays a Series so that the vectorbt Portfolio is one-column shaped (pf.value() a Series)
    portfolio = _run_vectorbt(close, frame.iloc[:, 0] if single else frame, fees, slippage, init_cash, freq)
    equity, returns, traded, costs = _portfolio_arrays(portfolio, close.to_numpy(), init_cash, values.shape[1])
    ruined = _ruin_columns(equity, returns, traded, costs)
    gross = returns if fees == 0.0 and slippage == 0.0 else _gross_returns(close.to_numpy(), values)
    per_year = _resolve_bars_per_year(prices, bars_per_year)
    if single:
        net = returns[:, 0]
        stats = summary_stats(net, values[:, 0], traded[:, 0], per_year, equity=equity[:, 0],
                              gross_returns=net if gross is returns else gross[:, 0], costs=costs[:, 0])
    else:
        stats = summary_stats(returns, values, traded, per_year, equity=equity, gross_returns=gross, costs=costs)
        stats.index = frame.columns
    ruined_at = pd.Series([frame.index[i] if i >= 0 else pd.NaT for i in ruined], index=frame.columns,
                          dtype="datetime64[ns]" if isinstance(frame.index, pd.DatetimeIndex) else object)
    for column, date in ruined_at.dropna().items():
        when = date.date() if isinstance(date, pd.Timestamp) else date
        warnings.warn(f"{column} was ruined on {when}: its equity reached zero and stays there",
                      RuinWarning, stacklevel=2)

    def wrap(arr: np.ndarray) -> pd.Series | pd.DataFrame:
        if single:
            return pd.Series(arr[:, 0], index=frame.index, name=frame.columns[0])
        return pd.DataFrame(arr, index=frame.index, columns=frame.columns, copy=False)

    return BacktestResult(
        stats=stats,
        returns=wrap(returns),
        equity=wrap(equity),
        positions=frame.iloc[:, 0] if single else frame,
        traded=wrap(traded),
        portfolio=portfolio,
        gross_returns=wrap(gross),
        costs=wrap(costs),
        bars_per_year=per_year,
        ruined_at=ruined_at,
    )
