"""Contiguous regime segments, THE home of run-length encoding: runs of equal labels
(`label_runs`), segments with short runs merged into a neighbour (`segments`, `merged_labels`),
and the held-out segments the meta-test scores (`held_out_runs`, `held_out_segments`), used
alike by the task sampler, the pipeline and the benchmarks. Positions are bar numbers into the
labels; dates are the labels' index values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fin_meta.errors import ConfigError, DataError
from fin_meta.regimes.base import WARMUP

__all__ = [
    "SEGMENT_COLUMNS",
    "label_runs",
    "segments",
    "segment_ids",
    "merged_labels",
    "held_out_runs",
    "held_out_segments",
    "bars_since_change",
]

SEGMENT_COLUMNS = ["start", "end", "label", "n_bars"]
"""Columns of a `segments` table: first and last date (inclusive), label, bars."""


def _label_values(labels: pd.Series) -> np.ndarray:
    """The int64 values of a labels Series; `DataError` for anything else or non-integers."""
    if not isinstance(labels, pd.Series):
        raise DataError(f"regimes: labels must be a pandas Series, got {type(labels).__name__}")
    values = labels.to_numpy()
    if values.dtype.kind not in "iu":
        if values.dtype.kind != "f" or not np.isfinite(values).all() or (values % 1 != 0).any():
            raise DataError("regimes: labels must be integers without NaN (use detect_regimes)")
        values = values.astype(np.int64)
    return values.astype(np.int64)


def label_runs(labels: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of equal labels: `(first_bar, last_bar, label)` int64 arrays (bars inclusive,
    positions into the series). NaN labels count as -1 (unlabelled)."""
    values = np.asarray(labels)
    if values.dtype.kind == "f":
        values = np.where(np.isnan(values), WARMUP, values)
    values = values.astype(np.int64)
    if values.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    first = np.concatenate([[0], change]).astype(np.int64)
    last = np.concatenate([change - 1, [values.size - 1]]).astype(np.int64)
    return first, last, values[first]


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label, length) of each run of equal consecutive values."""
    first, last, label = label_runs(values)
    return label, last - first + 1


def _coalesce(labs: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Join neighbouring runs of equal label (their lengths add up); `labs` is not empty."""
    first, _, label = label_runs(labs)
    return label, np.add.reduceat(lens, first).astype(np.int64)


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


def merged_labels(labels: pd.Series, min_length: int) -> pd.Series:
    """`labels` with runs shorter than `min_length` bars merged into a neighbour (`segments`),
    so training tasks are drawn from regime stretches rather than flickering bars."""
    segs = segments(labels, min_length=min_length)
    values = np.repeat(segs["label"].to_numpy(), segs["n_bars"].to_numpy())
    return pd.Series(values, index=labels.index, name=labels.name)


def held_out_runs(
    labels: pd.Series, min_length: int, *, start: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """THE definition of the held-out segments that the meta-test scores, as `label_runs` gives
    runs: `(first_bar, last_bar, label)` int64 arrays (bars inclusive, positions into `labels`).
    They are the labelled segments of `segments(labels, min_length)` (short runs merged into a
    neighbour, warm-up dropped), each cut at bar `start` (e.g. the first test bar, or the first
    bar with a full observation window) and kept when at least `min_length` bars remain."""
    segs = segments(labels, min_length=min_length)
    segs = segs[segs["label"] >= 0]
    first = np.maximum(labels.index.get_indexer(segs["start"]), int(start)).astype(np.int64)
    last = labels.index.get_indexer(segs["end"]).astype(np.int64)
    keep = last - first + 1 >= min_length
    return first[keep], last[keep], segs["label"].to_numpy(np.int64)[keep]


def held_out_segments(labels: pd.Series, min_length: int, *, start: int = 0) -> list[tuple[int, int]]:
    """`[first, end)` bar positions (into `labels`) of the held-out segments (`held_out_runs`):
    what `fin_meta.metatest.adaptation_curves` takes."""
    first, last, _ = held_out_runs(labels, min_length, start=start)
    return [(int(a), int(b) + 1) for a, b in zip(first, last, strict=True)]


def bars_since_change(labels: pd.Series | np.ndarray) -> np.ndarray:
    """Bars since the label last changed, per bar (0 on the first bar of each run, int64): the
    time since the regime changed, read from true labels (synthetic data) or causal ones."""
    values = _label_values(labels) if isinstance(labels, pd.Series) else np.asarray(labels)
    t = np.arange(values.size)
    start = np.r_[True, values[1:] != values[:-1]] if values.size else np.zeros(0, bool)
    return (t - np.maximum.accumulate(np.where(start, t, 0))).astype(np.int64)

