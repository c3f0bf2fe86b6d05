"""What a backtest produced: `BacktestResult` (one vectorbt run: stats, returns, equity, the
per-regime breakdown, charts) and `Evaluation` (one evaluated backtest with its tables, what the
jobs log to MLflow through `fin_meta.tracking.records.log_evaluation`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from fin_meta.constants import BARS_PER_YEAR
from fin_meta.errors import DataError
from fin_meta.metrics import summary_stats
from fin_meta.plots.equity import plot_equity_png, plot_portfolio_html

if TYPE_CHECKING:
    import vectorbt as vbt

__all__ = ["BacktestResult", "Evaluation", "year_freq"]


def year_freq(bars_per_year: float) -> str:
    """vectorbt's ``year_freq`` for `bars_per_year` bars a year, with one bar as ``freq="1D"``."""
    return f"{bars_per_year:g} days"


def _frame(obj: pd.Series | pd.DataFrame) -> pd.DataFrame:
    return obj.to_frame() if isinstance(obj, pd.Series) else obj


@dataclass(frozen=True, eq=False, repr=False)
class BacktestResult:
    """The outcome of `backtest`. Series-shaped for one strategy (positions given as a Series),
    DataFrame-shaped (one column per strategy) for many.

    stats: `fin_meta.metrics.summary_stats` of the strategy returns: a dict for a Series of
        positions, a DataFrame (index = strategy columns) for a DataFrame of positions. Keys
        (`fin_meta.metrics.STAT_KEYS`): total_return, cagr, annual_volatility, sharpe (net of
        costs), gross_sharpe (the same positions without costs), sortino, calmar, max_drawdown,
        turnover (per year), cost_drag (costs paid, fraction of equity per year), n_trades
        (filled orders), exposure (mean |position|) -- units in `summary_stats`.
    returns: strategy return of each bar after costs, ``equity[t] / equity[t-1] - 1``.
    equity: portfolio value divided by ``init_cash``: 1.0 before bar 0's trade (so bar 0 already
        includes the cost of the first trade). ``portfolio.value()`` is the same in currency.
    positions: the target positions that were backtested.
    traded: one-way traded fraction of equity at each bar (|shares traded| x close / equity
        before the trade), 0 where vectorbt placed no order.
    portfolio: the vectorbt Portfolio, for everything else vectorbt offers (its own value
        series is not cut at ruin).
    bars_per_year: what every annualised figure used (252 daily, 12 monthly, ...).
    ruined_at: per column, the date its equity reached zero (NaT: never; see `backtest`).
    gross_returns: return of each bar of the same positions without costs (``w[t-1] r[t]``).
    costs: fees plus slippage paid at each bar, a fraction of the equity before the trade.
    """

    stats: dict[str, float] | pd.DataFrame
    returns: pd.Series | pd.DataFrame
    equity: pd.Series | pd.DataFrame
    positions: pd.Series | pd.DataFrame
    traded: pd.Series | pd.DataFrame
    portfolio: vbt.Portfolio
    bars_per_year: float = float(BARS_PER_YEAR)
    ruined_at: pd.Series | None = None
    gross_returns: pd.Series | pd.DataFrame | None = None
    costs: pd.Series | pd.DataFrame | None = None

    def __repr__(self) -> str:
        equity = _frame(self.equity)
        return (f"BacktestResult({equity.shape[1]} column(s) x {equity.shape[0]} bars, "
                f"{equity.index[0]} .. {equity.index[-1]})")

    @property
    def returns_acc(self) -> Any:
        """vectorbt's returns accessor of the strategy returns, annualised with `bars_per_year`."""
        return self.portfolio.get_returns_acc(year_freq=year_freq(self.bars_per_year))

    def vbt_stats(self, **kwargs: Any) -> pd.Series | pd.DataFrame:
        """vectorbt's own ``Portfolio.stats`` (slow; per column) annualised with `bars_per_year`."""
        settings = {"year_freq": year_freq(self.bars_per_year), **kwargs.pop("settings", {})}
        return self.portfolio.stats(settings=settings, **kwargs)

    def by_regime(self, labels: pd.Series) -> pd.DataFrame:
        """The `stats` metrics per regime, computed from the returns, positions and traded
        fractions of the bars carrying each label (bars need not be contiguous: the equity of a
        regime compounds only its own bars; cagr is annualised by its own bar count).

        labels: a Series of regime labels indexed by date; it is aligned to the backtest's
        dates, and bars without a label (missing date or NaN, e.g. a warm-up period) are left out.
        Returns a DataFrame with the `STAT_KEYS` columns plus ``n_bars``; index = regime label
        (sorted) for one strategy, a MultiIndex (column, regime) for many.
        """
        if not isinstance(labels, pd.Series):
            raise DataError(f"labels: expected a pandas Series of regime labels indexed by date, got {type(labels).__name__}")
        if not labels.index.is_unique:
            raise DataError("labels: the index has duplicate dates; pass one label per date")
        aligned = labels.reindex(self.returns.index)
        present = aligned.notna().to_numpy(dtype=bool)
        if not present.any():
            raise DataError(
                "labels: no label falls on any backtest date; pass labels indexed by the same dates "
                f"as the prices ({self.returns.index[0]} .. {self.returns.index[-1]})"
            )
        regimes = sorted(pd.unique(aligned[present]))
        returns, positions, traded = (_frame(x) for x in (self.returns, self.positions, self.traded))
        gross, costs = (None if x is None else _frame(x) for x in (self.gross_returns, self.costs))
        parts = {}
        for regime in regimes:
            mask = present & aligned.eq(regime).to_numpy(dtype=bool, na_value=False)
            part = summary_stats(returns[mask], positions[mask], traded[mask], self.bars_per_year,
                                 gross_returns=None if gross is None else gross[mask],
                                 costs=None if costs is None else costs[mask])
            part["n_bars"] = int(mask.sum())
            parts[regime] = part
        table = pd.concat(parts, names=["regime", "column"]).swaplevel(0, 1)
        table = table.reindex(pd.MultiIndex.from_product([returns.columns, regimes], names=["column", "regime"]))
        if isinstance(self.returns, pd.Series):
            table = table.droplevel("column")
        return table

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Write a PNG of equity and drawdown of every column to ``path`` (atomically); return it."""
        return plot_equity_png(_frame(self.equity), path, title=title)

    def plot_html(self, path: str | Path, include_plotlyjs: bool | str = "cdn") -> Path:
        """Write vectorbt's interactive (plotly) chart to an HTML file (atomically); return it.
        One strategy: vectorbt's portfolio plot (orders, trade PnL, cumulative returns); many:
        equity and drawdown of every column. The default loads plotly.js from its CDN when the
        file is opened (a small file); ``include_plotlyjs=True`` embeds it (~4.5 MB, offline)."""
        return plot_portfolio_html(self.portfolio, _frame(self.equity), path, include_plotlyjs)


@dataclass
class Evaluation:
    """One evaluated backtest: what `fin-meta run` (per source) and `fin-meta backtest` produce and
    `log_evaluation` writes.

    name: short asset name of the source (`sp500`, `SPY`), used in artifact names.
    positions: backtested target positions (bars x strategy columns; the first column is the
        headline one). stats: `BacktestResult.stats` (index = strategy columns).
    table: `fin_meta.backtest.report.results_table` (Sharpe with its bootstrap CI, sorted).
    by_regime: `BacktestResult.by_regime(labels)`, or None without labels.
    result: the `BacktestResult`. prices: the backtested prices frame.
    labels: the regime labels of the backtested bars (causal), or None.
    """

    name: str
    positions: pd.DataFrame
    stats: pd.DataFrame
    table: pd.DataFrame
    by_regime: pd.DataFrame | None
    result: BacktestResult
    prices: pd.DataFrame
    labels: pd.Series | None = None
