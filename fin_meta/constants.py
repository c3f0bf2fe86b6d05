"""Numbers every part shares (see DESIGN.md: Conventions), and the installed version."""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__: str = _metadata.version("fin-meta")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

BARS_PER_YEAR: int = 252
"""Daily bars per year, used for every annualisation (never vectorbt's default of 365)."""

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
"""The columns, in order, of every prices frame."""

INDEX_NAME: str = "date"
"""The name of the tz-naive DatetimeIndex of every prices frame."""
