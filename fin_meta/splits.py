"""Time splits: train / (validation) / test periods of one prices frame, with an embargo.

Dates are calendar dates, inclusive, read by `fin_meta.sources.dates.parse_date`; the embargo
is in bars: at least that many bars lie strictly between consecutive periods, so rolling
features and labels of one period cannot see the next. Not given (None), it is one month of the
prices' bars (`DEFAULT_EMBARGO_YEARS`, converted with `fin_meta.frequency`: 21 daily bars, 4
weekly, 1 monthly); given, it stays in bars.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fin_meta.errors import ConfigError, DataError
from fin_meta.frequency import bars_per_year_of, frequency_name, in_bars
from fin_meta.sources.dates import DateLike, parse_date

__all__ = ["DEFAULT_EMBARGO_YEARS", "TimeSplit", "default_embargo", "split_periods"]

DEFAULT_EMBARGO_YEARS = 1 / 12
"""The embargo when none is given: one month, as bars of the prices' frequency (at least 1)."""


def default_embargo(prices: pd.DataFrame) -> int:
    """One month of bars of `prices` (`fin_meta.frequency.bars_per_year_of`): 21 daily, 4
    weekly, 1 monthly or longer."""
    return in_bars(DEFAULT_EMBARGO_YEARS, bars_per_year_of(prices))


@dataclass(frozen=True)
class TimeSplit:
    """Train / (validation) / test periods, inclusive dates, with an embargo of `embargo` bars
    (None: one month of the prices' bars, `default_embargo`).

    * train: `train_start .. train_end` (`train_start=None`: from the first bar);
    * val (optional): from `val_start` up to the last bar that is still `embargo` bars before the
      first test bar;
    * test: `test_start .. test_end` (`test_end=None`: to the last bar).

    At least `embargo` bars lie strictly between consecutive periods (so rolling features and
    labels of one period cannot see the next). Check it with `split(prices)`."""

    train_end: pd.Timestamp
    test_start: pd.Timestamp
    train_start: pd.Timestamp | None = None
    test_end: pd.Timestamp | None = None
    val_start: pd.Timestamp | None = None
    embargo: int | None = None

    def split(self, prices: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Cut `prices` into `{"train", ("val"), "test"}` frames. Raises `ConfigError` when the
        periods are out of order or closer than the embargo, `DataError` when one is empty."""
        if self.embargo is not None and self.embargo < 0:
            raise ConfigError(f"embargo={self.embargo} must be >= 0 bars")
        idx = prices.index
        if not isinstance(idx, pd.DatetimeIndex):
            raise DataError("prices must have a DatetimeIndex named 'date' to be split by dates")
        embargo = default_embargo(prices) if self.embargo is None else self.embargo
        if self.train_end >= self.test_start:
            raise ConfigError(
                f"train_end={self.train_end.date()} must be before test_start={self.test_start.date()}"
            )
        if self.train_start is not None and self.train_start > self.train_end:
            raise ConfigError(
                f"train_start={self.train_start.date()} is after train_end={self.train_end.date()}"
            )
        if self.test_end is not None and self.test_end < self.test_start:
            raise ConfigError(
                f"test_end={self.test_end.date()} is before test_start={self.test_start.date()}"
            )
        if self.val_start is not None and not (self.train_end < self.val_start < self.test_start):
            raise ConfigError(
                f"val_start={self.val_start.date()} must lie between train_end="
                f"{self.train_end.date()} and test_start={self.test_start.date()}"
            )

        lo = idx.searchsorted(self.train_start) if self.train_start is not None else 0
        train_hi = idx.searchsorted(self.train_end, side="right")  # exclusive
        test_lo = idx.searchsorted(self.test_start)
        test_hi = idx.searchsorted(self.test_end, side="right") if self.test_end is not None else len(idx)
        bounds: dict[str, tuple[int, int]] = {"train": (lo, train_hi)}
        if self.val_start is not None:
            bounds["val"] = (idx.searchsorted(self.val_start), test_lo - embargo)
        bounds["test"] = (test_lo, test_hi)

        for name, (a, b) in bounds.items():
            if b <= a:
                raise DataError(
                    f"the {name} period is empty: no bars of the prices "
                    f"({_span(idx)}) fall in it; move its dates"
                )
        names = list(bounds)
        for prev, nxt in zip(names, names[1:], strict=False):
            gap = bounds[nxt][0] - bounds[prev][1]  # bars strictly between the two periods
            if gap < embargo:
                raise ConfigError(
                    f"only {gap} bars between the {prev} period (ends {idx[bounds[prev][1] - 1].date()}) "
                    f"and the {nxt} period (starts {idx[bounds[nxt][0]].date()}); the embargo needs "
                    f"{embargo}{self._default_note(prices)}: start {nxt} later or end {prev} earlier"
                )
        return {name: prices.iloc[a:b] for name, (a, b) in bounds.items()}

    def _default_note(self, prices: pd.DataFrame) -> str:
        """` (the default: one month of weekly bars)` when the embargo was not given, else ``."""
        if self.embargo is not None:
            return ""
        return f" (the default: one month of {frequency_name(bars_per_year_of(prices))} bars)"


def _span(idx: pd.Index) -> str:
    """`first .. last` date of an index, for messages."""
    if len(idx) == 0:
        return "no bars"
    return f"{pd.Timestamp(idx[0]).date()} .. {pd.Timestamp(idx[-1]).date()}"


def split_periods(
    prices: pd.DataFrame,
    *,
    train_end: DateLike,
    test_start: DateLike,
    train_start: DateLike = None,
    test_end: DateLike = None,
    val_start: DateLike = None,
    embargo: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Split one prices frame into train / (val) / test periods (dates inclusive) with at least
    `embargo` bars between consecutive periods (None: one month of bars, `default_embargo`);
    see `TimeSplit`. A date that cannot be read
    is a `DataError` (`parse_date`); `train_end` and `test_start` are required."""
    required = {"train_end": train_end, "test_start": test_start}
    missing = [name for name, value in required.items() if value is None]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} must be given (YYYY-MM-DD)")
    split = TimeSplit(
        train_end=parse_date(train_end, "train_end"),
        test_start=parse_date(test_start, "test_start"),
        train_start=parse_date(train_start, "train_start"),
        test_end=parse_date(test_end, "test_end"),
        val_start=parse_date(val_start, "val_start"),
        embargo=None if embargo is None else int(embargo),
    )
    return split.split(prices)
