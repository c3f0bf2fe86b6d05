"""Performance metrics of per-bar strategy returns, vectorised across columns.

Every function takes simple (not log) per-bar returns, a 1-D array (one strategy) or a 2-D array
``bars x columns`` (many strategies; computed column-wise along axis 0), and returns a float or a
1-D array with one value per column. Annualisation uses ``periods_per_year`` bars per year
(252 for daily bars, DESIGN.md); the risk-free rate is 0. A ratio whose denominator is zero
(no variation, no losing bar, no drawdown) is undefined and returned as NaN.

Equity is the compounded returns starting at 1.0 *before* the first bar, so a loss on the first
bar (e.g. the cost of the initial trade) counts as a drawdown.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fin_meta.constants import BARS_PER_YEAR
from fin_meta.errors import DataError

__all__ = [
    "STAT_KEYS", "total_return", "cagr", "annual_volatility", "annualised_sharpe", "sortino",
    "max_drawdown", "drawdown", "calmar", "summary_stats", "as_returns", "sharpe_from_sums",
]

STAT_KEYS: tuple[str, ...] = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "gross_sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "turnover",
    "cost_drag",
    "n_trades",
    "exposure",
)
"""The keys of `summary_stats` (and of `BacktestResult.stats`), in order."""

FloatOrArray = float | np.ndarray


def as_returns(returns: object, name: str = "returns") -> np.ndarray:
    """Returns as a float64 array of 1 or 2 dimensions with at least one bar, all finite."""
    arr = np.asarray(returns, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise DataError(f"{name}: expected a 1-D (bars) or 2-D (bars x columns) array, got {arr.ndim}-D")
    if arr.shape[0] == 0:
        raise DataError(f"{name}: no bars (empty array); pass at least one bar of returns")
    if not np.isfinite(np.sum(arr, axis=0)).all():  # a NaN or inf anywhere makes its column's sum non-finite
        raise DataError(f"{name}: contains NaN or infinite values; drop or fill them before computing metrics")
    return arr


def _scalar(value: np.ndarray) -> FloatOrArray:
    """A 0-d result as a Python float, else the array itself."""
    return float(value) if np.ndim(value) == 0 else value


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 or only rounding noise (|den| <= 1e-10 |num|: e.g. the
    float std of a constant series), an undefined ratio."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=(den != 0) & (np.abs(den) > 1e-10 * np.abs(num)))
    return out


def _growth(r: np.ndarray) -> np.ndarray:
    """Final equity per column (start 1.0): product of (1 + r)."""
    return np.prod(1.0 + r, axis=0)


def _cagr_from_growth(growth: np.ndarray, n_bars: int, periods_per_year: float) -> np.ndarray:
    years = n_bars / periods_per_year
    with np.errstate(invalid="ignore"):
        return np.where(growth > 0, np.power(np.maximum(growth, 0.0), 1.0 / years) - 1.0, -1.0)


def _std(r: np.ndarray) -> np.ndarray:
    """Sample standard deviation (ddof=1) along axis 0; 0.0 for a single bar."""
    if r.shape[0] < 2:
        return np.zeros(r.shape[1:])
    return np.std(r, axis=0, ddof=1)


def _sum_of_squares(x: np.ndarray) -> np.ndarray:
    """Sum of squares along axis 0, without a temporary array."""
    return np.einsum("i...,i...->...", x, x)


def _downside_deviation(r: np.ndarray) -> np.ndarray:
    """Root mean square of the negative returns (target 0), over all bars."""
    return np.sqrt(_sum_of_squares(np.minimum(r, 0.0)) / r.shape[0])


def drawdown(equity: object) -> np.ndarray:
    """Drawdown of an equity curve (bars, or bars x columns) that starts from 1.0 before its
    first bar: equity / running peak - 1, a fraction <= 0 at every bar."""
    eq = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(eq, axis=0)
    np.maximum(peak, 1.0, out=peak)  # the starting equity 1.0 is the first peak
    return eq / peak - 1.0


def _max_drawdown_of_equity(equity: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Most negative drawdown per column; ``out`` (equity's shape) is scratch space."""
    ratio = np.maximum.accumulate(equity, axis=0, out=out)
    np.maximum(ratio, 1.0, out=ratio)
    np.divide(equity, ratio, out=ratio)
    return np.minimum(ratio.min(axis=0) - 1.0, 0.0)


def _max_drawdown(r: np.ndarray) -> np.ndarray:
    return _max_drawdown_of_equity(np.cumprod(1.0 + r, axis=0))


def total_return(returns: object) -> FloatOrArray:
    """Compounded return over all bars, as a fraction (0.25 = +25%)."""
    r = as_returns(returns)
    return _scalar(_growth(r) - 1.0)


def cagr(returns: object, periods_per_year: float = BARS_PER_YEAR) -> FloatOrArray:
    """Compound annual growth rate, a fraction per year: growth ** (periods_per_year / n_bars) - 1.
    -1.0 when the equity is wiped out (growth <= 0)."""
    r = as_returns(returns)
    return _scalar(_cagr_from_growth(_growth(r), r.shape[0], periods_per_year))


def annual_volatility(returns: object, periods_per_year: float = BARS_PER_YEAR) -> FloatOrArray:
    """Sample standard deviation of per-bar returns times sqrt(periods_per_year), a fraction per year."""
    r = as_returns(returns)
    return _scalar(_std(r) * np.sqrt(periods_per_year))


def annualised_sharpe(returns: object, periods_per_year: float = BARS_PER_YEAR) -> FloatOrArray:
    """Annualised Sharpe ratio (risk-free 0): mean(r) / std(r, ddof=1) * sqrt(periods_per_year).
    NaN when the returns do not vary."""
    r = as_returns(returns)
    return _scalar(_safe_ratio(r.mean(axis=0), _std(r)) * np.sqrt(periods_per_year))


def sharpe_from_sums(total: np.ndarray, squares: np.ndarray, n_bars: int,
                     periods_per_year: float = BARS_PER_YEAR) -> np.ndarray:
    """`annualised_sharpe` of series known by their sums `total` and sums of squares `squares`
    over `n_bars` bars (arrays of any shape), up to rounding; a variance within rounding of zero
    (below 1e-12 of the mean square) is zero, and the Sharpe NaN."""
    mean = total / n_bars
    var = np.maximum(squares - total * mean, 0.0) / max(n_bars - 1, 1)
    var = np.where(var <= 1e-12 * squares / n_bars, 0.0, var)
    return _safe_ratio(mean, np.sqrt(var)) * np.sqrt(periods_per_year)


def sortino(returns: object, periods_per_year: float = BARS_PER_YEAR) -> FloatOrArray:
    """Annualised Sortino ratio (target 0): mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(periods_per_year).
    NaN when no bar loses."""
    r = as_returns(returns)
    return _scalar(_safe_ratio(r.mean(axis=0), _downside_deviation(r)) * np.sqrt(periods_per_year))


def max_drawdown(returns: object) -> FloatOrArray:
    """Largest peak-to-trough fall of the equity (start 1.0), as a negative fraction
    (-0.25 = the equity fell 25% below its running peak); 0.0 when it never fell."""
    return _scalar(_max_drawdown(as_returns(returns)))


def calmar(returns: object, periods_per_year: float = BARS_PER_YEAR) -> FloatOrArray:
    """CAGR divided by the magnitude of the maximum drawdown; NaN without a drawdown."""
    r = as_returns(returns)
    growth = _cagr_from_growth(_growth(r), r.shape[0], periods_per_year)
    return _scalar(_safe_ratio(growth, -_max_drawdown(r)))


def _aligned(arr: object, shape: tuple[int, ...], name: str) -> np.ndarray:
    out = np.asarray(arr, dtype=np.float64)
    if out.shape != shape:
        raise DataError(f"{name}: shape {out.shape} does not match the returns' shape {shape}")
    return out


def _columns_of(obj: object, n_cols: int) -> pd.Index:
    if isinstance(obj, pd.DataFrame):
        return obj.columns
    return pd.RangeIndex(n_cols)


def summary_stats(
    returns: object,
    positions: object,
    traded: object,
    periods_per_year: float = BARS_PER_YEAR,
    equity: object | None = None,
    *,
    gross_returns: object | None = None,
    costs: object | None = None,
) -> dict[str, float] | pd.DataFrame:
    """The standard metrics of one strategy (1-D inputs -> dict) or many (2-D ``bars x columns``
    inputs -> DataFrame, one row per column, named after a DataFrame's columns).

    Inputs, all the same shape: ``returns`` per-bar strategy returns (after costs); ``positions``
    the target exposure held after each bar's trade (fraction of equity); ``traded`` the one-way
    traded fraction of equity at each bar (|new weight - drifted weight|, 0 where no order);
    optionally ``equity``, the already computed ``cumprod(1 + returns)`` (saves a pass);
    ``gross_returns``, the per-bar returns of the same positions with zero costs, and ``costs``,
    the cost paid at each bar (fees + slippage) as a fraction of the equity before that bar's
    trade (both None: `gross_sharpe` / `cost_drag` are NaN, unknown).

    Keys (`STAT_KEYS`):
      total_return       compounded return over all bars, fraction
      cagr               compound annual growth rate, fraction per year
      annual_volatility  std(returns, ddof=1) * sqrt(periods_per_year), fraction per year
      sharpe             annualised Sharpe ratio, risk-free 0, net of costs
      gross_sharpe       the same of ``gross_returns`` (the same positions without costs)
      sortino            annualised Sortino ratio, target 0
      calmar             cagr / |max_drawdown|
      max_drawdown       worst peak-to-trough fall of equity, negative fraction
      turnover           mean annual one-way traded fraction of equity: mean(traded) * periods_per_year
                         (1.0 = the whole equity bought or sold once a year)
      cost_drag          mean per-bar cost times periods_per_year, a fraction of equity per year
                         (0.01 = costs take 1% of equity a year). Per bar the net return is
                         ``(1 + gross[t]) (1 - costs[t]) - 1`` to first order, so cost_drag is
                         the gap between the gross and net mean returns, annualised (up to second-
                         order terms: ``costs x returns``, and vectorbt sizing a target on the
                         equity before its costs, `fin_meta.backtest.engine`); a flat cost rate
                         c gives ``c * turnover``
      n_trades           number of bars with an order (traded > 0), a count
      exposure           mean |position|, fraction of equity (1.0 = always fully invested long or short)
    """
    r = as_returns(returns)
    pos = _aligned(positions, r.shape, "positions")
    trd = _aligned(traded, r.shape, "traded")
    eq = np.cumprod(1.0 + r, axis=0) if equity is None else _aligned(equity, r.shape, "equity")
    gross = None if gross_returns is None else _aligned(gross_returns, r.shape, "gross_returns")
    cost = None if costs is None else _aligned(costs, r.shape, "costs")
    n_bars = r.shape[0]
    root = np.sqrt(periods_per_year)

    mean = r.mean(axis=0)
    scratch = np.subtract(r, mean)  # the one temporary array, reused below
    std = np.sqrt(_sum_of_squares(scratch) / (n_bars - 1)) if n_bars > 1 else np.zeros_like(mean)
    unknown = np.full(mean.shape, np.nan)
    if gross is None or gross is r:  # the same returns (no costs): the same Sharpe, bit for bit
        gross_sharpe = unknown if gross is None else _safe_ratio(mean, std) * root
    else:  # one pass, no temporary: mean and sum of squares (returns are small, no cancellation)
        gross_sharpe = sharpe_from_sums(gross.sum(axis=0), _sum_of_squares(gross), n_bars, periods_per_year)
    np.minimum(r, 0.0, out=scratch)
    downside = np.sqrt(_sum_of_squares(scratch) / n_bars)
    np.abs(pos, out=scratch)
    exposure = scratch.mean(axis=0)
    growth = eq[-1]
    cagr_ = _cagr_from_growth(growth, n_bars, periods_per_year)
    mdd = _max_drawdown_of_equity(eq, out=scratch)
    stats = {
        "total_return": growth - 1.0,
        "cagr": cagr_,
        "annual_volatility": std * root,
        "sharpe": _safe_ratio(mean, std) * root,
        "gross_sharpe": gross_sharpe,
        "sortino": _safe_ratio(mean, downside) * root,
        "calmar": _safe_ratio(cagr_, -mdd),
        "max_drawdown": mdd,
        "turnover": trd.mean(axis=0) * periods_per_year,
        "cost_drag": unknown if cost is None else cost.mean(axis=0) * periods_per_year,
        "n_trades": np.count_nonzero(trd, axis=0),  # traded >= 0: nonzero means an order
        "exposure": exposure,
    }
    if r.ndim == 1:
        return {k: (int(v) if k == "n_trades" else float(v)) for k, v in stats.items()}
    frame = pd.DataFrame(stats, index=_columns_of(returns, r.shape[1]), columns=list(STAT_KEYS))
    frame["n_trades"] = frame["n_trades"].astype(np.int64)
    return frame
