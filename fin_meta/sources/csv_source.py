"""`csv:PATH`: a user's file of daily bars. Columns are matched case-insensitively by
validation (`Date`, `Open`, `Adj Close`, ...); the delimiter (`,` `;` or tab) is detected from
the header line."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from fin_meta.errors import DataError

__all__ = ["load"]

_DELIMITERS = (",", ";", "\t")


def load(path: str | os.PathLike[str], **params: object) -> pd.DataFrame:
    """The raw rows of the CSV file at `path` (relative paths are read from the working
    directory); dates are parsed later by `validate_prices`."""
    if params:
        raise DataError(f"csv:{path} takes no parameters, got {', '.join(sorted(params))}")
    if not str(path).strip():
        raise DataError("csv: needs a path, e.g. csv:data/prices.csv")
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"csv:{path}: file not found ({file.absolute()})")
    try:
        with file.open(encoding="utf-8-sig") as fh:
            header = fh.readline()
        sep = max(_DELIMITERS, key=header.count)
        return pd.read_csv(file, sep=sep, encoding="utf-8-sig", skipinitialspace=True)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise DataError(f"csv:{path}: cannot read the file as CSV: {exc}") from exc
