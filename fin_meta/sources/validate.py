"""The one place that enforces DESIGN.md's prices convention on any loaded frame.

Output of `validate_prices`: a new DataFrame with a tz-naive `DatetimeIndex`
named `date`, strictly increasing and unique, and exactly the float64 columns
`open high low close volume` (prices in the instrument's currency, volume in units traded).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Hashable

import numpy as np
import pandas as pd

from fin_meta.constants import INDEX_NAME, PRICE_COLUMNS
from fin_meta.errors import DataError

__all__ = [
    "validate_prices",
    "require_bars",
    "canonical_column",
    "apply_adj_close",
    "format_date",
    "DATE_COLUMNS",
]

OHLC: tuple[str, ...] = ("open", "high", "low", "close")
DATE_COLUMNS: tuple[str, ...] = ("date", "datetime", "timestamp", "time")
"""Column names (matched case-insensitively, ignoring spaces and underscores) read as the dates."""

_ALIASES: dict[str, str] = {
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "adjclose": "adj_close",
    "adjustedclose": "adj_close",
    **{name: "date" for name in DATE_COLUMNS},
}


def canonical_column(name: Hashable) -> str | None:
    """The fin-meta name of a column (`'Adj Close'` -> `'adj_close'`, `' DATE'` -> `'date'`),
    or None for a column fin-meta does not use. Case, spaces, `_` and `-` are ignored."""
    key = re.sub(r"[\s_\-]", "", str(name).lower())
    return _ALIASES.get(key)


def validate_prices(
    df: pd.DataFrame, source: str, ffill_limit: int = 5, *, min_bars: int = 2
) -> pd.DataFrame:
    """Check and normalise a prices frame; raise `DataError` naming `source`, the column or row
    and the fix for anything that breaks the convention.

    Rules, in order:
    - columns are matched case-insensitively (`Open`, `ADJ CLOSE`, `adj_close` ...); columns
      fin-meta does not use (`Dividends`, `Stock Splits`, ...) are dropped. `open high low close`
      are required; a missing `volume` becomes 0.0.
    - dates come from the DatetimeIndex or else from a `date`/`datetime`/`timestamp`/`time`
      column; unparsable dates are an error. A tz-aware index keeps its local wall-clock time
      and drops the zone (a daily bar stays on its exchange date).
    - duplicate dates are an error. An **unsorted** index is **sorted, with a UserWarning**
      (files exported newest-first are common and sorting loses nothing).
    - non-numeric values are an error; NaN prices are forward-filled when a run of NaN is at
      most `ffill_limit` bars long, otherwise (or when the series starts with NaN) an error.
      NaN volume becomes 0.0.
    - `Adj Close`, when present, adjusts prices for dividends and splits: open, high, low and
      close are multiplied by `adj_close / close` on each bar, so close becomes the adjusted
      close and open/high/low keep their ratios to it; volume is left as reported. Without
      this a split would look like a crash.
    - prices must be finite and > 0, volume finite and >= 0; at least `min_bars` bars.
    """
    _check_arguments(df, source, ffill_limit, min_bars)
    frame = _select_columns(df, source)
    frame.index = _parse_dates(frame, df, source)
    frame = frame.drop(columns="date", errors="ignore")
    frame = _order_rows(frame, source)
    frame = _to_numeric(frame, source)
    filled = _forward_fill(frame, source, ffill_limit)
    frame = apply_adj_close(frame)
    _check_values(frame, source)
    require_bars(frame, min_bars, source=source)
    out = frame.loc[:, list(PRICE_COLUMNS)].astype("float64")
    out.columns.name = None
    out.attrs = {"source": source, "nans_filled": filled}
    return out


def require_bars(
    prices: pd.DataFrame, n_bars: int, *, source: str = "prices", need: str = ""
) -> None:
    """Raise `DataError` when `prices` has fewer than `n_bars` rows (`need` says what for)."""
    if len(prices) < n_bars:
        span = (
            f" ({format_date(prices.index[0])}..{format_date(prices.index[-1])})"
            if len(prices)
            else ""
        )
        why = f" for {need}" if need else ""
        raise DataError(
            f"{source}: only {len(prices)} bars{span}, at least {n_bars} are needed{why}; "
            "widen the start/end range or use a longer source"
        )


def _check_arguments(df: object, source: str, ffill_limit: int, min_bars: int) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame of prices, got {type(df).__name__}")
    if isinstance(df.columns, pd.MultiIndex):
        raise DataError(
            f"{source}: columns are a MultiIndex {list(df.columns[:3])}...; select one "
            "instrument first (e.g. df.xs('SPY', axis=1, level='Ticker'))"
        )
    if (
        isinstance(ffill_limit, bool)
        or not isinstance(ffill_limit, int | np.integer)
        or ffill_limit < 0
    ):
        raise DataError(f"{source}: ffill_limit must be an integer >= 0, got {ffill_limit!r}")
    if isinstance(min_bars, bool) or not isinstance(min_bars, int | np.integer) or min_bars < 1:
        raise DataError(f"{source}: min_bars must be an integer >= 1, got {min_bars!r}")
    if df.empty:
        raise DataError(f"{source}: no rows of prices; check the file, ticker or date range")


def _select_columns(df: pd.DataFrame, source: str) -> pd.DataFrame:
    names = [canonical_column(c) for c in df.columns]
    seen: dict[str, Hashable] = {}
    for original, name in zip(df.columns, names, strict=True):
        if name is None:
            continue
        if name in seen:
            raise DataError(
                f"{source}: columns {seen[name]!r} and {original!r} both mean {name!r}; "
                "keep only one of them"
            )
        seen[name] = original
    missing = [c for c in OHLC if c not in seen]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)} (found: "
            f"{', '.join(map(str, df.columns))}); provide open, high, low and close "
            "(if you only have closing prices, set open = high = low = close)"
        )
    frame = df.loc[:, list(seen.values())].copy()
    frame.columns = list(seen)
    if "volume" not in frame.columns:
        frame["volume"] = 0.0
    return frame


def _parse_dates(frame: pd.DataFrame, original: pd.DataFrame, source: str) -> pd.DatetimeIndex:
    if "date" in frame.columns:
        raw, where = frame["date"], "column 'date'"
    elif (
        isinstance(original.index, pd.DatetimeIndex)
        or original.index.dtype == object
        or (pd.api.types.is_string_dtype(original.index.dtype))
    ):
        raw, where = pd.Series(original.index, index=frame.index), "the index"
    else:
        raise DataError(
            f"{source}: no dates found: the index is {original.index.dtype} and no column is "
            f"named one of {', '.join(DATE_COLUMNS)}; name the date column 'date'"
        )
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        parsed = raw.dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(raw.dtype):
        parsed = raw
    else:
        parsed = _parse_date_strings(raw, where, source)
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: unparsable date {raw.iloc[i]!r} in {where} at row {i} "
            f"({int(bad.sum())} bad in all); use ISO dates like 2020-01-31"
        )
    return pd.DatetimeIndex(parsed.to_numpy(), name=INDEX_NAME)


def _parse_date_strings(raw: pd.Series, where: str, source: str) -> pd.Series:
    try:
        parsed = pd.to_datetime(raw, errors="coerce")
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: cannot read the dates in {where}: {exc}") from exc
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_localize(None)
    return parsed


def _order_rows(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    index = frame.index
    dup = index.duplicated(keep=False)
    if dup.any():
        dates = sorted({format_date(d) for d in index[dup]})
        raise DataError(
            f"{source}: duplicate dates {', '.join(dates[:3])}{' ...' if len(dates) > 3 else ''} "
            f"({len(dates)} dates, {int(dup.sum())} rows); keep one row per date"
        )
    if not index.is_monotonic_increasing:
        warnings.warn(
            f"{source}: dates were not in increasing order; sorted them", UserWarning, stacklevel=3
        )
        frame = frame.sort_index(kind="stable")
    return frame


def _to_numeric(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    out = {}
    for col in frame.columns:
        values = frame[col]
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
            values.dtype
        ):
            out[col] = values.astype("float64")
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        bad = (numbers.isna() & values.notna()).to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{source}: non-numeric value {values.iloc[i]!r} in column {col!r} on "
                f"{format_date(frame.index[i])}; fix or remove that value"
            )
        out[col] = numbers.astype("float64")
    return pd.DataFrame(out, index=frame.index)


def _forward_fill(frame: pd.DataFrame, source: str, limit: int) -> dict[str, int]:
    """Forward-fill NaN prices in place (runs of at most `limit` bars); NaN volume -> 0.
    Returns the number of values filled per column."""
    filled: dict[str, int] = {}
    for col in frame.columns:
        isna = frame[col].isna().to_numpy()
        n = int(isna.sum())
        filled[col] = n
        if not n:
            continue
        if col == "volume":
            frame[col] = frame[col].fillna(0.0)
            continue
        starts = np.flatnonzero(isna & ~np.r_[False, isna[:-1]])
        ends = np.flatnonzero(isna & ~np.r_[isna[1:], False])
        lengths = ends - starts + 1
        if starts[0] == 0:
            raise DataError(
                f"{source}: column {col!r} is NaN in its first {lengths[0]} bar(s) "
                f"({format_date(frame.index[0])}..{format_date(frame.index[ends[0]])}) and cannot be "
                f"forward-filled; start after {format_date(frame.index[ends[0]])}"
            )
        long = np.flatnonzero(lengths > limit)
        if long.size:
            k = long[0]
            raise DataError(
                f"{source}: column {col!r} has {lengths[k]} consecutive NaN bars from "
                f"{format_date(frame.index[starts[k]])} (at most {limit} are forward-filled); "
                "fix the data or raise ffill_limit"
            )
        frame[col] = frame[col].ffill()
    return filled


def apply_adj_close(frame: pd.DataFrame) -> pd.DataFrame:
    """Multiply open, high, low and close by `adj_close / close` and drop `adj_close`
    (a no-op without that column). Volume is left as reported. Returns a new frame."""
    if "adj_close" not in frame.columns:
        return frame
    factor = frame["adj_close"] / frame["close"]
    frame = frame.drop(columns="adj_close")
    frame[list(OHLC)] = frame[list(OHLC)].mul(factor, axis=0)
    return frame


def _check_values(frame: pd.DataFrame, source: str) -> None:
    for col in PRICE_COLUMNS:
        values = frame[col].to_numpy()
        bad = ~np.isfinite(values) | (values < 0 if col == "volume" else values <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            rule = (
                "volume must be finite and >= 0"
                if col == "volume"
                else f"{col} must be finite and > 0 (after any Adj Close adjustment)"
            )
            raise DataError(
                f"{source}: column {col!r} has {float(values[i])} on "
                f"{format_date(frame.index[i])} ({int(bad.sum())} bad value(s)); {rule}"
            )


def format_date(ts: object) -> str:
    """`YYYY-MM-DD` for a midnight timestamp, ISO date-time otherwise."""
    ts = pd.Timestamp(ts)
    return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat()
