"""Describing labelled prices: one row per regime segment (`regime_summary`), one row per regime
(`regime_stats`), and how well detected labels match known ones (`label_accuracy`).

Units: returns are fractions (0.05 = 5 %); annualised with the prices' bars per year
(`fin_meta.frequency.bars_per_year_of`: 252 for daily bars, 12 for monthly).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fin_meta.errors import DataError
from fin_meta.frequency import bars_per_year_of
from fin_meta.regimes.base import WARMUP, WARMUP_NAME, close_series
from fin_meta.regimes.segments import segment_ids, segments

__all__ = ["label_names", "regime_summary", "regime_stats", "label_accuracy"]


def label_names(labels: pd.Series) -> dict[int, str]:
    """Names of the labels of a Series: `labels.attrs["names"]` (set by `detect_regimes`), else
    "regime-k" for every label present. WARMUP is not included (its name is WARMUP_NAME)."""
    names = labels.attrs.get("names")
    if names:
        return {int(k): str(v) for k, v in names.items()}
    found = np.unique(labels.to_numpy())
    return {int(k): f"regime-{int(k)}" for k in found if k != WARMUP}


def _bar_returns(prices: pd.DataFrame, labels: pd.Series) -> pd.Series:
    """Simple return of each bar, close[t] / close[t-1] - 1 (NaN at the first bar), after
    checking that `labels` sit on the prices index."""
    close = close_series(prices)
    if not isinstance(labels, pd.Series) or not labels.index.equals(close.index):
        raise DataError(
            "regimes: labels must be a Series on the same index as the prices "
            "(call detect_regimes on these prices)"
        )
    return close.pct_change()


def _name_of(labels: pd.Series) -> dict[int, str]:
    return {WARMUP: WARMUP_NAME, **label_names(labels)}


def regime_summary(prices: pd.DataFrame, labels: pd.Series, min_length: int = 20) -> pd.DataFrame:
    """One row per segment of `segments(labels, min_length)`: `label`, `name`, `start`, `end`,
    `bars`, `total_return` (compounded return of the segment's bars, fraction: from the close
    before `start` to the close at `end`) and `annual_volatility` (std of the bars' simple
    returns x sqrt(bars per year of the prices); NaN with fewer than 2 returns)."""
    ret = _bar_returns(prices, labels)
    per_year = bars_per_year_of(prices)
    segs = segments(labels, min_length)
    ids = segment_ids(segs)
    names = _name_of(labels)
    return pd.DataFrame(
        {
            "label": segs["label"],
            "name": segs["label"].map(lambda k: names.get(k, f"regime-{k}")),
            "start": segs["start"],
            "end": segs["end"],
            "bars": segs["n_bars"],
            "total_return": np.expm1(np.log1p(ret).groupby(ids).sum()).to_numpy(),
            "annual_volatility": (ret.groupby(ids).std() * np.sqrt(per_year)).to_numpy(),
        }
    )


def regime_stats(prices: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """One row per regime label (index `regime`, warm-up bars left out): `name`, `bars`,
    `share` (fraction of the labelled bars), `annual_return` (mean simple bar return x bars per
    year of the prices, 252 daily) and `annual_volatility` (std x sqrt(bars per year)). A bar's return close[t]/close[t-1]-1 counts for the
    regime of bar t: a description of each regime; for what a strategy earned per regime use
    `backtest(...).by_regime(labels)`."""
    ret = _bar_returns(prices, labels)
    per_year = bars_per_year_of(prices)
    keep = labels.to_numpy() != WARMUP
    grouped = ret[keep].groupby(labels[keep].rename("regime"))
    bars = grouped.size()
    names = _name_of(labels)
    return pd.DataFrame(
        {
            "name": [names.get(k, f"regime-{k}") for k in bars.index],
            "bars": bars.astype(np.int64),
            "share": bars / bars.sum(),
            "annual_return": grouped.mean() * per_year,
            "annual_volatility": grouped.std() * np.sqrt(per_year),
        }
    )


def label_accuracy(truth: pd.Series, labels: pd.Series) -> float:
    """Share of bars whose detected label matches the true one under the best one-to-one
    mapping of detected to true labels (Hungarian algorithm on the confusion matrix), over the
    bars both label (warm-up and other negative labels left out). Fraction in [0, 1]."""
    from scipy.optimize import linear_sum_assignment  # slow to import: only when scoring

    if not truth.index.equals(labels.index):
        raise DataError("label_accuracy: truth and labels must share one index")
    t, d = truth.to_numpy(), labels.to_numpy()
    keep = (t >= 0) & (d >= 0)
    if not keep.any():
        raise DataError("label_accuracy: no bar is labelled in both series")
    t_values, t_codes = np.unique(t[keep], return_inverse=True)
    d_values, d_codes = np.unique(d[keep], return_inverse=True)
    confusion = np.zeros((len(t_values), len(d_values)), dtype=np.int64)
    np.add.at(confusion, (t_codes, d_codes), 1)
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    return float(confusion[rows, cols].sum() / keep.sum())
