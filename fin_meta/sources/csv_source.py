"""`csv:PATH`: a user's file of bars (daily, weekly, monthly or intraday: `load_prices` infers the
bars per year from the dates). Columns are matched case-insensitively by
validation (`Date`, `Open`, `Adj Close`, ...); the delimiter (`,` `;` or tab) is detected from
the header line; an unnamed first column (as `DataFrame.to_csv()` writes) holds the dates."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from fin_meta.errors import DataError
from fin_meta.sources.validate import canonical_column

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
    if file.is_dir():
        raise DataError(f"csv:{path} is a folder; give the CSV file inside it, e.g. csv:{file / 'prices.csv'}")
    if not file.is_file():
        raise DataError(f"csv:{path}: file not found ({file.absolute()})")
    try:
        with file.open(encoding="utf-8-sig") as fh:
            header = fh.readline()
        sep = max(_DELIMITERS, key=header.count)
        frame = pd.read_csv(file, sep=sep, encoding="utf-8-sig", skipinitialspace=True)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise DataError(f"csv:{path}: cannot read the file as CSV: {exc}") from exc
    return _name_unnamed_dates(frame)


def _name_unnamed_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """A file written by `DataFrame.to_csv()` keeps its dates in an unnamed first column."""
    first = str(frame.columns[0]) if len(frame.columns) else ""
    has_dates = any(canonical_column(c) == "date" for c in frame.columns)
    if not has_dates and (first.startswith("Unnamed:") or not first.strip()):
        frame = frame.rename(columns={frame.columns[0]: "date"})
    return frame
