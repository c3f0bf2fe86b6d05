"""The parquet cache of yfinance bars: one file per ticker and interval,
`<data_dir>/yf/<TICKER>_<interval>.parquet`, holding the bars (lower-case columns, tz-naive
`date` index) and, in the parquet metadata, the date ranges already downloaded.

Ranges are half-open `[start, end)` of midnight timestamps. A range is "covered" once it has
been downloaded, even where it has no bars (weekends, holidays), so it is never asked for again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from fin_meta.errors import DataError
from fin_meta.fileio import atomic_path

__all__ = [
    "DateRange",
    "CachedBars",
    "cache_path",
    "merge_ranges",
    "missing_ranges",
    "read_cache",
    "write_cache",
    "stitch",
]

DateRange = tuple[pd.Timestamp, pd.Timestamp]
"""A half-open range of dates `[start, end)`."""

_META_KEY = b"fin_meta"
_FORMAT = 1
_PRICES = ["open", "high", "low", "close"]


@dataclass
class CachedBars:
    """What the cache holds for one ticker: its bars and the ranges already downloaded."""

    frame: pd.DataFrame
    covered: list[DateRange] = field(default_factory=list)


def cache_path(data_dir: Path, ticker: str, interval: str) -> Path:
    """File of `ticker` at `interval` under `data_dir`."""
    return Path(data_dir) / "yf" / f"{ticker}_{interval}.parquet"


def merge_ranges(ranges: list[DateRange]) -> list[DateRange]:
    """Sorted, non-overlapping union of `ranges` (touching ranges are joined)."""
    merged: list[DateRange] = []
    for lo, hi in sorted(r for r in ranges if r[0] < r[1]):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def missing_ranges(request: DateRange, covered: list[DateRange]) -> list[DateRange]:
    """The parts of `request` that no range of `covered` contains, in order."""
    lo, hi = request
    gaps: list[DateRange] = []
    for c_lo, c_hi in merge_ranges(covered):
        if c_hi <= lo or c_lo >= hi:
            continue
        if c_lo > lo:
            gaps.append((lo, c_lo))
        lo = max(lo, c_hi)
    if lo < hi:
        gaps.append((lo, hi))
    return gaps


def read_cache(path: Path) -> CachedBars:
    """The cached bars at `path` (empty when the file does not exist)."""
    import pyarrow.parquet as pq  # slow to import (0.2 s): only when a cache is read

    if not path.exists():
        empty = pd.DatetimeIndex([], name="date")
        return CachedBars(pd.DataFrame(columns=[*_PRICES, "volume"], index=empty, dtype="float64"))
    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {})[_META_KEY])
        covered = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in meta["covered"]]
        frame = table.to_pandas()
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(
            f"the price cache {path} is unreadable ({exc}); delete it and fetch again"
        ) from exc
    return CachedBars(frame, merge_ranges(covered))


def write_cache(path: Path, cached: CachedBars) -> None:
    """Write `cached` to `path` atomically (a crash never leaves a half-written file)."""
    import pyarrow as pa  # slow to import: only when a cache is written
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(cached.frame, preserve_index=True)
    meta = {
        "format": _FORMAT,
        "covered": [[a.isoformat(), b.isoformat()] for a, b in merge_ranges(cached.covered)],
    }
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()}
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def stitch(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Combine cached bars with newly downloaded ones (new wins where both have a bar).

    Adjusted prices are back-adjusted relative to the day they were downloaded: after a split
    or dividend, every earlier price changes. When the two frames share a bar, one side is
    rescaled so both use the same adjustment: the older cache onto a newer chunk that extends
    past it, otherwise the chunk onto the cache. So a split between two downloads never shows
    up as a crash at the seam."""
    if old.empty:
        return new
    if new.empty:
        return old
    common = old.index.intersection(new.index)
    if len(common):
        if new.index[-1] > old.index[-1]:
            day = common[-1]
            old = _scaled(old, new.at[day, "close"] / old.at[day, "close"])
        else:
            day = common[0]
            new = _scaled(new, old.at[day, "close"] / new.at[day, "close"])
    both = pd.concat([old, new])
    return both[~both.index.duplicated(keep="last")].sort_index()


def _scaled(frame: pd.DataFrame, factor: float) -> pd.DataFrame:
    out = frame.copy()
    out[_PRICES] = out[_PRICES] * factor
    return out
