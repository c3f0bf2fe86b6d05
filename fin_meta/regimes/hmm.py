"""The `hmm` regime detector: a Gaussian hidden Markov model (hmmlearn) on trailing features,
fitted on the fit period only, with causal FILTERED state probabilities (a vectorised forward
recursion) or hindsight smoothed ones. States are reordered by mean return (label 0 = lowest),
so labels do not depend on the arbitrary state order of a fit.

Units: log returns per bar; volatility annualised with the prices' bars per year
(`fin_meta.frequency.bars_per_year_of`). `vol_window`'s default is a month of bars
(`HMMParams.DURATIONS`: 21 daily, 4 weekly, 2 monthly); given explicitly it stays in bars.
`min_fit_bars` is a sample size for the fit, not a duration: it stays 100 bars at every frequency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

from fin_meta.errors import DataError
from fin_meta.frequency import bars_per_year_of
from fin_meta.regimes.base import Duration, check_int, check_windows, resolve_windows

__all__ = [
    "HMMParams",
    "FittedHMM",
    "hmm_features",
    "fit_hmm",
    "forward_filter",
    "hmm_probabilities",
    "hmm_state_names",
    "trailing_features",
    "emission_loglik",
    "filtered_state_probabilities",
]


@dataclass(frozen=True)
class HMMParams:
    """Parameters of the `hmm` method (windows in bars; None: the default duration)."""

    DURATIONS: ClassVar[dict[str, Duration]] = {"vol_window": (1 / 12, 2)}
    """Default of each window as (years, fewest bars): a month."""

    n_states: int = 3
    """Hidden states; labels 0..n_states-1 in increasing order of the state's mean return."""
    vol_window: int | None = None
    """Bars of the trailing realised volatility feature, its log enters the HMM (None: a month
    of bars, 21 daily, 4 weekly, 2 monthly)."""
    seed: int = 0
    """Seed of the HMM's initialisation (restart i uses seed + i)."""
    n_init: int = 5
    """Restarts from different initialisations (seeds seed..seed+n_init-1); the best
    fit-period likelihood wins. EM finds poor local optima from some starts: keep >= 3."""
    n_iter: int = 200
    """Maximum EM iterations per restart."""
    min_fit_bars: int = 100
    """Fewest labelled bars the fit period must have."""

    def check(self) -> None:
        """`ConfigError` naming the first invalid parameter."""
        check_int("hmm", "n_states", self.n_states, 2)
        check_windows("hmm", self, self.DURATIONS)
        check_int("hmm", "seed", self.seed, 0)
        check_int("hmm", "n_init", self.n_init, 1)
        check_int("hmm", "n_iter", self.n_iter, 1)
        check_int("hmm", "min_fit_bars", self.min_fit_bars, 10)


def hmm_features(close: pd.Series, p: HMMParams) -> np.ndarray:
    """Per-bar HMM features from trailing data only, shape (n, 2): the log return and the log of
    the trailing volatility annualised with the close's bars per year (floored at 1e-8). NaN
    rows in warm-up. A default `vol_window` (None) is a month of the close's bars."""
    window = resolve_windows(p, "hmm", close).vol_window
    return trailing_features(close, window, bars_per_year_of(close))


def trailing_features(close: pd.Series, vol_window: int, bars_per_year: float) -> np.ndarray:
    """`hmm_features` with the window (bars) and the annualisation (bars per year) given: shape
    (n, 2), the log return per bar and the log of the trailing `vol_window`-bar volatility
    annualised with `bars_per_year` (floored at 1e-8); row t uses closes up to t; NaN in warm-up."""
    log_ret = np.log(close).diff()
    vol = log_ret.rolling(vol_window, min_periods=vol_window).std() * np.sqrt(bars_per_year)
    return np.column_stack([log_ret.to_numpy(), np.log(np.maximum(vol.to_numpy(), 1e-8))])


@dataclass(frozen=True)
class FittedHMM:
    """A Gaussian HMM fitted on standardised features, states reordered by mean return."""

    model: Any
    """The hmmlearn GaussianHMM (its states in hmmlearn's order)."""
    order: np.ndarray
    """order[label] = hmmlearn state index; labels rise with the state's mean return."""
    center: np.ndarray
    scale: np.ndarray

    def standardise(self, x: np.ndarray) -> np.ndarray:
        """Features scaled by the fit period's mean and std (what the model was fitted on)."""
        return (x - self.center) / self.scale


def fit_hmm(x: np.ndarray, p: HMMParams, lengths: Sequence[int] | None = None) -> FittedHMM:
    """Fit a full-covariance Gaussian HMM on the rows of `x` (fit period, no NaN), scaled by
    the fit period's mean and std; best of `n_init` seeded restarts by log-likelihood.
    `lengths`: the rows are consecutive sequences of these lengths (e.g. several assets'
    training periods; no transition across a seam); None: one sequence.
    BLAS/OpenMP run single-threaded here: the matrices are tiny (n_states x features), and
    thread pools only add contention (10x slower on a busy 2-core machine)."""
    from hmmlearn.hmm import GaussianHMM  # slow to import: only when fitting

    center, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (x - center) / scale
    best, best_score = None, -np.inf
    with threadpool_limits(limits=1):
        for i in range(p.n_init):
            model = GaussianHMM(
                n_components=p.n_states,
                covariance_type="full",
                n_iter=p.n_iter,
                tol=1e-4,
                random_state=p.seed + i,
            )
            model.fit(z, lengths)
            score = model.score(z, lengths)
            if np.isfinite(score) and score > best_score:
                best, best_score = model, score
    if best is None:
        raise DataError("regimes: the HMM fit failed on the fit period (too few or constant bars)")
    return FittedHMM(best, np.argsort(best.means_[:, 0], kind="stable"), center, scale)


def _log_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched matrix product in log space over the last two axes,
    out[..., i, j] = log sum_k exp(a[..., i, k] + b[..., k, j]), as an ordinary matmul of
    exponentials shifted by each row's (a) and column's (b) maximum, so nothing overflows."""
    a_max = a.max(axis=-1, keepdims=True)
    b_max = b.max(axis=-2, keepdims=True)
    with np.errstate(divide="ignore"):
        return np.log(np.exp(a - a_max) @ np.exp(b - b_max)) + a_max + b_max


def forward_filter(log_start: np.ndarray, log_trans: np.ndarray, log_emit: np.ndarray) -> np.ndarray:
    """Filtered state probabilities P(state_t | obs_0..t), shape (T, K), of an HMM with start
    log-probabilities (K,), transition log-matrix (K, K) (from row to column) and emission
    log-likelihoods (T, K). Row t uses observations up to t only.

    The forward recursion alpha_t = alpha_{t-1} (x) M_t, with M_t[i, j] = log A[i, j] +
    log b_t(j), is a prefix product of matrices, computed as a log-space parallel (Hillis-Steele)
    scan: log2(T) vectorised steps instead of a loop over bars. Each partial product is rescaled
    by its maximum, which leaves the normalised probabilities unchanged."""
    n_bars = log_emit.shape[0]
    alpha0 = log_start + log_emit[0]
    out = np.empty_like(log_emit, dtype="float64")
    out[0] = alpha0
    if n_bars > 1:
        prod = log_trans[None, :, :] + log_emit[1:, None, :]
        prod -= prod.max(axis=(1, 2), keepdims=True)
        shift = 1
        while shift < len(prod):
            prod[shift:] = _log_matmul(prod[:-shift], prod[shift:])
            prod -= prod.max(axis=(1, 2), keepdims=True)
            shift *= 2
        out[1:] = logsumexp(alpha0[None, :, None] + prod, axis=1)
    return np.exp(out - logsumexp(out, axis=1, keepdims=True))


def emission_loglik(z: np.ndarray, means: np.ndarray, covars: np.ndarray) -> np.ndarray:
    """Gaussian log-likelihoods (T, K) of the rows of `z` (T, D) under each state's mean (K, D)
    and full covariance (K, D, D)."""
    from scipy.stats import multivariate_normal  # slow to import: only when labelling

    return np.column_stack(
        [
            multivariate_normal(mean=means[k], cov=covars[k], allow_singular=True).logpdf(z)
            for k in range(len(means))
        ]
    ).reshape(len(z), len(means))


def _emission_loglik(fitted: FittedHMM, z: np.ndarray) -> np.ndarray:
    return emission_loglik(z, fitted.model.means_, fitted.model.covars_)


def hmm_probabilities(fitted: FittedHMM, x: np.ndarray, causal: bool) -> np.ndarray:
    """State probabilities (T, K) of the rows of `x` (no NaN), columns in label order:
    filtered (causal) or smoothed (hindsight, forward-backward)."""
    z = fitted.standardise(x)
    model = fitted.model
    with threadpool_limits(limits=1):
        if causal:
            with np.errstate(divide="ignore"):
                log_start = np.log(model.startprob_)
                log_trans = np.log(model.transmat_)
            proba = forward_filter(log_start, log_trans, _emission_loglik(fitted, z))
        else:
            proba = model.predict_proba(z)
    return proba[:, fitted.order]


def hmm_state_names(fitted: FittedHMM) -> dict[int, str]:
    """Names of the labels: bull/bear by the sign of the state's mean log return; calm for the
    state with the lowest return volatility, volatile for the highest, moderate in between;
    repeated names get a suffix (-2, -3)."""
    model = fitted.model
    mean_ret = model.means_[fitted.order, 0] * fitted.scale[0] + fitted.center[0]
    vol_rank = np.argsort(np.argsort(model.covars_[fitted.order, 0, 0], kind="stable"), kind="stable")
    top = len(vol_rank) - 1
    names: dict[int, str] = {}
    for label, (m, r) in enumerate(zip(mean_ret, vol_rank, strict=True)):
        level = "calm" if r == 0 else "volatile" if r == top else "moderate"
        base = f"{'bull' if m > 0 else 'bear'}-{level}"
        name, k = base, 2
        while name in names.values():
            name, k = f"{base}-{k}", k + 1
        names[label] = name
    return names


def filtered_state_probabilities(
    z: np.ndarray, start: np.ndarray, trans: np.ndarray, means: np.ndarray, covars: np.ndarray
) -> np.ndarray:
    """Filtered probabilities P(state_t | rows up to t), shape (T, K), of an HMM given as plain
    arrays (start (K,), transition (K, K) from row to column, means (K, D), covariances
    (K, D, D); columns in the order of these states) on standardised rows `z` (T, D). A row with
    a NaN (warm-up) is no evidence: the belief only moves through the transitions there."""
    valid = np.isfinite(z).all(axis=1)
    log_emit = np.zeros((len(z), len(start)))
    with threadpool_limits(limits=1):
        if valid.any():
            log_emit[valid] = emission_loglik(z[valid], means, covars)
        with np.errstate(divide="ignore"):
            return forward_filter(np.log(start), np.log(trans), log_emit)
