"""Where downloaded prices are cached."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["resolve_data_dir", "DATA_DIR_ENV"]

DATA_DIR_ENV = "FIN_META_DATA_DIR"
"""Environment variable naming the data folder when none is passed explicitly."""


def resolve_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data folder as an absolute path: `explicit` if given, else `$FIN_META_DATA_DIR`,
    else `./data` in the working directory. The folder is not created here."""
    chosen = explicit if explicit is not None else os.environ.get(DATA_DIR_ENV) or "data"
    return (Path.cwd() / Path(chosen).expanduser()).absolute()
