"""Tasks: regime segments as tasks, the held-out tasks of the meta-test, and a seeded task
sampler. (Train / test periods are cut by `fin_meta.splits`.)

A *task* is a window of bars of one asset that STARTS in a regime segment. Indices are
positions into that asset's prices frame (the frame the sampler was built on, usually the
training period). A task with `start=s, length=L` has decision bars `s .. s+L-1`; the last
decision is settled at close `s+L`, so the window uses bars `s .. s+L`. `start >= window` (the
envs' `first_decision_bar(window)`) so that the observation window of `window` log returns ending
at `s` is complete (it may reach back before the segment: it only looks at the past).

Tasks never see their future (DESIGN.md): a training window is conditioned only on the label at
its start and runs on through whatever follows (`windows="start"`, the default). The legacy
`windows="inside"` keeps every bar of the window inside one segment, which conditions the window
on its own future (with hindsight labels on S&P 500 1999-2012 the support / query 63-bar return
correlation rises from ~0.15 to ~0.58; `tests/test_task_leakage.py`): only to reproduce old runs.
Hindsight (smoothed) labels may group and balance training tasks; labels never enter
observations. Whole segments (`tasks_from_segments`, `held_out_tasks`) are evaluation tasks.
Runs and segments come from `fin_meta.regimes.segments` (the one run-length encoder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from fin_meta.errors import ConfigError, DataError
from fin_meta.regimes.segments import held_out_runs, label_runs

__all__ = [
    "WINDOW_MODES",
    "Task",
    "tasks_from_segments",
    "TaskSampler",
    "held_out_tasks",
    "tasks_to_arrays",
]

WINDOW_MODES = ("start", "inside")
"""How `TaskSampler` draws windows: `start` (conditioned on the label at the start only, the
default) or `inside` (legacy: the whole window inside one segment; leaks the future)."""


@dataclass(frozen=True)
class Task:
    """A window of one asset's bars that starts in a regime segment: decisions at bars
    `start .. start+length-1` (positions into that asset's frame), settled up to close
    `start+length`; `regime` is the label at its start (a sampled task may run on past its
    segment; a whole-segment task of `tasks_from_segments` / `held_out_tasks` does not)."""

    asset: int
    start: int
    length: int
    regime: int


def tasks_to_arrays(tasks: Sequence[Task]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`(asset_idx, start, length, regime)` int64 arrays of a task list (the `set_tasks` form)."""
    arr = np.array([(t.asset, t.start, t.length, t.regime) for t in tasks], dtype=np.int64).reshape(-1, 4)
    return arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(), arr[:, 3].copy()


def _segment_tasks(
    asset: int, first: np.ndarray, last: np.ndarray, label: np.ndarray, *, min_length: int, window: int
) -> list[Task]:
    """Whole segments as tasks: start at the first bar (or `window`), settle at the last bar."""
    start = np.maximum(first, window)
    length = last - start
    keep = (label >= 0) & (last - first + 1 >= min_length) & (length >= 1)
    return [
        Task(int(asset), int(s), int(n), int(r))
        for s, n, r in zip(start[keep], length[keep], label[keep], strict=True)
    ]


def tasks_from_segments(
    segments_df: pd.DataFrame,
    asset: int,
    index: pd.DatetimeIndex,
    min_length: int = 20,
    *,
    window: int = 0,
) -> list[Task]:
    """One task per segment of `fin_meta.regimes.segments()` (columns `start`, `end` inclusive
    Timestamps and `label`) with at least `min_length` bars; dates are mapped to positions in
    `index`. Unlabelled (-1) segments are dropped; a task starts at bar `window` at the earliest."""
    missing = {"start", "end", "label"} - set(segments_df.columns)
    if missing:
        raise DataError(f"segments frame lacks columns {sorted(missing)}; use fin_meta.regimes.segments()")
    first = index.get_indexer(pd.DatetimeIndex(segments_df["start"]))
    last = index.get_indexer(pd.DatetimeIndex(segments_df["end"]))
    if (first < 0).any() or (last < 0).any():
        raise DataError("segment start/end dates are not bars of the given index; build the segments "
                        "from labels on the same prices")
    return _segment_tasks(asset, first.astype(np.int64), last.astype(np.int64),
                          segments_df["label"].to_numpy(np.int64), min_length=min_length, window=window)


def _normalise_inputs(
    prices: Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame] | pd.DataFrame,
    labels: Sequence[pd.Series] | Mapping[str, pd.Series] | pd.Series,
) -> tuple[list[str], list[pd.DataFrame], list[pd.Series]]:
    if isinstance(prices, pd.DataFrame):
        prices = [prices]
    if isinstance(labels, pd.Series):
        labels = [labels]
    if isinstance(prices, Mapping):
        names = [str(k) for k in prices]
        frames = list(prices.values())
        if isinstance(labels, Mapping):
            absent = [k for k in prices if k not in labels]
            if absent:
                raise DataError(f"no regime labels for assets {absent}")
            labels = [labels[k] for k in prices]
    else:
        frames = list(prices)
        names = [f"asset{i}" for i in range(len(frames))]
    labels = list(labels.values()) if isinstance(labels, Mapping) else list(labels)
    if not frames:
        raise DataError("TaskSampler needs at least one prices frame")
    if len(labels) != len(frames):
        raise DataError(f"{len(frames)} prices frames but {len(labels)} label series; give one per asset")
    for name, frame, lab in zip(names, frames, labels, strict=True):
        if len(lab) != len(frame) or (isinstance(lab, pd.Series) and not lab.index.equals(frame.index)):
            raise DataError(f"labels of {name} do not share the prices' index; label the same frame")
    return names, frames, labels


class TaskSampler:
    """Draws task windows from the regime segments of one or more assets (pooled).

    Segments are maximal runs of one label (`label_runs`); runs shorter than `min_segment` bars
    and unlabelled bars (-1) are dropped. `sample_task_arrays(n, rng)` gives each regime an equal
    share of the `n` tasks (so a meta-batch covers every regime), then picks a start uniformly
    among the regime's bars (any asset, any segment). `windows` (`WINDOW_MODES`): `start` (the
    default) lets the window run on through whatever follows its start, so it is conditioned on
    the label at its start only; `inside` (legacy, leaks the future: it conditions on the window's
    own end) keeps the whole window inside the segment, for reproducing old runs."""

    def __init__(
        self,
        prices: Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame] | pd.DataFrame,
        labels: Sequence[pd.Series] | Mapping[str, pd.Series] | pd.Series,
        *,
        episode_length: int,
        window: int,
        min_segment: int = 20,
        windows: Literal["start", "inside"] = "start",
    ) -> None:
        if episode_length < 1 or window < 1 or min_segment < 1:
            raise ConfigError(
                f"episode_length={episode_length}, window={window}, min_segment={min_segment} "
                "must all be >= 1"
            )
        if windows not in WINDOW_MODES:
            raise ConfigError(f"windows={windows!r}: use one of {list(WINDOW_MODES)}")
        self.asset_names, self.prices, self.labels = _normalise_inputs(prices, labels)
        self.episode_length = int(episode_length)
        self.window = int(window)
        self.min_segment = int(min_segment)
        self.windows = windows
        parts = []
        for a, lab in enumerate(self.labels):
            first, last, label = label_runs(lab)
            keep = (label >= 0) & (last - first + 1 >= self.min_segment)
            parts.append(np.stack([np.full(keep.sum(), a), first[keep], last[keep], label[keep]], 1))
        seg = np.concatenate(parts).astype(np.int64) if parts else np.zeros((0, 4), np.int64)
        order = np.lexsort((seg[:, 1], seg[:, 0], seg[:, 3]))  # by regime, asset, start
        self.segments = seg[order]  # [S, 4]: asset, first bar, last bar, label
        if self.segments.size == 0:
            raise DataError(
                f"no labelled regime segment of at least min_segment={self.min_segment} bars; "
                "lower min_segment or use a longer training period"
            )
        self.regimes = np.unique(self.segments[:, 3])
        self._check_length(self.episode_length)

    # -- helpers
    def _start_range(self, length: int, windows: str) -> tuple[np.ndarray, np.ndarray]:
        """First and number of valid start bars of a window of `length` decisions in each
        segment: after the warm-up, and (`start`) fitting its asset with a settling bar or
        (`inside`) ending with its settling bar inside the segment."""
        lo = np.maximum(self.segments[:, 1], self.window)
        if windows == "inside":
            hi = self.segments[:, 2] - length
        else:
            n_bars = np.array([len(p) for p in self.prices], dtype=np.int64)
            hi = np.minimum(self.segments[:, 2], n_bars[self.segments[:, 0]] - 1 - length)
        return lo, np.maximum(hi - lo + 1, 0)

    def _check_length(self, length: int, windows: str | None = None) -> np.ndarray:
        """Valid start counts per segment (`_start_range`); `DataError` naming the fix if none."""
        windows = windows or self.windows
        counts = self._start_range(length, windows)[1]
        if counts.sum() > 0:
            return counts
        if windows == "inside":
            longest = int((self.segments[:, 2] - self.segments[:, 1] + 1).max())
            raise DataError(
                f"no segment can hold a window of {length} decisions (+1 settling bar) after the "
                f"{self.window}-bar observation warm-up; the longest segment has {longest} bars: "
                "lower episode_length (or episodes per trial) or min_segment"
            )
        raise DataError(f"no asset holds a window of {length} decisions after the {self.window}-bar "
                        "warm-up; lower episode_length or episodes per trial")

    @staticmethod
    def _regime_index(labels: np.ndarray, n: int, rng: np.random.Generator, regimes: np.ndarray | None,
                      length: int) -> np.ndarray:
        """Index into `labels` of each of `n` windows: balanced (a random rotation of the regimes,
        repeated, then shuffled) or the `regimes` asked for."""
        if regimes is None:
            return rng.permutation(np.resize(rng.permutation(len(labels)), n))
        regimes = np.asarray(regimes, dtype=np.int64).reshape(-1)
        reg_idx = np.searchsorted(labels, regimes).clip(0, len(labels) - 1)
        if len(regimes) != n or not np.array_equal(labels[reg_idx], regimes):
            raise DataError(
                f"regimes must be {n} labels that have windows of {length} decisions "
                f"(available: {labels.tolist()})"
            )
        return reg_idx

    @property
    def num_assets(self) -> int:
        """Number of pooled assets."""
        return len(self.prices)

    def regimes_for(self, length: int | None = None) -> np.ndarray:
        """Regime labels that have at least one valid window of `length` decisions."""
        counts = self._check_length(length or self.episode_length)
        return np.unique(self.segments[counts > 0, 3])

    # -- sampling
    def sample_task_arrays(
        self,
        n: int,
        rng: np.random.Generator,
        *,
        length: int | None = None,
        regimes: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`n` windows of `length` decisions (default `episode_length`) as int64 arrays
        `(asset_idx, start, length, regime)`, `regime` the label at the start. Regimes are
        balanced (each regime gets `n // R` or one more, which ones get the extra is random)
        unless `regimes` (`n` labels) says which regime each window must start in. The start is
        uniform over the regime's bars; the window then runs on (`windows="start"`, the same
        draw as `sample_stream_arrays`) or stays inside the segment (legacy `"inside"`)."""
        if n < 1:
            raise ConfigError(f"n={n} tasks: ask for at least one")
        length = int(length or self.episode_length)
        if self.windows == "start":
            return self._start_conditioned(n, rng, length, regimes)
        counts = self._check_length(length)
        live = counts > 0
        seg, counts = self.segments[live], counts[live]
        labels = np.unique(seg[:, 3])
        reg_idx = self._regime_index(labels, n, rng, regimes, length)
        cum = np.cumsum(counts)
        before = cum - counts
        # per regime, its range in the concatenated count space (segments are sorted by regime)
        r_of_seg = np.searchsorted(labels, seg[:, 3])
        r_lo = np.full(len(labels), np.iinfo(np.int64).max)
        np.minimum.at(r_lo, r_of_seg, before)
        r_hi = np.zeros(len(labels), np.int64)
        np.maximum.at(r_hi, r_of_seg, cum)
        lo, hi = r_lo[reg_idx], r_hi[reg_idx]
        u = lo + np.floor(rng.random(n) * (hi - lo)).astype(np.int64)
        s = np.searchsorted(cum, u, side="right")
        start = np.maximum(seg[s, 1], self.window) + (u - before[s])
        return (
            seg[s, 0].copy(),
            start.astype(np.int64),
            np.full(n, length, dtype=np.int64),
            seg[s, 3].copy(),
        )

    def sample_stream_arrays(
        self, n: int, rng: np.random.Generator, *, length: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`n` windows of `length` decisions that START in a regime segment (regimes balanced,
        start uniform over the segment's bars) and run on through whatever follows it, regime
        changes included; a start is never so late that the window would pass the asset's last
        bar. Same arrays as `sample_task_arrays` (`regime` = the regime at the start), whatever
        the sampler's `windows`."""
        if n < 1:
            raise ConfigError(f"n={n} tasks: ask for at least one")
        return self._start_conditioned(n, rng, int(length), None)

    def _start_conditioned(self, n: int, rng: np.random.Generator, length: int,
                           regimes: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """The start-conditioned draw: a regime per window, a segment of it with probability
        proportional to its valid starts, a start uniform among them (one draw per regime)."""
        lo, counts = self._start_range(length, "start")
        self._check_length(length, "start")
        live = counts > 0
        seg, lo, counts = self.segments[live], lo[live], counts[live]
        labels = np.unique(seg[:, 3])
        reg = labels[self._regime_index(labels, n, rng, regimes, length)]
        pick = np.empty(n, dtype=np.int64)
        for label in labels:  # one draw per regime (a handful), not per task
            rows = np.flatnonzero(seg[:, 3] == label)
            chosen = reg == label
            weights = counts[rows] / counts[rows].sum()  # uniform over the regime's bars
            pick[chosen] = rng.choice(rows, size=int(chosen.sum()), p=weights)
        start = lo[pick] + np.floor(rng.random(n) * counts[pick]).astype(np.int64)
        return seg[pick, 0].copy(), start, np.full(n, length, dtype=np.int64), seg[pick, 3].copy()

    def window_labels(self, asset: np.ndarray, start: np.ndarray, length: int) -> np.ndarray:
        """The label at each decision bar of the windows `(asset, start)`: int64 `[N, length]`,
        `labels[asset][start + k]`, -1 unlabelled (a training target only, never an input)."""
        flat = np.concatenate([np.nan_to_num(np.asarray(lab, dtype=np.float64), nan=-1) for lab in self.labels])
        offset = np.cumsum([0] + [len(lab) for lab in self.labels])[np.asarray(asset)] + np.asarray(start)
        return flat.astype(np.int64)[offset[:, None] + np.arange(int(length))]

    def sample_tasks(self, n: int, rng: np.random.Generator, *, length: int | None = None) -> list[Task]:
        """`sample_task_arrays` as a list of `Task`."""
        a, s, n_, r = self.sample_task_arrays(n, rng, length=length)
        return [Task(int(x), int(y), int(z), int(w)) for x, y, z, w in zip(a, s, n_, r, strict=True)]

    def __repr__(self) -> str:
        return (
            f"TaskSampler(assets={self.asset_names}, segments={len(self.segments)}, "
            f"regimes={self.regimes.tolist()}, episode_length={self.episode_length}, window={self.window}, "
            f"windows={self.windows!r})"
        )


def held_out_tasks(
    prices: Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame] | pd.DataFrame,
    labels: Sequence[pd.Series] | Mapping[str, pd.Series] | pd.Series,
    *,
    window: int,
    min_length: int = 20,
) -> list[Task]:
    """The held-out tasks of the test-period frames: one task per held-out segment
    (`fin_meta.regimes.segments.held_out_runs`, the segments `fin-meta run` scores: runs shorter
    than `min_length` bars merged into a neighbour, warm-up dropped, cut at bar `window` and
    kept with at least `min_length` bars left), whole: decisions from its first bar to the one
    before its last, settled at its last bar."""
    _, frames, label_list = _normalise_inputs(prices, labels)
    tasks: list[Task] = []
    for a, (frame, lab) in enumerate(zip(frames, label_list, strict=True)):
        series = lab if isinstance(lab, pd.Series) else pd.Series(np.asarray(lab), index=frame.index)
        first, last, label = held_out_runs(series, min_length, start=window)
        tasks += _segment_tasks(a, first, last, label, min_length=min_length, window=window)
    return tasks
