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

from collections.abc import Callable
from typing import Literal

import numpy as np
import pandas as pd

from fin_meta.constants import BARS_PER_YEAR
from fin_meta.errors import ConfigError, DataError

__all__ = [
    "STAT_KEYS", "total_return", "cagr", "annual_volatility", "annualised_sharpe", "sortino",
    "max_drawdown", "drawdown", "calmar", "summary_stats", "bootstrap_ci", "block_length_for", "resample_indices",
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


def _as_returns(returns: object, name: str = "returns") -> np.ndarray:
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
    r = _as_returns(returns)
    return _scalar(_growth(r) - 1.0)


def cagr(returns: object, periods_per_year: float = BARS_PER_YEAR) -> FloatOrArray:
    """Compound annual growth rate, a fraction per year: growth ** (periods_per_year / n_bars) - 1.
    -1.0 when the equity is wiped out (growth <= 0)."""
    r = _as_returns(returns)
    return _scalar(_cagr_from_growth(_growth(r), r.shape[0], periods_per_year))


def annual_volatility(returns: object, periods_per_year: float = BARS_PER_YEAR) -> FloatOrArray:
    """Sample standard deviation of per-bar returns times sqrt(periods_per_year), a fraction per year."""
    r = _as_returns(returns)
    return _scalar(_std(r) * np.sqrt(periods_per_year))


def annualised_sharpe(returns: object, periods_per_year: float = BARS_PER_YEAR) -> FloatOrArray:
    """Annualised Sharpe ratio (risk-free 0): mean(r) / std(r, ddof=1) * sqrt(periods_per_year).
    NaN when the returns do not vary."""
    r = _as_returns(returns)
    return _scalar(_safe_ratio(r.mean(axis=0), _std(r)) * np.sqrt(periods_per_year))


def sortino(returns: object, periods_per_year: float = BARS_PER_YEAR) -> FloatOrArray:
    """Annualised Sortino ratio (target 0): mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(periods_per_year).
    NaN when no bar loses."""
    r = _as_returns(returns)
    return _scalar(_safe_ratio(r.mean(axis=0), _downside_deviation(r)) * np.sqrt(periods_per_year))


def max_drawdown(returns: object) -> FloatOrArray:
    """Largest peak-to-trough fall of the equity (start 1.0), as a negative fraction
    (-0.25 = the equity fell 25% below its running peak); 0.0 when it never fell."""
    return _scalar(_max_drawdown(_as_returns(returns)))


def calmar(returns: object, periods_per_year: float = BARS_PER_YEAR) -> FloatOrArray:
    """CAGR divided by the magnitude of the maximum drawdown; NaN without a drawdown."""
    r = _as_returns(returns)
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
    r = _as_returns(returns)
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
        g_mean = gross.mean(axis=0)
        g_var = (_sum_of_squares(gross) - n_bars * g_mean**2) / max(n_bars - 1, 1)
        gross_sharpe = _safe_ratio(g_mean, np.sqrt(np.maximum(g_var, 0.0))) * root
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


def resample_indices(n_bars: int, n_resamples: int, rng: np.random.Generator, block_length: float | None,
                     block: Literal["stationary", "circular"]) -> np.ndarray:
    """Bootstrap bar indices, shape (n_bars, n_resamples): iid (``block_length`` None), or in
    blocks of consecutive bars wrapping round the end, each from a random bar; ``stationary``
    blocks have geometric lengths of mean ``block_length`` (Politis-Romano), ``circular`` fixed."""
    if block_length is None:
        return rng.integers(0, n_bars, size=(n_bars, n_resamples))
    small = np.int32 if n_bars * n_resamples < 2**31 else np.int64  # resamples x bars from here: scans run along
    if block == "stationary":  # contiguous memory, in half the bytes of int64 (same values as bars x resamples)
        new_block = np.ascontiguousarray((rng.random((n_bars, n_resamples)) < 1.0 / block_length).T)
    else:
        new_block = np.broadcast_to(np.arange(n_bars) % int(block_length) == 0, (n_resamples, n_bars)).copy()
    new_block[:, 0] = True
    t = np.arange(n_bars, dtype=small)
    offset = np.maximum.accumulate(np.where(new_block, t, small(0)), axis=1)  # the block's first bar
    np.subtract(t, offset, out=offset)  # bars since then
    flat = np.cumsum(new_block, axis=1, dtype=small)  # block number + 1, then flat position in `starts`
    flat *= n_resamples
    flat += np.arange(n_resamples, dtype=small)[:, None] - n_resamples
    index = rng.integers(0, n_bars, size=(n_bars, n_resamples)).ravel().take(flat)  # each block's first index
    index += offset
    np.subtract(index, n_bars, out=index, where=index >= n_bars)  # wrap round the end (index < 2 n_bars)
    return np.ascontiguousarray(index.T)


def block_length_for(n_bars: int, periods_per_year: float = BARS_PER_YEAR) -> float:
    """Mean block length (bars) of the stationary bootstrap of every reported CI: a month of bars
    (21 daily, 4 weekly, 1 monthly), at most `n_bars`; blocks keep autocorrelation and clustered
    volatility inside each resample."""
    return float(min(max(1.0, round(periods_per_year / 12.0)), max(1, int(n_bars))))


def bootstrap_ci(
    returns: object,
    statistic: Callable[[np.ndarray], FloatOrArray] = annualised_sharpe,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
    block_length: float | None = None,
    block: Literal["stationary", "circular"] = "stationary",
) -> tuple[float, float] | list[tuple[float, float]]:
    """Percentile bootstrap confidence interval ``(low, high)`` of ``statistic`` of one return
    series; for a ``bars x columns`` array, one interval per column from the SAME resampled bars
    (paired across columns, and one index draw instead of one per column).

    ``statistic`` is called on a ``bars x n_resamples`` array and must return one value per
    column (every function of this module does). ``rng`` is required (no hidden global state).
    ``block_length`` (bars) switches from the iid bootstrap to a block bootstrap that keeps
    autocorrelation: ``block="stationary"`` (random geometric block lengths, mean
    ``block_length``) or ``"circular"`` (fixed length). Resamples whose statistic is undefined
    (NaN) are dropped; if none is left the interval is (NaN, NaN).
    """
    r = _as_returns(returns)
    if r.ndim not in (1, 2):
        raise DataError(f"returns: bootstrap_ci takes a return series or bars x columns, got shape {r.shape}")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError("rng: pass a numpy Generator, e.g. fin_meta.seeding.numpy_generator(seed)")
    if int(n_resamples) < 1:
        raise ConfigError(f"n_resamples: must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence: must be strictly between 0 and 1, got {confidence}")
    if block not in ("stationary", "circular"):
        raise ConfigError(f"block: must be 'stationary' or 'circular', got {block!r}")
    if block_length is not None and not 1.0 <= block_length <= r.shape[0]:
        raise ConfigError(
            f"block_length: must be between 1 and the number of bars ({r.shape[0]}), got {block_length}"
        )
    idx = resample_indices(r.shape[0], int(n_resamples), rng, block_length, block)
    cis = [_percentiles(statistic(column[idx]), confidence) for column in r.reshape(r.shape[0], -1).T]
    return cis[0] if r.ndim == 1 else cis


def _percentiles(values: FloatOrArray, confidence: float) -> tuple[float, float]:
    """The central `confidence` interval of the finite `values` (NaN, NaN when none is)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if (values := values[np.isfinite(values)]).size == 0:
        return (float("nan"), float("nan"))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return (float(low), float(high))
