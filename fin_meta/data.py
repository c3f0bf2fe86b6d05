"""Prices in, one convention out (DESIGN.md: Conventions / Prices).

`load_prices("sample:sp500")` and friends return a DataFrame with a tz-naive `DatetimeIndex`
named `date` (strictly increasing, unique) and float64 columns `open high low close volume`,
validated by `validate_prices`. The sources live in `fin_meta.sources` (one module each).
Every loaded frame records its bars per year in `prices.attrs["bars_per_year"]`
(`fin_meta.frequency.ATTR`): inferred from its dates, or the `bars_per_year` given.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fin_meta.errors import DataError
from fin_meta.frequency import ATTR, bars_per_year_of, check_bars_per_year
from fin_meta.sources import SCHEMES, csv_source, parse_source, sample, synthetic, yahoo
from fin_meta.sources.dates import DateLike, parse_date
from fin_meta.sources.describe import describe_prices
from fin_meta.sources.paths import resolve_data_dir
from fin_meta.sources.synthetic import SYNTHETIC_REGIMES, RegimeSpec, synthetic_regimes
from fin_meta.sources.validate import format_date, require_bars, validate_prices
from fin_meta.sources.yahoo import fetch_yf

__all__ = [
    "load_prices",
    "validate_prices",
    "require_bars",
    "synthetic_regimes",
    "SYNTHETIC_REGIMES",
    "RegimeSpec",
    "resolve_data_dir",
    "fetch_yf",
    "describe_prices",
    "parse_source",
    "SCHEMES",
]

_LOADERS: dict[str, ModuleType] = {"sample": sample, "csv": csv_source, "synthetic": synthetic, "yf": yahoo}
"""Scheme -> the source module whose `load(name, **params)` returns its raw frame."""


def load_prices(
    source: str | Sequence[str],
    start: DateLike = None,
    end: DateLike = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    ffill_limit: int = 5,
    progress: bool = False,
    min_bars: int = 2,
    bars_per_year: float | None = None,
    **source_params: Any,
) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Load, validate and date-slice prices.

    `source` is one source string (returns a DataFrame) or a list of them (returns a dict
    keyed by the source strings, in the given order). `start`/`end` are inclusive dates
    (`None` = from the first / to the last bar) and select bars for every scheme; for
    `synthetic:regimes` they slice the generated path, which starts on 2000-01-03.
    `source_params` go to the source: `synthetic:regimes` takes `n_bars`, `seed`, `regimes`,
    `initial_price`; `yf:` takes `interval`. With a list of sources, a parameter named after
    one of them (`**{"synthetic:regimes": {"seed": 1}}`) goes to that source only, the others
    to every source. `data_dir` is the yfinance cache folder (see
    `resolve_data_dir`), `ffill_limit` the longest run of NaN prices forward-filled, `min_bars`
    the fewest bars accepted. `bars_per_year` (None: inferred from the dates of the whole
    source, before `start`/`end` cut it; see `fin_meta.frequency`) is recorded in
    `prices.attrs["bars_per_year"]` of every frame and drives every annualised figure and
    default window downstream. Raises `DataError` naming the source and the fix.
    """
    per_year = None if bars_per_year is None else check_bars_per_year(bars_per_year)
    if isinstance(source, str):
        return _load_one(
            source, start, end, data_dir, ffill_limit, progress, min_bars, per_year, source_params
        )
    sources = list(source) if isinstance(source, Sequence) else []
    if not sources:
        raise DataError(f"expected a source string or a non-empty list of them, got {source!r}")
    repeated = sorted({s for s in sources if sources.count(s) > 1})
    if repeated:
        raise DataError(f"data source(s) listed twice: {', '.join(map(str, repeated))}")
    shared = {k: v for k, v in source_params.items() if k not in sources}
    bar = tqdm(sources, desc="data", unit="source", disable=not progress, file=sys.stderr)
    return {
        s: _load_one(
            s,
            start,
            end,
            data_dir,
            ffill_limit,
            False,
            min_bars,
            per_year,
            {**shared, **_own_params(source_params, s)},
        )  # fmt: skip
        for s in bar
    }


def _own_params(params: dict[str, Any], source: str) -> dict[str, Any]:
    own = params.get(source, {})
    if not isinstance(own, dict):
        raise DataError(f"parameters for {source} must be a dict, got {own!r}")
    return own


def _load_one(
    source: str,
    start: DateLike,
    end: DateLike,
    data_dir: str | os.PathLike[str] | None,
    ffill_limit: int,
    progress: bool,
    min_bars: int,
    per_year: float | None,
    params: dict[str, Any],
) -> pd.DataFrame:
    scheme, name = parse_source(source)
    lo, hi = parse_date(start, "start", source=source), parse_date(end, "end", source=source)
    if lo is not None and hi is not None and lo > hi:
        raise DataError(f"{source}: start {format_date(lo)} is after end {format_date(hi)}")
    module = _LOADERS[scheme]
    if scheme == "yf":
        raw = module.load(
            name, start=lo, end=hi, data_dir=data_dir, progress=progress,
            ffill_limit=ffill_limit, **params,
        )  # fmt: skip
    else:
        raw = module.load(name, **params)
    prices = validate_prices(raw, source, ffill_limit, min_bars=1)
    selected = _select(prices, lo, hi, source)
    require_bars(selected, min_bars, source=source)
    recorded = bars_per_year_of(prices) if per_year is None else per_year
    selected.attrs = {**prices.attrs, "source": source, ATTR: recorded}
    return selected


def _select(
    prices: pd.DataFrame, lo: pd.Timestamp | None, hi: pd.Timestamp | None, source: str
) -> pd.DataFrame:
    """Bars from `lo` to `hi`, both inclusive (a midnight `hi` includes that whole day)."""
    index = prices.index
    keep = np.ones(len(index), dtype=bool)
    if lo is not None:
        keep &= index >= lo
    if hi is not None:
        keep &= index < hi + pd.Timedelta(days=1) if hi == hi.normalize() else index <= hi
    if not keep.any():
        asked = f"{format_date(lo) if lo is not None else 'start'}..{format_date(hi) if hi is not None else 'end'}"
        raise DataError(
            f"{source}: no bars in {asked}; the data covers "
            f"{format_date(index[0])}..{format_date(index[-1])}; choose start/end inside it"
        )
    return prices.loc[keep]
