"""Time splits: train / (validation) / test periods of one prices frame, with an embargo, and the
folds of a walk-forward with refits (`walk_forward_folds`, rolling origin).

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
from fin_meta.frequency import bars_per_year, bars_per_year_of, frequency_name, in_bars
from fin_meta.sources.dates import DateLike, parse_date

__all__ = ["DEFAULT_EMBARGO_YEARS", "DEFAULT_REFIT_YEARS", "Fold", "TimeSplit", "default_embargo", "split_periods",
           "walk_forward_folds"]

DEFAULT_EMBARGO_YEARS = 1 / 12
"""The embargo when none is given: one month, as bars of the prices' frequency (at least 1)."""
DEFAULT_REFIT_YEARS = 1.0
"""A walk-forward refits this often when `refit_every` is not given: a year of bars (252 daily)."""


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


@dataclass(frozen=True)
class Fold:
    """One walk-forward fold: bar positions `[first, end)` into the prices' index. The agent
    trains on `train` bars only and then trades the `trade` bars; at least `embargo` bars lie
    strictly between the last training bar and the first traded one."""

    number: int
    train: tuple[int, int]
    trade: tuple[int, int]

    def describe(self, index: pd.DatetimeIndex) -> str:
        """`train 1999-01-04 .. 2012-12-01 (3,500 bars), trade 2013-01-02 .. 2013-12-31 (252 bars)`."""
        return ", ".join(f"{name} {index[a].date()} .. {index[b - 1].date()} ({b - a:,} bars)"
                         for name, (a, b) in (("train", self.train), ("trade", self.trade)))


def walk_forward_folds(
    index: pd.DatetimeIndex,
    *,
    test_start: DateLike,
    test_end: DateLike = None,
    refit_every: int | None = None,
    train_bars: int | None = None,
    embargo: int | None = None,
    train_start: DateLike = None,
    per_year: float | None = None,
) -> list[Fold]:
    """The folds of a walk-forward with refits over the test period `test_start .. test_end`
    (dates, inclusive; `test_end=None`: the last bar) of `index`. Fold k trades the bars
    `[c_k, d_k)`: consecutive blocks of `refit_every` bars (the last may be shorter) that tile the
    test period exactly; it trains on `[a_k, b_k)` with `b_k = c_k - embargo` and `a_k` the first
    training bar (`train_start`, else the first bar; `train_bars=None`: an expanding window) or
    `b_k - train_bars` (a rolling window of that many bars, cut at the first training bar).
    Not given, `refit_every` is a year of bars and `embargo` a month (`per_year`: bars per year,
    None: inferred from `index`); given, they are bars. Settings the data cannot hold are one
    line: `ConfigError` (a bad number, no training bar before the first fold), `DataError` (an
    empty test period)."""
    per_year = bars_per_year(index) if per_year is None else float(per_year)
    refit = in_bars(DEFAULT_REFIT_YEARS, per_year) if refit_every is None else int(refit_every)
    gap = in_bars(DEFAULT_EMBARGO_YEARS, per_year) if embargo is None else int(embargo)
    for name, value, least in (("refit_every", refit, 1), ("train_bars", train_bars, 1), ("embargo", gap, 0)):
        if value is not None and value < least:
            raise ConfigError(f"evaluation.walk_forward.{name}={value} must be >= {least} bar{'s' * (least != 1)}")
    first = 0 if train_start is None else int(index.searchsorted(parse_date(train_start, "train_start")))
    lo = int(index.searchsorted(parse_date(test_start, "test_start")))
    end = parse_date(test_end, "test_end")
    hi = len(index) if end is None else int(index.searchsorted(end, side="right"))
    if hi <= lo:
        raise DataError(f"walk-forward: the test period is empty: no bars of the prices ({_span(index)}) fall in it; "
                        "move data.test_start or data.test_end")
    if lo - gap <= first:
        start = index[first].date() if first < len(index) else "after the last bar"
        raise ConfigError(
            f"walk-forward: the first fold trades from {index[lo].date()}, so it must train on bars up to "
            f"embargo={gap} bars before it, but only {max(0, lo - first)} bars lie between the first training bar "
            f"({start}) and it: lower evaluation.walk_forward.embargo or start the test period later")
    starts = range(lo, hi, refit)
    return [Fold(number=k, train=(first if train_bars is None else max(first, c - gap - train_bars), c - gap),
                 trade=(c, min(c + refit, hi)))
            for k, c in enumerate(starts)]
