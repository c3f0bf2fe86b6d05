"""Price sources, one module each. A source is named by one string `scheme:name` everywhere
(CLI, YAML, Python): `sample:sp500`, `yf:SPY`, `csv:path/to/file.csv`, `synthetic:regimes`.
`fin_meta.data.load_prices` is the entry point; `validate.validate_prices` the one check;
`dates.parse_date` the one date parser. Nothing here imports `fin_meta.data` (the layer above)."""

from __future__ import annotations

import os

from fin_meta.errors import DataError

__all__ = ["SCHEMES", "parse_source"]

SCHEMES: dict[str, str] = {
    "sample": "sample:sp500, sample:nasdaq (shipped with arch, 1999-2018)",
    "yf": "yf:TICKER (Yahoo Finance, cached in the data dir)",
    "csv": "csv:PATH (your own file with date, open, high, low, close[, volume, adj close])",
    "synthetic": "synthetic:regimes (seeded generator with known regimes)",
}
"""Known schemes and what each names."""


def parse_source(source: str) -> tuple[str, str]:
    """Split `"scheme:name"` into its lower-cased scheme and its name; `DataError` listing the
    schemes for anything else."""
    if not isinstance(source, str):
        raise DataError(f"a data source is a string like 'sample:sp500', got {source!r}")
    scheme, sep, name = source.strip().partition(":")
    scheme = scheme.strip().lower()
    if not sep or scheme not in SCHEMES or not name.strip():
        looks_like_file = source.strip().lower().endswith((".csv", ".txt", ".tsv")) or os.path.exists(source.strip())
        if looks_like_file:  # a plain path, or a Windows drive letter taken for a scheme
            raise DataError(f"data source {source!r} looks like a file: write it as csv:{source.strip()}")
        listing = "; ".join(SCHEMES.values())
        what = "unknown scheme" if sep and scheme not in SCHEMES else "invalid source"
        raise DataError(f"{what} in data source {source!r}; use one of: {listing}")
    return scheme, name.strip()
