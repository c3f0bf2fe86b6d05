"""The Bayes filter of the controlled benchmark: the posterior of the true regime of a
`synthetic:regimes` path given its prices, computed with the generator's TRUE parameters.

It gives the benchmark its two ceilings: a filter that sees only the last `window` bars (what an
agent without memory can know) and one that sees every past bar (what memory can know). The gap
between their accuracies says how much context matters on a preset.

The model is the generator's: regime k emits the log return
`r[t] ~ N(drift_k + phi_k (r[t-1] - drift_k), vol_k^2 (1 - phi_k^2))` (exact inside a visit; at
the first bar of a visit the generator's AR deviation continues from the previous regime's, a
one-bar approximation here), stays with probability `1 - 1 / mean_duration_k` and otherwise
moves to one of the others uniformly. Causal: row t uses closes up to t only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from fin_meta.errors import DataError
from fin_meta.regimes.hmm import forward_filter
from fin_meta.sources.synthetic import RegimeSpec, regime_specs

__all__ = ["regime_posterior", "filtered_labels", "transition_matrix", "stationary_distribution"]


def transition_matrix(specs: Sequence[RegimeSpec]) -> np.ndarray:
    """(K, K) per-bar transition probabilities of the generator (row: from, column: to)."""
    k = len(specs)
    leave = np.array([1.0 / s.mean_duration for s in specs])
    other = leave / max(k - 1, 1)
    trans = np.repeat(other[:, None], k, axis=1)
    np.fill_diagonal(trans, 1.0 - leave if k > 1 else 1.0)
    return trans


def stationary_distribution(specs: Sequence[RegimeSpec]) -> np.ndarray:
    """Share of bars spent in each regime (proportional to its mean duration): the prior of a
    bar about which nothing is known."""
    d = np.array([s.mean_duration for s in specs], dtype=np.float64)
    return d / d.sum()


def _log_emissions(log_ret: np.ndarray, specs: Sequence[RegimeSpec]) -> np.ndarray:
    """(T, K) log-likelihood of each bar's log return under each regime (bar 0: its drift only)."""
    drift = np.array([s.drift for s in specs])
    phi = np.array([s.phi for s in specs])
    sd = np.array([s.vol for s in specs]) * np.sqrt(1.0 - phi**2)
    prev = np.r_[0.0, log_ret[:-1]][:, None]
    mean = drift + phi * (prev - drift)
    mean[0] = drift
    z = (log_ret[:, None] - mean) / sd
    return -0.5 * z**2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


def _windowed_filter(log_prior: np.ndarray, log_trans: np.ndarray, log_emit: np.ndarray, window: int) -> np.ndarray:
    """Filtered probabilities (T, K) where row t sees only bars t-window+1..t (fewer at the
    start), starting from `log_prior`: one vectorised recursion step per bar of the window,
    all rows at once."""
    n_bars = log_emit.shape[0]
    rows = np.arange(n_bars)
    first = np.maximum(rows - window + 1, 0)
    alpha = log_prior[None, :] + log_emit[first]
    for k in range(1, window):
        bar = first + k
        live = bar <= rows
        step = logsumexp(alpha[:, :, None] + log_trans[None, :, :], axis=1) + log_emit[np.minimum(bar, n_bars - 1)]
        alpha = np.where(live[:, None], step, alpha)
        alpha -= alpha.max(axis=1, keepdims=True)
    return np.exp(alpha - logsumexp(alpha, axis=1, keepdims=True))


def regime_posterior(
    prices: pd.DataFrame,
    regimes: Mapping[int, RegimeSpec] | Sequence[RegimeSpec] | str | None = None,
    *,
    window: int | None = None,
) -> pd.DataFrame:
    """P(regime at bar t | closes up to t) with the generator's true parameters, one column per
    regime label, on the prices' index. `window=None` uses every past bar; `window=W` only the
    last W bars (from the stationary prior). `regimes`: the specs or a preset name (default the
    default preset)."""
    if not isinstance(prices, pd.DataFrame) or "close" not in prices:
        raise DataError("regime_posterior needs a prices DataFrame with a 'close' column")
    if window is not None and (isinstance(window, bool) or int(window) < 1):
        raise DataError(f"regime_posterior: window must be >= 1 bar or None, got {window!r}")
    specs = regime_specs(regimes)
    close = prices["close"].to_numpy(np.float64)
    log_ret = np.r_[0.0, np.diff(np.log(close))]
    log_emit = _log_emissions(log_ret, specs)
    log_emit[0] = 0.0  # bar 0 has no return
    log_prior = np.log(stationary_distribution(specs))
    with np.errstate(divide="ignore"):
        log_trans = np.log(transition_matrix(specs))
    if window is None:
        probs = forward_filter(log_prior, log_trans, log_emit)
    else:
        probs = _windowed_filter(log_prior, log_trans, log_emit, int(window))
    return pd.DataFrame(probs, index=prices.index, columns=[int(s.label) for s in specs])


def filtered_labels(posterior: pd.DataFrame) -> pd.Series:
    """The most probable regime label of each bar (int64), named `regime`."""
    labels = posterior.columns.to_numpy()[np.argmax(posterior.to_numpy(), axis=1)]
    return pd.Series(labels.astype(np.int64), index=posterior.index, name="regime")
