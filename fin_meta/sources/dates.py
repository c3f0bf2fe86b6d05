"""THE date parser of fin-meta: every date a user gives (loaders' `start`/`end`, the periods of
a split, a regime `fit_end`, the dates of an experiment file) is read by `parse_date`, and a
date that cannot be read is a `DataError` (the class most callers and tests already expect)."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd

from fin_meta.errors import DataError

__all__ = ["DateLike", "parse_date"]

DateLike = str | date | datetime | pd.Timestamp | None
"""What a user may pass as a date: `"YYYY-MM-DD"`, a `date`, a `datetime`, a Timestamp or None."""


def parse_date(value: DateLike, name: str, *, source: str | None = None) -> pd.Timestamp | None:
    """`value` as a tz-naive Timestamp (a tz-aware one keeps its wall time), None for None.
    `name` (e.g. `"start"`) and `source` (e.g. `"sample:sp500"`) name it in the `DataError`
    raised for anything that is not a date."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError):
        ts = pd.NaT
    if ts is pd.NaT:
        where = f"{source}: " if source else ""
        raise DataError(f"{where}cannot read {name}={value!r} as a date: not a date in the form YYYY-MM-DD")
    return ts.tz_localize(None) if ts.tz is not None else ts
