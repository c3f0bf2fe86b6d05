"""Contiguous regime segments: runs of equal labels, with short runs merged into a neighbour."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fin_meta.errors import ConfigError, DataError
from fin_meta.regimes.trend_vol import WARMUP

__all__ = ["segments", "segment_ids"]

SEGMENT_COLUMNS = ["start", "end", "label", "n_bars"]


def _label_values(labels: pd.Series) -> np.ndarray:
    if not isinstance(labels, pd.Series):
        raise DataError(f"regimes: labels must be a pandas Series, got {type(labels).__name__}")
    values = labels.to_numpy()
    if values.dtype.kind not in "iu":
        if values.dtype.kind != "f" or not np.isfinite(values).all() or (values % 1 != 0).any():
            raise DataError("regimes: labels must be integers without NaN (use detect_regimes)")
        values = values.astype(np.int64)
    return values.astype(np.int64)


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label, length) of each run of equal consecutive values."""
    if len(values) == 0:
        return values[:0], values[:0]
    first = np.r_[True, values[1:] != values[:-1]]
    starts = np.flatnonzero(first)
    return values[starts], np.diff(np.r_[starts, len(values)])


def _coalesce(labs: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    first = np.r_[True, labs[1:] != labs[:-1]]
    group = np.cumsum(first) - 1
    return labs[first], np.bincount(group, weights=lens).astype(np.int64)


def _merge_short(labs: np.ndarray, lens: np.ndarray, min_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Repeatedly relabel the shortest run under `min_length` (the earliest on ties) as its
    longer labelled neighbour (the earlier one on ties), then join equal neighbours. WARMUP runs
    are never relabelled nor absorbed into."""
    labs, lens = labs.copy(), lens.copy()
    while len(labs):
        labelled = labs != WARMUP
        left_ok = np.r_[False, labelled[:-1]]
        right_ok = np.r_[labelled[1:], False]
        candidates = np.flatnonzero(labelled & (lens < min_length) & (left_ok | right_ok))
        if len(candidates) == 0:
            return labs, lens
        i = candidates[np.argmin(lens[candidates])]
        left = lens[i - 1] if left_ok[i] else -1
        right = lens[i + 1] if right_ok[i] else -1
        labs[i] = labs[i - 1] if left >= right else labs[i + 1]
        labs, lens = _coalesce(labs, lens)
    return labs, lens


def segments(labels: pd.Series, min_length: int = 20) -> pd.DataFrame:
    """Contiguous segments of `labels`: columns `start`, `end` (index values, inclusive),
    `label` and `n_bars`, in time order. Runs shorter than `min_length` bars are merged into
    their longer neighbour (repeatedly, shortest first); a short run whose only neighbours are
    warm-up is kept. Warm-up (-1) bars stay their own segment (label -1, normally the first
    row) and are never merged: drop them with `seg[seg.label >= 0]`."""
    if isinstance(min_length, bool) or not isinstance(min_length, (int, np.integer)) or min_length < 1:
        raise ConfigError(f"segments: min_length must be an integer >= 1 (bars), got {min_length!r}")
    labs, lens = _merge_short(*_runs(_label_values(labels)), int(min_length))
    ends = np.cumsum(lens) - 1
    starts = ends - lens + 1
    return pd.DataFrame(
        {
            "start": labels.index[starts],
            "end": labels.index[ends],
            "label": labs.astype(np.int64),
            "n_bars": lens.astype(np.int64),
        },
        columns=SEGMENT_COLUMNS,
    )


def segment_ids(segs: pd.DataFrame) -> np.ndarray:
    """Per-bar segment number (0, 1, ...) of a `segments` table, one entry per bar covered."""
    return np.repeat(np.arange(len(segs)), segs["n_bars"].to_numpy())
