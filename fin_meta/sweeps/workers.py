"""Worker processes for `--jobs J`: the pipeline's pool (`fin_meta.pipeline.pool`, shared with
seed sets) runs one trial a task, a free worker taking the next trial. Its fork server imports
torch, vectorbt, MLflow, Optuna and the pipeline once, as soon as a sweep starts (`prestart`),
while the parent is still reading the experiment. Only the standard library is imported here
(the CLI calls `prestart` first thing).
"""

from __future__ import annotations

from fin_meta.pipeline import pool

__all__ = ["PRELOAD", "prestart"]

PRELOAD = ["torch", "vectorbt", "mlflow", "optuna", "fin_meta.pipeline.run_job", "fin_meta.sweeps.optuna_backend"]
"""Modules the fork server imports once, so that every worker starts warm."""


def prestart() -> None:
    """Start the workers' fork server now, importing `PRELOAD` in the background."""
    pool.prestart(PRELOAD)
