"""Numbers every part shares (see DESIGN.md: Conventions)."""

from __future__ import annotations

BARS_PER_YEAR: int = 252
"""Daily bars per year, used for every annualisation (never vectorbt's default of 365)."""

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
"""The columns, in order, of every prices frame."""

INDEX_NAME: str = "date"
"""The name of the tz-naive DatetimeIndex of every prices frame."""
