"""The probabilistic and the deflated Sharpe ratio (Bailey & López de Prado 2012, 2014).

Conventions (those of `vectorbt.returns.metrics.deflated_sharpe_ratio`, which
`deflated_sharpe_ratio` calls; a test checks them on the paper's worked example):

- every Sharpe ratio is **per bar**, not annualised: mean(r) / std(r, ddof=1) of the per-bar
  returns, risk-free 0 (annualised = per bar x sqrt(bars_per_year); a variance of annualised
  Sharpes = the per-bar variance x bars_per_year);
- `kurtosis` is the plain (Pearson) kurtosis, 3 for normal returns, not the excess kurtosis;
  skew and kurtosis are the population moments (vectorbt's `bias=True`);
- `n_bars` is the number of returns T; the standard error uses T - 1.

    PSR(SR*) = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - skew SR + (kurtosis - 1) / 4 SR^2))
    SR0      = sqrt(V) ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e)))   (g: Euler-Mascheroni)
    DSR      = PSR(SR0)

SR0 approximates the expected maximum Sharpe of N independent trials whose Sharpes have
variance V (and mean 0): the Sharpe that the best of N skill-less trials reaches by luck. A DSR
of 0.95 says: 95% probability that the true Sharpe beats that. N = 1 gives SR0 = 0 (DSR = PSR).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fin_meta.errors import DataError
from fin_meta.metrics import annualised_sharpe

__all__ = ["SharpeMoments", "deflated_sharpe_ratio", "expected_max_sharpe", "probabilistic_sharpe_ratio",
           "sharpe_moments"]

FloatOrArray = float | np.ndarray


@dataclass(frozen=True)
class SharpeMoments:
    """What the PSR reads from a return series, per column: `sharpe` per bar (NaN when the
    returns do not vary), `n_bars` (T), `skew` and `kurtosis` (plain, 3 for normal; 0 and 3 when
    the returns do not vary)."""

    sharpe: FloatOrArray
    n_bars: int
    skew: FloatOrArray
    kurtosis: FloatOrArray


def sharpe_moments(returns: object) -> SharpeMoments:
    """Per-bar Sharpe, bar count, skew and kurtosis of `returns` (per-bar returns, a 1-D array
    or bars x columns, finite; `fin_meta.metrics` rules): floats for 1-D, arrays per column."""
    r = np.asarray(returns, dtype=np.float64)
    sharpe = annualised_sharpe(r, 1.0)  # checks the array; one bar a "year": the per-bar Sharpe
    centred = r - r.mean(axis=0)
    m2 = np.mean(centred**2, axis=0)
    flat = m2 <= 1e-300
    safe = np.where(flat, 1.0, m2)
    skew = np.where(flat, 0.0, np.mean(centred**3, axis=0) / safe**1.5)
    kurt = np.where(flat, 3.0, np.mean(centred**4, axis=0) / safe**2)
    if r.ndim == 1:
        return SharpeMoments(float(sharpe), r.shape[0], float(skew), float(kurt))
    return SharpeMoments(np.asarray(sharpe), r.shape[0], skew, kurt)


def _check_trials(n_trials: int, sharpe_variance: float) -> None:
    if isinstance(n_trials, bool) or int(n_trials) != n_trials or n_trials < 1:
        raise DataError(f"n_trials: the number of trials must be a whole number >= 1, got {n_trials!r}")
    if not (np.isfinite(sharpe_variance) and sharpe_variance >= 0):
        raise DataError(f"sharpe_variance: the variance of the trials' per-bar Sharpes must be finite and >= 0, "
                        f"got {sharpe_variance!r}")


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """SR0: the expected maximum per-bar Sharpe of `n_trials` independent skill-less trials
    whose per-bar Sharpes have variance `sharpe_variance` (vectorbt's `approx_exp_max_sharpe`
    with mean 0); 0.0 for one trial or no variance."""
    from vectorbt.returns.metrics import approx_exp_max_sharpe

    _check_trials(n_trials, sharpe_variance)
    if n_trials == 1 or sharpe_variance == 0:
        return 0.0
    return float(approx_exp_max_sharpe(0.0, float(sharpe_variance), int(n_trials)))


def _variance_term(sharpe: np.ndarray, skew: np.ndarray, kurtosis: np.ndarray) -> np.ndarray:
    """1 - skew SR + (kurtosis - 1) / 4 SR^2: the PSR's variance factor (must be > 0)."""
    return 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2


def _inputs(sharpe: object, n_bars: object, skew: object, kurtosis: object) -> tuple[np.ndarray, ...]:
    sr, t, g3, g4 = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (sharpe, n_bars, skew, kurtosis)))
    if np.any(t < 2):
        raise DataError(f"n_bars: the PSR needs at least 2 returns per series, got {np.min(t):g}")
    return sr, t, g3, g4


def _scalar(value: np.ndarray) -> FloatOrArray:
    return float(value) if np.ndim(value) == 0 else value


def probabilistic_sharpe_ratio(sharpe: object, n_bars: object, skew: object = 0.0, kurtosis: object = 3.0,
                               benchmark: float = 0.0) -> FloatOrArray:
    """PSR: the probability that the true per-bar Sharpe exceeds `benchmark` (per bar), given the
    estimate `sharpe` from `n_bars` returns with `skew` and plain `kurtosis` (module docstring).
    NaN where the estimate is NaN or the variance factor is not positive (extreme skew x Sharpe)."""
    from scipy.special import ndtr

    sr, t, g3, g4 = _inputs(sharpe, n_bars, skew, kurtosis)
    term = _variance_term(sr, g3, g4)
    ok = np.isfinite(term) & (term > 0)
    z = (sr - benchmark) * np.sqrt(t - 1.0) / np.sqrt(np.where(ok, term, 1.0))
    return _scalar(np.where(ok, ndtr(z), np.nan))


def deflated_sharpe_ratio(sharpe: object, n_bars: object, skew: object, kurtosis: object, n_trials: int,
                          sharpe_variance: float) -> FloatOrArray:
    """DSR: the PSR against SR0 = `expected_max_sharpe(n_trials, sharpe_variance)`, computed by
    vectorbt's `deflated_sharpe_ratio` (all per bar; plain kurtosis; module docstring). One
    trial (or no variance between trials) gives the PSR against 0. NaN as in the PSR."""
    from vectorbt.returns.metrics import deflated_sharpe_ratio as vbt_dsr

    _check_trials(n_trials, sharpe_variance)
    sr, t, g3, g4 = _inputs(sharpe, n_bars, skew, kurtosis)
    if n_trials == 1 or sharpe_variance == 0:
        return probabilistic_sharpe_ratio(sr, t, g3, g4, benchmark=0.0)
    term = _variance_term(sr, g3, g4)
    ok = np.isfinite(term) & (term > 0)
    safe_sr = np.where(ok, sr, 0.0)  # vectorbt takes the square root of the term: keep it positive
    dsr = vbt_dsr(est_sharpe=safe_sr, var_sharpe=float(sharpe_variance), nb_trials=int(n_trials),
                  backtest_horizon=t, skew=np.where(ok, g3, 0.0), kurtosis=np.where(ok, g4, 3.0))
    return _scalar(np.where(ok, dsr, np.nan))
