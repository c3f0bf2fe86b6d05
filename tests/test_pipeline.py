"""`run_experiment` end to end on the quickstart file with a tiny budget: real data, a real RL²
agent, real vectorbt backtests and a real SQLite MLflow store read back with `MlflowClient`.

Look-ahead of the agents is covered by the agents' own tests and not repeated here.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

import fin_meta
from fin_meta.config.experiment import load_config
from fin_meta.errors import AgentError
from fin_meta.pipeline import run_job as pipeline
from fin_meta.pipeline.run_job import run_experiment
from fin_meta.tracking import TrackingError
from fin_meta.tracking.checkpoints import Checkpointer

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"
TINY = [
    "agent.iterations=1",
    "agent.num_envs=8",
    "agent.hidden_size=16",
    "evaluation.bootstrap_samples=100",
    "evaluation.adaptation_steps=[0, 1]",
    "data.start=2006-01-03",
    "data.train_start=2006-01-03",
    "data.train_end=2010-12-31",
    "data.test_start=2011-02-03",
    "data.test_end=2012-06-29",
]
"""Overrides that make quickstart take seconds: one iteration, a small net, 18 test months."""
CHECKPOINT_TAG = "fin_meta.checkpoint.iterations"


def tiny_config(*extra: str, uri: str | None = None):
    """The quickstart config on the tiny budget; tracked in `uri`, or untracked when None."""
    tracking = [f"tracking.tracking_uri={uri}"] if uri else ["tracking.enabled=false"]
    return load_config(QUICKSTART, overrides=[*TINY, *tracking, *extra])


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite MLflow store for this module (creating one costs seconds); tests that need
    their own runs use their own experiment name in it."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture(scope="module")
def tracked(store):
    """One tracked tiny quickstart run shared by the read-back tests: (outcome, store URI)."""
    return run_experiment(tiny_config(uri=store), progress=False), store


def only_run(client: MlflowClient, experiment: str):
    """The single run of `experiment`."""
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run


def walk_prices(cfg) -> pd.DataFrame:
    """The frame the pipeline walked the agent over (context bars + test period)."""
    return pipeline._load_sources(cfg)[0].walk


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file of a run, recursively."""
    out: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return out


def train_steps(client: MlflowClient, run_id: str) -> dict[str, list[int]]:
    """Logged steps of every `train.*` metric of a run, in logging order."""
    keys = [k for k in client.get_run(run_id).data.metrics if k.startswith("train.")]
    return {k: sorted(m.step for m in client.get_metric_history(run_id, k)) for k in keys}


# -- a tracked run ------------------------------------------------------------------------------
def test_run_is_finished_with_test_and_train_metrics(tracked):
    outcome, uri = tracked
    client = MlflowClient(uri)
    run = client.get_run(outcome.run_id)
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    stats = outcome.evaluations[0].stats
    assert metrics["test.sharpe"] == pytest.approx(stats.loc["rl2", "sharpe"], rel=1e-12)
    assert metrics["test.sharpe.buy_and_hold"] == pytest.approx(stats.loc["buy_and_hold", "sharpe"], rel=1e-12)
    for baseline in outcome.config.evaluation.baselines:
        assert f"test.total_return.{baseline}" in metrics
    steps = train_steps(client, outcome.run_id)
    assert steps and all(s == [0] for s in steps.values())  # one point per training iteration
    assert run.data.params["agent.algo"] == "rl2" and run.data.params["seed"] == "0"
    assert run.data.tags["agent.algo"] == "rl2" and run.data.tags[CHECKPOINT_TAG] == "1"


def test_run_artifacts(tracked, tmp_path):
    outcome, uri = tracked
    client = MlflowClient(uri)
    files = artifact_paths(client, outcome.run_id)
    expected = {"config.yaml", "test/stats.csv", "test/results.csv", "test/by_regime.csv", "test/positions.csv",
                "meta_test/adaptation_curve.csv", "meta_test/adaptation_segments.csv",
                "plots/equity_sp500.png", "plots/equity_sp500.html", "plots/regimes_sp500.png",
                "plots/adaptation_curve.png"}  # fmt: skip
    assert expected <= files, expected - files
    assert any(f.startswith("checkpoint/") for f in files)
    local = Path(client.download_artifacts(outcome.run_id, "", str(tmp_path)))
    assert load_config(local / "config.yaml") == outcome.config  # the logged config re-runs the run
    stats = pd.read_csv(local / "test" / "stats.csv", index_col="strategy")
    pd.testing.assert_frame_equal(stats, outcome.evaluations[0].stats, check_names=False, check_dtype=False)
    for png in (local / "plots").glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_load_agent_and_pyfunc_reproduce_the_test_positions(tracked, monkeypatch, tmp_path):
    outcome, uri = tracked
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    evaluation = outcome.evaluations[0]
    expected = evaluation.positions["rl2"].to_numpy()
    prices = walk_prices(outcome.config)
    test_index = evaluation.positions.index

    agent = fin_meta.load_agent(f"runs:/{outcome.run_id}/agent")
    assert agent.algo == "rl2"
    np.testing.assert_array_equal(agent.positions(prices).loc[test_index].to_numpy(), expected)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere-unused.db")  # the argument wins
    monkeypatch.chdir(tmp_path)
    again = fin_meta.load_agent(f"runs:/{outcome.run_id}/agent", tracking_uri=uri)
    np.testing.assert_array_equal(again.positions(prices).loc[test_index].to_numpy(), expected)
    with pytest.raises(AgentError, match="only applies to MLflow URIs"):
        fin_meta.load_agent(tmp_path, tracking_uri=uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model(f"runs:/{outcome.run_id}/agent")
    finally:
        mlflow.set_tracking_uri(previous)
    predicted = pd.Series(np.asarray(model.predict(prices)).ravel(), index=prices.index)
    np.testing.assert_array_equal(predicted.loc[test_index].to_numpy(), expected)


# -- determinism ----------------------------------------------------------------------------------
def test_same_seed_same_positions_and_metrics(tracked):
    outcome, _ = tracked
    again = run_experiment(tiny_config(), progress=False)  # untracked: tracking must not change results
    assert again.run_id is None
    first, second = outcome.evaluations[0], again.evaluations[0]
    pd.testing.assert_frame_equal(first.positions, second.positions, check_exact=True)
    pd.testing.assert_frame_equal(first.stats, second.stats, check_exact=True)
    pd.testing.assert_frame_equal(first.table, second.table, check_exact=True)
    pd.testing.assert_frame_equal(outcome.adaptation, again.adaptation, check_exact=True)


# -- failures ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("error", [RuntimeError("injected"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_failure_marks_run_failed_and_leaves_no_files(tmp_path, monkeypatch, store, error):
    monkeypatch.chdir(tmp_path)
    experiment = f"failure-{type(error).__name__}"

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(pipeline, "evaluate", broken)
    with pytest.raises(type(error)):
        run_experiment(tiny_config("evaluation.baselines=[buy_and_hold]", f"tracking.experiment={experiment}",
                                   uri=store), progress=False)  # fmt: skip
    client = MlflowClient(store)
    run = only_run(client, experiment)
    assert run.info.status == "FAILED"
    assert list(tmp_path.iterdir()) == []  # nothing half-written in the working directory
    files = artifact_paths(client, run.info.run_id)
    assert "config.yaml" in files and not any(f.startswith(("test/", "agent/")) for f in files)


def test_resume_continues_from_the_checkpoint(monkeypatch, store):
    budget = ["agent.iterations=3", "evaluation.baselines=[buy_and_hold]", "tracking.experiment=resume"]
    cfg = tiny_config(*budget, uri=store)
    save = Checkpointer.save

    def interrupted_save(self, agent, iterations):
        save(self, agent, iterations)
        if iterations == 2:
            raise KeyboardInterrupt  # Ctrl-C right after the second checkpoint

    monkeypatch.setattr(Checkpointer, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, progress=False)
    monkeypatch.undo()
    client = MlflowClient(store)
    run = only_run(client, "resume")
    run_id = run.info.run_id
    assert run.info.status == "FAILED" and run.data.tags[CHECKPOINT_TAG] == "2"
    assert all(s == [0, 1] for s in train_steps(client, run_id).values())

    outcome = run_experiment(cfg, resume=run_id, progress=False)
    assert outcome.run_id == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags[CHECKPOINT_TAG] == "3"
    steps = train_steps(client, run_id)
    assert steps and all(s == [0, 1, 2] for s in steps.values())  # iterations 0, 1 not trained again
    assert "test.sharpe" in run.data.metrics
    # params are immutable in MLflow: resuming with another config names what changed
    with pytest.raises(TrackingError, match="agent.iterations"):
        run_experiment(tiny_config(*budget, "agent.iterations=4", uri=store), resume=run_id, progress=False)

