"""Sweeps (`fin-meta sweep`): many runs of one experiment with values drawn from a search-space
file, chosen on the validation period. `run_sweep` (`job`), the space file (`space`), one trial
(`objective`), the study and its storage (`study`), the backends (`optuna_backend` with its
worker processes in `workers`; `ray_backend`) and the end of a sweep (`report`).

The names below are imported on first use, so that `fin_meta.sweeps.workers.prestart` can start
the workers' fork server before anything heavy is imported."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BACKENDS", "Param", "SearchSpace", "SweepOutcome", "load_space", "run_sweep"]

_HOMES = {"BACKENDS": "job", "run_sweep": "job", "SweepOutcome": "report", "Param": "space",
          "SearchSpace": "space", "load_space": "space"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"fin_meta.sweeps.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'fin_meta.sweeps' has no attribute {name!r}")
