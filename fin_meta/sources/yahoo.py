"""`yf:TICKER`: daily (or other interval) bars from Yahoo Finance through yfinance, cached as
parquet and offline-first.

- A date range already in the cache is never downloaded again; a partly cached range
  downloads only the missing part(s) (plus one known bar each side, to stitch adjustments).
- The current day's bar is never fetched (it may still be forming): `end` is capped at
  yesterday, and `end=None` means "up to yesterday".
- `yf_download` is the only function that touches the network; tests replace it.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from fin_meta.errors import DataError
from fin_meta.sources.dates import DateLike, parse_date
from fin_meta.sources.paths import resolve_data_dir
from fin_meta.sources.validate import apply_adj_close, canonical_column, validate_prices
from fin_meta.sources.yf_cache import (
    CachedBars,
    DateRange,
    cache_path,
    merge_ranges,
    missing_ranges,
    read_cache,
    stitch,
    write_cache,
)

__all__ = ["INTERVALS", "fetch_yf", "load", "normalize_yf", "yf_download"]

INTERVALS: tuple[str, ...] = (
    "1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk", "1mo", "3mo",
)  # fmt: skip
"""Bar intervals yfinance accepts."""

EARLIEST = pd.Timestamp("1900-01-01")
"""Start of the range asked for when `start=None` ("all history")."""

_TICKER = re.compile(r"^[A-Z0-9^][A-Z0-9^.=\-_]{0,19}$")
_NETWORK_HINTS = (
    "dnserror", "connectionerror", "could not resolve", "timeout", "timed out", "curl: (",
    "failed to perform", "sslerror", "proxyerror", "connection refused", "too many requests",
    "ratelimit",
)  # fmt: skip
_log = logging.getLogger(__name__)


def yf_download(ticker: str, start: str | None, end: str, interval: str) -> pd.DataFrame:
    """Bars of one ticker exactly as `yfinance.download` returns them (MultiIndex
    (Price, Ticker) columns, adjusted prices), for dates `[start, end)`; `start=None` means
    all history. The one network call of fin-meta.

    yfinance logs failures instead of raising them; they are captured here, and an empty
    result caused by an unreachable or rate-limiting Yahoo raises `ConnectionError`."""
    import yfinance as yf  # slow to import: only when downloading

    logger = logging.getLogger("yfinance")
    capture = _Capture()
    propagate, logger.propagate = logger.propagate, False
    logger.addHandler(capture)
    try:
        with warnings.catch_warnings():
            # yfinance 1.7 calls pandas methods with `inplace=True`, deprecated in pandas 3.1: a warning
            # about yfinance's own code that users cannot act on, so it is hidden here and only here.
            warnings.filterwarnings("ignore", message="The inplace keyword", module="yfinance")
            extra = {"period": "max"} if start is None else {"start": start}
            raw = yf.download(
                ticker, end=end, interval=interval, auto_adjust=True, progress=False,
                threads=False, multi_level_index=True, **extra,
            )  # fmt: skip
    finally:
        logger.removeHandler(capture)
        logger.propagate = propagate
    empty = raw is None or raw.dropna(how="all").empty
    if empty and any(h in m.lower() for m in capture.messages for h in _NETWORK_HINTS):
        raise ConnectionError(capture.messages[-1])
    for message in capture.messages:
        _log.warning("yfinance %s: %s", ticker, message)
    return raw if raw is not None else pd.DataFrame()


def normalize_yf(raw: pd.DataFrame | None, ticker: str) -> pd.DataFrame:
    """One ticker's bars from a `yfinance.download` frame: MultiIndex columns (either level
    order) flattened, columns lower-cased, tz-aware index turned into the exchange's local
    dates, empty rows dropped, duplicates resolved (last wins), `Adj Close` applied.
    Returns an empty frame when yfinance had no bars."""
    if raw is None or raw.empty:
        return pd.DataFrame(columns=["open", "high", "low", "close", "volume"], dtype="float64")
    frame = raw
    if isinstance(frame.columns, pd.MultiIndex):
        levels = [
            i for i in range(frame.columns.nlevels) if ticker in frame.columns.get_level_values(i)
        ]
        if not levels:
            raise DataError(f"yf:{ticker}: yfinance returned columns for other tickers only")
        frame = frame.xs(ticker, axis=1, level=levels[0])
    names = {c: canonical_column(c) for c in frame.columns}
    frame = frame.loc[:, [c for c, n in names.items() if n and n != "date"]]
    frame.columns = [names[c] for c in frame.columns]
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_localize(None)
    frame = frame.set_axis(index.rename("date"), axis=0).astype("float64")
    frame = frame.dropna(how="all")
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    return apply_adj_close(frame)


def fetch_yf(
    tickers: Sequence[str],
    start: DateLike = None,
    end: DateLike = None,
    *,
    data_dir: str | Path | None = None,
    interval: str = "1d",
    progress: bool = True,
    ffill_limit: int = 5,
) -> dict[str, pd.DataFrame]:
    """Validated bars of each ticker for `[start, end]` (inclusive dates), from the cache
    under `<data_dir>/yf/` and, for what it lacks, from Yahoo Finance (the cache is updated
    atomically). Keys are the upper-cased tickers, in the given order. A tqdm progress bar
    runs over the tickers when `progress` is true."""
    if isinstance(tickers, str):
        tickers = [tickers]
    symbols = list(dict.fromkeys(_check_ticker(t) for t in tickers))
    if not symbols:
        raise DataError("no tickers given; e.g. fin-meta data fetch SPY QQQ")
    if interval not in INTERVALS:
        raise DataError(f"unknown yfinance interval {interval!r}; valid: {', '.join(INTERVALS)}")
    request = _request_range(start, end)
    folder = resolve_data_dir(data_dir)
    out: dict[str, pd.DataFrame] = {}
    for ticker in tqdm(
        symbols, desc="yfinance", unit="ticker", disable=not progress, file=sys.stderr
    ):
        frame = _cached_or_downloaded(
            ticker, request, cache_path(folder, ticker, interval), interval
        )
        out[ticker] = _select(frame, request, ticker, ffill_limit)
    return out


def load(
    ticker: str,
    *,
    start: DateLike = None,
    end: DateLike = None,
    data_dir: str | Path | None = None,
    progress: bool = False,
    ffill_limit: int = 5,
    **params: object,
) -> pd.DataFrame:
    """Bars of `yf:<ticker>`; the only parameter is `interval` (default "1d")."""
    unknown = sorted(set(params) - {"interval"})
    if unknown:
        raise DataError(f"yf:{ticker}: unknown parameter(s) {', '.join(unknown)}; valid: interval")
    interval = str(params.get("interval", "1d"))
    frames = fetch_yf(
        [ticker], start, end, data_dir=data_dir, interval=interval, progress=progress,
        ffill_limit=ffill_limit,
    )  # fmt: skip
    return next(iter(frames.values()))


def _check_ticker(ticker: str) -> str:
    symbol = str(ticker).strip().upper()
    if not _TICKER.match(symbol):
        raise DataError(
            f"invalid ticker {ticker!r}: use Yahoo Finance symbols like SPY, BRK-B, ^GSPC, EURUSD=X"
        )
    return symbol


def _request_range(start: DateLike, end: DateLike) -> DateRange:
    today = pd.Timestamp.now().normalize()
    lo = _day(start, "start") if start is not None else EARLIEST
    hi = _day(end, "end") + pd.Timedelta(days=1) if end is not None else today
    hi = min(hi, today)
    if lo >= hi:
        raise DataError(
            f"empty date range {lo.date()}..{(hi - pd.Timedelta(days=1)).date()} for yfinance "
            "(end is inclusive and capped at yesterday); pass start <= end < today"
        )
    return lo, hi


def _day(value: DateLike, what: str) -> pd.Timestamp:
    return parse_date(value, what).normalize()


def _cached_or_downloaded(
    ticker: str, request: DateRange, path: Path, interval: str
) -> pd.DataFrame:
    cached = read_cache(path)
    gaps = [g for g in missing_ranges(request, cached.covered) if _has_weekday(g)]
    frame = cached.frame
    for gap in gaps:
        lo, hi = _with_neighbours(gap, frame)
        start = None if lo <= EARLIEST else lo.strftime("%Y-%m-%d")
        try:
            raw = yf_download(ticker, start, hi.strftime("%Y-%m-%d"), interval)
        except Exception as exc:
            if _is_network_error(exc):
                raise _offline_error(ticker, gap, cached, path, exc) from exc
            raise
        chunk = normalize_yf(raw, ticker)
        if chunk.empty and frame.empty:
            raise DataError(
                f"yfinance has no data for ticker {ticker} ({_span(gap)}): check the symbol on "
                "finance.yahoo.com (it may be unknown or delisted) or the date range"
            )
        frame = stitch(frame, chunk)
    if gaps or missing_ranges(request, cached.covered):
        write_cache(path, CachedBars(frame, merge_ranges([*cached.covered, request])))
    return frame


def _offline_error(
    ticker: str, gap: DateRange, cached: CachedBars, path: Path, exc: BaseException
) -> DataError:
    if cached.covered:
        more = len(cached.covered) - 1
        held = f"the cache {path} holds {_span(cached.covered[0])}" + (
            f" and {more} more range(s)" if more else ""
        )
        held += ": choose start/end inside it"
    else:
        held = f"nothing is cached for {ticker} in {path.parent}"
    return DataError(
        f"cannot download yf:{ticker} {_span(gap)} from Yahoo Finance "
        f"(no network? {type(exc).__name__}: {exc}); {held}, or use the shipped "
        "sample:sp500 / sample:nasdaq, or your own csv:PATH"
    )


def _is_network_error(exc: BaseException) -> bool:
    module = type(exc).__module__.split(".")[0]
    return isinstance(exc, OSError) or module in {"curl_cffi", "requests", "urllib3"}


def _with_neighbours(gap: DateRange, frame: pd.DataFrame) -> DateRange:
    """Widen `gap` to the nearest cached bar on each side (within 10 days), so the download
    overlaps the cache by one bar and `stitch` can align the adjustments."""
    lo, hi = gap
    near = pd.Timedelta(days=10)
    before = frame.index[(frame.index < lo) & (frame.index >= lo - near)]
    after = frame.index[(frame.index >= hi) & (frame.index < hi + near)]
    if len(before):
        lo = before[-1].normalize()
    if len(after):
        hi = after[0].normalize() + pd.Timedelta(days=1)
    return lo, min(hi, pd.Timestamp.now().normalize())


def _has_weekday(gap: DateRange) -> bool:
    return len(pd.bdate_range(gap[0], gap[1] - pd.Timedelta(days=1))) > 0


def _select(frame: pd.DataFrame, request: DateRange, ticker: str, ffill_limit: int) -> pd.DataFrame:
    lo, hi = request
    part = frame[(frame.index >= lo) & (frame.index < hi)]
    if part.empty:
        bars = (frame.index[0], frame.index[-1] + pd.Timedelta(days=1))
        have = f"; the cache has {_span(bars)}" if len(frame) else ""
        raise DataError(f"yfinance has no data for ticker {ticker} in {_span(request)}{have}")
    return validate_prices(part, f"yf:{ticker}", ffill_limit)


def _span(r: DateRange) -> str:
    """`first..last` (inclusive dates) of a half-open range."""
    lo, hi = r
    first = "start" if lo <= EARLIEST else str(lo.date())
    return f"{first}..{(hi - pd.Timedelta(days=1)).date()}"


class _Capture(logging.Handler):
    """Collects yfinance's error messages during one download."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's message."""
        self.messages.append(record.getMessage())
