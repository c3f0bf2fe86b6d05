"""Checks `fin-meta run` makes on the data before any training: the test period is long enough
to score (`check_test_length`), and where the meta-test's held-out segments are, or why there
are none (`held_out`). Bars are bars of each source's own frequency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fin_meta.agents import Agent
from fin_meta.errors import ConfigError
from fin_meta.frequency import frequency_name, in_bars
from fin_meta.metatest import adaptation_context
from fin_meta.pipeline.stages import SourceData
from fin_meta.regimes.segments import held_out_segments, segments

__all__ = ["HeldOut", "check_test_length", "held_out", "min_test_bars_of"]

MIN_TEST_YEARS = 1.0
"""The shortest test period scored when `evaluation.min_test_bars` is not given: one year of bars."""


def min_test_bars_of(src: SourceData, min_test_bars: int | None) -> int:
    """`min_test_bars`, or one year of `src`'s bars when None (252 daily, 12 monthly)."""
    return in_bars(MIN_TEST_YEARS, src.bars_per_year) if min_test_bars is None else int(min_test_bars)


def check_test_length(sources: Sequence[SourceData], min_test_bars: int | None) -> None:
    """`ConfigError` (one line) when a source's test period, or its validation period when it
    has one, has fewer bars than `min_test_bars` (None: one year of its bars): Sharpe and CAGR
    over a few dozen bars mean little, and early stopping on them would choose on noise."""
    for src in sources:
        need = min_test_bars_of(src, min_test_bars)
        for name, frame, fix in (("test", src.test, "move data.test_start earlier, use data that reach further"),
                                 ("validation", src.val, "move data.val_start earlier")):
            if frame is None or len(frame) >= need:
                continue
            index = frame.index
            given = "" if min_test_bars is not None else f" (one year of {frequency_name(src.bars_per_year)} bars)"
            cut = "".join(f"; {note}" for note in src.notes)
            raise ConfigError(
                f"the {name} period of {src.source} has {len(index)} bars ({index[0].date()} .. {index[-1].date()}"
                f"{cut}), fewer than evaluation.min_test_bars={need}{given}: {fix}, or lower "
                "evaluation.min_test_bars"
            )


@dataclass
class HeldOut:
    """The meta-test's held-out segments: per source, `[first, end)` bar positions into its walk
    frame, each at least `min_bars` bars; `longest`: the longest regime segment (bars) of any
    test period; `note`: why there is none (None when there are segments)."""

    bounds: list[list[tuple[int, int]]]
    min_bars: int
    longest: int
    note: str | None = None

    @property
    def count(self) -> int:
        """Number of held-out segments over all sources."""
        return sum(len(b) for b in self.bounds)


def held_out(agents: Mapping[str, Agent], sources: Sequence[SourceData], causal: Sequence[pd.Series],
             steps: Sequence[int], *, min_length: int, episode_length: int) -> HeldOut:
    """The held-out regime segments of every test period (causal labels `causal` over each walk
    frame): long enough for every agent's adaptation context plus one evaluated episode of
    `episode_length` bars, and at least `min_length` (regimes.min_length) bars."""
    context = adaptation_context(agents, steps)
    min_bars = max(min_length, context + episode_length)
    bounds = [held_out_segments(labels, min_bars, start=src.test_start)
              for src, labels in zip(sources, causal, strict=True)]
    longest = max(_longest_segment(labels, min_bars, src.test_start) for src, labels in zip(sources, causal, strict=True))
    result = HeldOut(bounds, min_bars, longest)
    if not result.count:
        if context + episode_length > min_length:
            fix = (f"it needs {context} bars of adaptation context (evaluation.adaptation_steps up to "
                   f"{max(steps)}) plus one episode (env.episode_length={episode_length}): use fewer steps, "
                   "shorter episodes, or a longer test period")
        else:
            fix = "lower regimes.min_length or lengthen the test period"
        result.note = (f"meta-test: no held-out segment of >= {min_bars} bars in the test period "
                       f"(longest: {longest}); {fix}")
    return result


def _longest_segment(labels: pd.Series, min_length: int, start: int) -> int:
    """Bars of the longest labelled regime segment (runs under `min_length` merged) from bar
    `start` on: what the held-out segments would need to reach `min_length`."""
    segs = segments(labels, min_length=min_length)
    segs = segs[segs["label"] >= 0]
    if segs.empty:
        return 0
    first = np.maximum(labels.index.get_indexer(segs["start"]), start)
    return int(max(0, (labels.index.get_indexer(segs["end"]) - first + 1).max()))
