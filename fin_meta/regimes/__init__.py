"""Market regimes: label every bar of a prices frame, name the labels, cut them into segments.

    labels = detect_regimes(prices, method="trend_vol", fit_end="2010-12-31")
    regime_names(labels)         # {0: "bear-volatile", 1: "bear-calm", ...}
    segments(labels, min_length=20)

Methods (`METHODS`):
- `trend_vol`: trailing trend (log return over `trend_window` bars, default a quarter) x
  trailing realised volatility (`vol_window` bars, default a month) against a threshold (a quantile, default the median) fitted on
  the bars up to `fit_end`; with `fit_end=None` the threshold is an expanding quantile of past
  volatility, so every label is causal. 4 labels, see `TREND_VOL_NAMES`.
- `hmm`: a Gaussian HMM (hmmlearn, full covariance) on the log return per bar and the log of the
  trailing volatility, fitted on the bars up to `fit_end` (None: the first half of the bars,
  which are then in-sample; with `causal=False`, all bars). Causal
  labels are the most likely state under the FILTERED probabilities P(state_t | data up to t)
  (never the smoothed ones or Viterbi); states are ordered by mean return (label 0 = lowest), so
  labels do not depend on the seed's arbitrary state order.

`causal=True` (default): a label at bar t uses closes up to and including t. The fit period
itself is in-sample: labels up to `fit_end` use a threshold / model fitted on data up to
`fit_end`; every label after it is causal and safe for an agent at test time.
`causal=False` gives HINDSIGHT labels (windows centred on the bar, smoothed HMM posteriors;
fitted on the bars up to `fit_end`, or on all bars when it is None): they look at the future
and are only for grouping training tasks and for reports.

Windows: a window given explicitly is in bars; left at its default it is a duration (a quarter,
a month) converted with the prices' bars per year (`fin_meta.frequency.bars_per_year_of`: what
`load_prices` recorded, else inferred from the dates), so monthly prices get a 3-bar trend window
and daily ones 63. A window that cannot fit the prices is a one-line `DataError` in time units.

Labels are int64 in a Series named `regime` on the prices index; `WARMUP` (-1) marks bars that
cannot be labelled yet (their windows are not full). `labels.attrs` holds `names`, `method`,
`causal`, `fit_end`, `params` (windows in bars) and `bars_per_year`.

Modules: `base` (what both detectors share), `trend_vol`, `hmm`, `segments` (THE run-length
encoder: runs, merged segments, the held-out segments) and `summary` (tables of labelled
prices); their public names are re-exported here.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from fin_meta.errors import ConfigError, DataError
from fin_meta.frequency import bars_per_year_of
from fin_meta.regimes.base import (
    WARMUP,
    WARMUP_NAME,
    close_series,
    fit_mask,
    parse_params,
    resolve_windows,
)
from fin_meta.regimes.hmm import (
    HMMParams,
    fit_hmm,
    hmm_features,
    hmm_probabilities,
    hmm_state_names,
)
from fin_meta.regimes.segments import (
    held_out_segments,
    label_runs,
    merged_labels,
    segment_ids,
    segments,
)
from fin_meta.regimes.summary import label_accuracy, label_names, regime_stats, regime_summary
from fin_meta.regimes.trend_vol import TREND_VOL_NAMES, TrendVolParams, trend_vol_labels
from fin_meta.sources.dates import DateLike, parse_date

__all__ = [
    "METHODS",
    "WARMUP",
    "WARMUP_NAME",
    "TREND_VOL_NAMES",
    "detect_regimes",
    "regime_probabilities",
    "regime_names",
    "segments",
    "segment_ids",
    "label_runs",
    "merged_labels",
    "held_out_segments",
    "regime_summary",
    "regime_stats",
    "label_accuracy",
]

METHODS: dict[str, type] = {"trend_vol": TrendVolParams, "hmm": HMMParams}
"""Regime methods and the dataclass of their parameters (field docstrings = documentation)."""


def _params(method: str, params: dict[str, Any]) -> Any:
    """The checked parameters dataclass of `method`; `ConfigError` for an unknown method."""
    if method not in METHODS:
        raise ConfigError(f"unknown regime method {method!r}; valid: {', '.join(METHODS)}")
    return parse_params(METHODS[method], method, params)


def _prepared(prices: pd.DataFrame, method: str, params: dict[str, Any]) -> tuple[pd.Series, Any]:
    """The close of `prices` and the checked parameters of `method` with every default window
    in bars of the prices' frequency (`base.resolve_windows`)."""
    p = _params(method, params)
    close = close_series(prices)
    return close, resolve_windows(p, method, close)


def _hmm(
    close: pd.Series, causal: bool, fit_end: DateLike, p: HMMParams
) -> tuple[pd.DataFrame, dict[int, str]]:
    """HMM state probabilities (NaN rows in warm-up, columns = labels) and label names."""
    x = hmm_features(close, p)
    valid = np.isfinite(x).all(axis=1)
    mask = fit_mask(close.index, fit_end)
    if mask is None:  # documented defaults: causal -> the first half of the bars; hindsight -> all
        mask = np.arange(len(close)) < (len(close) // 2 if causal else len(close))
    fit_rows = valid & mask
    if fit_rows.sum() < p.min_fit_bars:
        raise DataError(
            f"regimes: the hmm fit period has {int(fit_rows.sum())} usable bars, it needs "
            f"{p.min_fit_bars} (move fit_end later, give more prices, or lower min_fit_bars)"
        )
    fitted = fit_hmm(x[fit_rows], p)
    proba = np.full((len(close), p.n_states), np.nan)
    proba[valid] = hmm_probabilities(fitted, x[valid], causal)
    return pd.DataFrame(proba, index=close.index, columns=range(p.n_states)), hmm_state_names(fitted)


def detect_regimes(
    prices: pd.DataFrame,
    method: str = "trend_vol",
    causal: bool = True,
    fit_end: DateLike = None,
    **params: Any,
) -> pd.Series:
    """Regime label of every bar (int64 Series `regime` on the prices index, WARMUP = -1 where
    undefined). `method`: "trend_vol" or "hmm" (see the module docstring and `METHODS` for
    `params`); `fit_end`: last bar (inclusive) of the fit period; `causal=False`: hindsight
    labels, for grouping training tasks and reports only. Names in `labels.attrs["names"]`;
    `labels.attrs["params"]` has every window in bars. Windows left at their default are
    durations in bars of the prices' frequency (a quarter: 63 daily bars, 3 monthly); a window
    that does not fit the prices is a one-line `DataError` in time units."""
    close, p = _prepared(prices, method, params)
    end = parse_date(fit_end, "fit_end", source="regimes")
    if method == "trend_vol":
        values = trend_vol_labels(close, p, fit_mask(close.index, end), causal)
        names = dict(TREND_VOL_NAMES)
    else:
        proba, names = _hmm(close, causal, end, p)
        filled = proba.to_numpy()
        valid = ~np.isnan(filled[:, 0])
        values = np.full(len(filled), WARMUP)
        values[valid] = filled[valid].argmax(axis=1)
    labels = pd.Series(values.astype(np.int64), index=prices.index, name="regime")
    labels.attrs.update(
        names=names,
        method=method,
        causal=bool(causal),
        fit_end=None if end is None else str(end.date()),
        params=asdict(p),
        bars_per_year=bars_per_year_of(close),
    )
    return labels


def regime_probabilities(
    prices: pd.DataFrame,
    causal: bool = True,
    fit_end: DateLike = None,
    **params: Any,
) -> pd.DataFrame:
    """The hmm method's state probabilities (columns = labels, rows sum to 1, NaN in warm-up):
    filtered (causal) or smoothed (hindsight). Usable as soft regime features by an agent."""
    close, p = _prepared(prices, "hmm", params)
    proba, names = _hmm(close, causal, fit_end, p)
    proba.attrs["names"] = names
    return proba


def regime_names(labels_or_method: pd.Series | str, **params: Any) -> dict[int, str]:
    """Human names of the labels: from `labels.attrs["names"]` for a Series returned by
    `detect_regimes` (else "regime-k"), or the names a method uses ("trend_vol": fixed; "hmm":
    "state-k" until fitted — a fit's names are in its labels' attrs). WARMUP is not included
    (its name is WARMUP_NAME)."""
    if isinstance(labels_or_method, pd.Series):
        return label_names(labels_or_method)
    p = _params(labels_or_method, params)
    if labels_or_method == "trend_vol":
        return dict(TREND_VOL_NAMES)
    return {k: f"state-{k}" for k in range(p.n_states)}
