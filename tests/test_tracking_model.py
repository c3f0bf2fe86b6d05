"""The agent as an MLflow model: logged without warnings, progress bars or its training state,
and loaded back from `runs:/` into memory without leaving a temporary folder behind."""

from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np
import pytest

from fin_meta import load_agent
from fin_meta.agents import make_agent
from fin_meta.agents.serialization import MANIFEST_FILE, WEIGHTS_FILE
from fin_meta.errors import AgentError
from fin_meta.tasks import TaskSampler
from fin_meta.tracking import start_run
from fin_meta.tracking.model import download_agent, log_agent_model
from tests.agent_data import ar_blocks

ENV = {"window": 4, "fees": 5e-4, "slippage": 5e-4}
TINY_PPO = {"num_envs": 4, "hidden_sizes": [8], "epochs": 1, "minibatches": 1, "device": "cpu", "seed": 0}
NOISE = ("input example", "input_example", "Downloading artifacts", "INFO mlflow")
"""What MLflow printed on every logged model and every load before."""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


def test_load_agent_resolves_mlflow_uris_through_tracking(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(AgentError, match="cannot download agent 'runs:/0123456789abcdef/agent'.*no MLflow store"):
        load_agent("runs:/0123456789abcdef/agent")
    assert not (tmp_path / "mlflow.db").exists()  # no empty store left behind


def test_agent_model_logged_quietly_and_loaded_without_temp_folders(store, tmp_path, monkeypatch, capfd):
    prices, labels = ar_blocks([0.4, -0.4], 60, seed=3)
    agent = make_agent("ppo", ENV, TINY_PPO)
    agent.fit(TaskSampler(prices, labels, episode_length=12, window=4), iterations=1, progress=False)
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with start_run("model", tracking_uri=store) as tracker:
            assert log_agent_model(tracker, agent, prices).startswith("models:/")
    user_warnings = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert user_warnings == []  # MLflow's input_example warning among them before
    err = capfd.readouterr().err
    assert not [word for word in NOISE if word in err], err
    model_dir = download_agent(f"runs:/{tracker.run_id}/agent", tmp_path / "model", tracking_uri=store)
    assert sorted(p.name for p in model_dir.iterdir()) == sorted([MANIFEST_FILE, WEIGHTS_FILE])

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    assert tempfile.gettempdir() == str(scratch)
    loaded = load_agent(f"runs:/{tracker.run_id}/agent", tracking_uri=store)
    assert os.listdir(scratch) == []  # the download is gone once the agent is in memory
    assert not [word for word in NOISE if word in capfd.readouterr().err]
    np.testing.assert_array_equal(loaded.positions(prices).to_numpy(), agent.positions(prices).to_numpy())
