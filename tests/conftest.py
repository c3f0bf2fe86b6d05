"""Shared test set-up: no GUI backends, no stray MLflow store or data cache in the repo."""

from __future__ import annotations

import gc
import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
# small tensors on few shared cores: spinning OpenMP threads only slow the tests down
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def tracking_uri(tmp_path):
    """A fresh SQLite MLflow store in the test's temporary folder."""
    return f"sqlite:///{tmp_path}/mlflow.db"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Keep tests from touching the user's MLflow store or price cache."""
    monkeypatch.setenv("FIN_META_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow-default.db")


@pytest.fixture(autouse=True)
def _garbage_collector_restored():
    """`fin-meta backtest` leaves the garbage collector off (its process ends with the command);
    run in-process here, it must not stay off for the tests that follow."""
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()
