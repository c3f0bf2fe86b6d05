"""Where runs live: the tracking URI, params and hashes, and a store that several commands
create at once (real `fin-meta backtest` processes on a fresh SQLite file), quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from pydantic import BaseModel

from fin_meta.errors import DataError
from fin_meta.tracking import (
    MAX_PARAM_LENGTH,
    flatten_params,
    open_client,
    prices_hash,
    resolve_tracking_uri,
)

PERIOD = ["--start", "2015-01-01", "--end", "2016-12-31"]


def _prices(n: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.cumprod(1 + rng.normal(0, 0.01, n))
    index = pd.date_range("2020-01-01", periods=n, freq="D", name="date")
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1e6},
        index=index,
    )


def fin_meta_command() -> list[str]:
    """The `fin-meta` console script of this Python, or the same entry point through `-c`."""
    script = Path(sys.executable).with_name("fin-meta")
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from fin_meta.cli import main; main()"]


# tracking URI ---------------------------------------------------------------------------------
def test_tracking_uri_explicit_then_env_then_working_dir_sqlite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert resolve_tracking_uri("sqlite:////abs/runs.db") == "sqlite:////abs/runs.db"
    assert resolve_tracking_uri() == "http://tracking.example:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    here = tmp_path.resolve()
    assert resolve_tracking_uri() == f"sqlite:///{here}/mlflow.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_tracking_uri() == f"sqlite:///{here}/mlflow.db"
    assert resolve_tracking_uri("sqlite:///sub/x.db") == f"sqlite:///{here}/sub/x.db"
    assert resolve_tracking_uri("runs/x.db") == f"sqlite:///{here}/runs/x.db"


# params and hashes -----------------------------------------------------------------------------
def test_flatten_params_dotted_keys_lists_limits():
    class Agent(BaseModel):
        lr: float = 1e-3
        hidden: list[int] = [64, 32]

    nested = {
        "agent": Agent(),
        "data": {"sources": ["yf:SPY", "yf:QQQ"], "start": pd.Timestamp("2020-01-02"), "empty": {}},
        "baselines": [{"name": "sma", "fast": 10}],
        "note": "x" * (MAX_PARAM_LENGTH + 50),
        "bad key(1)": np.float64(0.5),
        "none": None,
        "no_list": [],
    }
    flat = flatten_params(nested)
    assert flat["agent.lr"] == "0.001"
    assert flat["agent.hidden"] == "64, 32"
    assert flat["data.sources"] == "yf:SPY, yf:QQQ"
    assert flat["data.start"].startswith("2020-01-02")
    assert flat["data.empty"] == "{}"
    assert flat["baselines.0.name"] == "sma" and flat["baselines.0.fast"] == "10"
    assert len(flat["note"]) == MAX_PARAM_LENGTH and flat["note"].endswith("...")
    assert flat["bad key_1_"] == "0.5"
    assert flat["none"] == "None" and flat["no_list"] == "[]"
    assert all(isinstance(v, str) for v in flat.values())
    assert set(flatten_params({"lr": 1}, prefix="agent")) == {"agent.lr"}


def test_prices_hash_stable_and_sensitive():
    prices = _prices()
    h = prices_hash(prices)
    assert len(h) == 16 and int(h, 16) >= 0
    assert prices_hash(prices.copy()) == h
    assert prices_hash(prices[prices.columns[::-1]]) == h  # column order does not matter
    us = prices.copy()
    us.index = us.index.as_unit("us")
    assert prices_hash(us) == h  # nor pandas' datetime resolution
    changed = prices.copy()
    changed.iloc[3, 3] *= 1.0 + 1e-12
    assert prices_hash(changed) != h
    shifted = prices.copy()
    shifted.index = shifted.index + pd.Timedelta(days=1)
    assert prices_hash(shifted) != h
    other = _prices(seed=1)
    assert prices_hash({"SPY": prices, "QQQ": other}) == prices_hash({"QQQ": other, "SPY": prices})
    assert prices_hash({"SPY": prices, "QQQ": other}) != prices_hash({"SPY": other, "QQQ": prices})
    with pytest.raises(DataError, match="non-numeric"):
        prices_hash(prices.assign(close="x"))


# creating a store ------------------------------------------------------------------------------
def test_new_store_is_created_without_mlflow_info_lines(tmp_path, capfd):
    uri = f"sqlite:///{tmp_path}/new/mlflow.db"  # its folder does not exist yet either
    client = open_client(uri)
    assert client.search_experiments()[0].name == "Default"
    err = capfd.readouterr().err
    assert "Creating initial MLflow database tables" not in err and "Updating database tables" not in err
    assert (tmp_path / "new" / "mlflow.db").is_file()


def test_three_commands_at_once_on_a_fresh_store(tmp_path):
    """Started together, each opens the new store while the others create its tables."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    argv = [*fin_meta_command(), "backtest", "--data", "sample:sp500", "-s", "momentum", *PERIOD,
            "--tracking-uri", uri]  # fmt: skip
    procs = [
        subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    try:
        errors = [proc.communicate(timeout=300)[1] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert [proc.returncode for proc in procs] == [0, 0, 0], errors
    assert not any("INFO mlflow" in err for err in errors), errors
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("backtest")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 3 and {run.info.status for run in runs} == {"FINISHED"}
