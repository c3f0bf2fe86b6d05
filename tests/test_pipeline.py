"""`run_experiment` end to end on the quickstart file with a tiny budget: real data, a real RL²
agent, real vectorbt backtests and a real SQLite MLflow store read back with `MlflowClient`.

Look-ahead of the agents is covered by the agents' own tests and not repeated here.
"""

from __future__ import annotations

import re
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
from tests.pipeline_data import CHECKPOINT_TAG, artifact_paths, only_run, tiny_config, train_steps


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite MLflow store for this module (creating one costs seconds); tests that need
    their own runs use their own experiment name in it."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture(scope="module")
def tracked(store):
    """One tracked tiny quickstart run shared by the read-back tests: (outcome, store URI, the
    lines it printed)."""
    lines: list[str] = []
    return run_experiment(tiny_config(uri=store), echo=lines.append, progress=False), store, lines


def walk_prices(cfg) -> pd.DataFrame:
    """The frame the pipeline walked the agent over (context bars + test period)."""
    return pipeline._load_sources(cfg)[0].walk


# -- a tracked run ------------------------------------------------------------------------------
def test_run_is_finished_with_test_and_train_metrics(tracked):
    outcome, uri, _ = tracked
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
    outcome, uri, _ = tracked
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
    outcome, uri, _ = tracked
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


# -- what the terminal and the MLflow UI show (issue 10: items 2 and 14) ---------------------------
def test_header_and_report_show_the_actual_periods_and_frequency(tracked):
    outcome, _, lines = tracked
    src = pipeline._load_sources(outcome.config)[0]
    expected = (f"sample:sp500: daily bars (252 a year); train 2006-01-03 .. 2010-12-31 ({len(src.train):,} bars), "
                f"test 2011-02-03 .. 2012-06-29 ({len(src.test):,} bars)")
    step = next(i for i, line in enumerate(lines) if line.startswith("[1/5] data"))
    assert lines[step + 1].strip() == expected
    report: list[str] = []
    outcome.print_report(report.append)
    assert f"  {expected}" in report
    assert f"\nsp500 test period 2011-02-03 .. 2012-06-29 ({len(src.test):,} bars), " in "\n".join(report)


def test_run_name_description_and_summary_say_what_ran(tracked, tmp_path):
    outcome, uri, _ = tracked
    client = MlflowClient(uri)
    run = client.get_run(outcome.run_id)
    assert re.fullmatch(r"rl2-sp500-s0-\d{8}-\d{6}", run.info.run_name)
    assert run.data.params["data.bars_per_year"] == "252.0"  # resolved from the data, not "None"
    note = run.data.tags["mlflow.note.content"]
    assert note.startswith("**rl2** on sp500 (`sample:sp500`), seed 0, 1 iterations")
    assert outcome.config.description not in note  # built from the run's config, not the file's comment
    assert "running" not in note  # the start's description was replaced by the results
    assert "train 2006-01-03 .. 2010-12-31" in note and "test 2011-02-03 .. 2012-06-29" in note
    table = outcome.evaluations[0].table
    for row in table.itertuples():
        assert f"| sp500 | {row.strategy} | {row.sharpe:.2f} |" in note
    local = Path(client.download_artifacts(outcome.run_id, "test", str(tmp_path)))
    summary = pd.read_csv(local / "summary.csv")
    assert summary["strategy"].tolist() == table["strategy"].tolist()
    np.testing.assert_allclose(summary["sharpe"], table["sharpe"], rtol=1e-12)
    assert (local / "summary.md").read_text() in note


def test_test_metrics_are_logged_last(tracked):
    outcome, uri, _ = tracked
    client = MlflowClient(uri)
    names = client.get_run(outcome.run_id).data.metrics
    stamps = {k: max(m.timestamp for m in client.get_metric_history(outcome.run_id, k)) for k in names}
    first_test = min(t for k, t in stamps.items() if k.startswith("test."))
    assert max(t for k, t in stamps.items() if not k.startswith("test.")) <= first_test


# -- determinism ----------------------------------------------------------------------------------
def test_same_seed_same_positions_and_metrics(tracked):
    outcome, _, _ = tracked
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
