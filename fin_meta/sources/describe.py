"""A summary of a prices frame for `fin-meta data show`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fin_meta.frequency import bars_per_year_of, frequency_name
from fin_meta.sources.validate import format_date

__all__ = ["describe_prices"]


def describe_prices(df: pd.DataFrame) -> dict[str, Any]:
    """Rows, `start`/`end` (first and last date), `bars_per_year` (recorded by `load_prices`,
    else inferred from the dates) and its `frequency` name (daily, weekly, monthly, ...),
    business days without a bar (holidays count), the largest gap between consecutive bars in
    calendar days and the bar it follows, NaN counts per column (and values forward-filled by
    validation, when known), min/max close. JSON-serialisable."""
    index = pd.DatetimeIndex(df.index)
    out: dict[str, Any] = {"rows": len(df), "start": None, "end": None}
    per_year = bars_per_year_of(df)
    out["bars_per_year"] = per_year
    out["frequency"] = frequency_name(per_year)
    if len(df):
        days = index.normalize().unique()
        out["start"], out["end"] = format_date(index[0]), format_date(index[-1])
        business = pd.bdate_range(days[0], days[-1])
        out["missing_business_days"] = int((~business.isin(days)).sum())
        gaps = np.diff(days.to_numpy()).astype("timedelta64[D]").astype(int)
        k = int(np.argmax(gaps)) if gaps.size else None
        out["largest_gap_days"] = int(gaps[k]) if k is not None else 0
        out["largest_gap_after"] = format_date(days[k]) if k is not None else None
    out["nan_counts"] = {str(c): int(n) for c, n in df.isna().sum().items()}
    filled = df.attrs.get("nans_filled")
    if filled:
        out["nans_filled"] = {str(c): int(n) for c, n in filled.items()}
    if "close" in df.columns and df["close"].notna().any():
        out["min_close"] = float(df["close"].min())
        out["max_close"] = float(df["close"].max())
    return out
