"""`sample:sp500`, `sample:nasdaq`: real daily OHLCV 1999-2018 shipped with the `arch` package
(no network needed). Both carry `Adj Close`, so validation applies the usual adjustment.

The shipped `csv.gz` file is read directly: importing `arch` itself takes about two seconds,
which every CLI call on sample data would pay. `arch.data.<name>.load()` is the fallback
should arch move the file."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pandas as pd

from fin_meta.errors import DataError

__all__ = ["SAMPLES", "load"]

SAMPLES: tuple[str, ...] = ("sp500", "nasdaq")
"""Names of the samples: `sample:<name>` is `arch.data.<name>`."""


def load(name: str, **params: object) -> pd.DataFrame:
    """The raw sample frame (`Date Open High Low Close Adj Close Volume`) of `sample:<name>`."""
    if params:
        raise DataError(f"sample:{name} takes no parameters, got {', '.join(sorted(params))}")
    key = name.lower()
    if key not in SAMPLES:
        raise DataError(
            f"unknown sample {name!r}; available: {', '.join('sample:' + s for s in SAMPLES)}"
        )
    file = _shipped_file(key)
    if file is not None:
        return pd.read_csv(file)
    return importlib.import_module(f"arch.data.{key}").load()


def _shipped_file(name: str) -> Path | None:
    spec = importlib.util.find_spec("arch")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("sample data needs the 'arch' package: pip install arch")
    for root in spec.submodule_search_locations:
        file = Path(root) / "data" / name / f"{name}.csv.gz"
        if file.is_file():
            return file
    return None
