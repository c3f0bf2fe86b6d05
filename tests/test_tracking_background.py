"""The MLflow background process (`fin_meta.tracking.background`): a run logged through it equals
the same run logged in-process, and its failures end the run FAILED and reach the user as the
usual exceptions (one line at the CLI). Real child processes on a real SQLite store."""

from __future__ import annotations

import filecmp
import os
import signal
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from fin_meta.cli import main
from fin_meta.errors import DataError
from fin_meta.pipeline import backtest_job
from fin_meta.pipeline.backtest_job import run_backtest_job
from fin_meta.plots.adaptation import plot_adaptation
from fin_meta.plots.equity import plot_equity_png
from fin_meta.tracking import TrackingError, open_client, spawn
from fin_meta.tracking.background import BackgroundStore, LocalStore, open_store, portable_draw

PERIOD = {"start": "2015-01-01", "end": "2016-12-31"}
"""Two years of sample:sp500: a small backtest."""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the module (creating MLflow's tables takes seconds); each test uses
    its own experiments."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    open_client(uri)
    return uri


def only_run(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1, runs
    return runs[0]


def test_portable_draws_are_bound_plot_writers():
    frame = pd.DataFrame({"a": [1.0, 1.1]})
    assert portable_draw(partial(plot_equity_png, frame))
    assert not portable_draw(plot_equity_png)  # no data bound
    assert not portable_draw(partial(print, frame))  # not a chart writer of fin_meta.plots


def test_auto_opens_in_process_where_mlflow_is_loaded(store):
    # the test suite has imported MLflow: a child would not save its import
    with open_store("auto", tracking_uri=store) as auto, open_store("off", tracking_uri=store, enabled=False) as off:
        assert isinstance(auto, LocalStore) and isinstance(off, LocalStore)


def test_background_run_equals_in_process_run(store, tmp_path):
    runs = {}
    for mode, background in (("here", False), ("child", True)):
        job = run_backtest_job("sample:sp500", ["sma_cross"], {"fast": 10}, **PERIOD, experiment=f"bt-{mode}",
                               tracking_uri=store, background=background)
        runs[mode] = job
    client = open_client(store)
    here, child = (only_run(client, f"bt-{mode}") for mode in ("here", "child"))
    assert child.info.status == here.info.status == "FINISHED"
    assert child.info.run_id == runs["child"].run_id
    assert child.data.params == here.data.params
    assert child.data.metrics == here.data.metrics  # test.* and the DSR (one trial each)
    skip = {"fin_meta.heartbeat"}
    assert {k: v for k, v in child.data.tags.items() if k not in skip | {"mlflow.runName"}} == \
        {k: v for k, v in here.data.tags.items() if k not in skip | {"mlflow.runName"}}  # command, git, dsr.trials

    def artifacts(run) -> dict[str, Path]:
        out = {}
        for folder in ("test", "plots"):
            for item in client.list_artifacts(run.info.run_id, folder):
                out[item.path] = Path(client.download_artifacts(run.info.run_id, item.path, str(tmp_path / run.info.run_id)))
        return out

    a, b = artifacts(here), artifacts(child)
    assert set(a) == set(b) and "plots/equity_sp500.png" in a
    same = [p for p in a if p.endswith((".csv", ".png"))]  # the HTML has random element ids
    assert all(filecmp.cmp(a[p], b[p], shallow=False) for p in same), same


def test_error_of_a_chart_drawn_in_the_background_fails_the_run(store):
    bad = partial(plot_adaptation, pd.DataFrame({"k": [1]}))  # lacks the curve columns: DataError
    with pytest.raises(DataError, match="summary frame lacks columns") as info:  # noqa: PT012
        with BackgroundStore("bt-bad-chart", store).start_run(params={"x": 1}) as tracker:
            tracker.log_figure(bad, "plots/adaptation_curve.png")  # drawn there: returns at once
            tracker.log_metrics({"after": 1.0})  # the error comes back with the next call
    assert "background process" in "".join(getattr(info.value, "__notes__", []))
    run = only_run(open_client(store), "bt-bad-chart")
    assert run.info.status == "FAILED"
    assert run.data.tags["fin_meta.error"].startswith("DataError: summary frame lacks columns")


def test_dead_background_process_leaves_no_running_run(store):
    background = BackgroundStore("bt-killed", store)
    with pytest.raises(TrackingError, match="background process stopped"):  # noqa: PT012
        with background.start_run(params={"x": 1}) as tracker:
            assert tracker.run_id  # the run has started
            os.kill(background.pid, signal.SIGKILL)
            tracker.log_metrics({"x": 1.0})
    run = only_run(open_client(store), "bt-killed")
    assert run.info.status == "FAILED"  # marked by this process
    assert "background process stopped" in run.data.tags["fin_meta.error"]
    early = BackgroundStore("bt-killed-early", store)  # killed before its run id was read: no run, or a FAILED one
    with pytest.raises(TrackingError, match="background process stopped"):  # noqa: PT012
        with early.start_run(params={"x": 1}) as tracker:
            os.kill(early.pid, signal.SIGKILL)
            tracker.log_metrics({"x": 1.0})
    runs = open_client(store).search_runs([e.experiment_id for e in open_client(store).search_experiments()])
    assert all(run.info.status != "RUNNING" for run in runs)


def test_cli_error_in_the_background_is_one_line_and_fails_the_run(store, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")  # the experiment's artifacts cannot go under a file (whoever runs the test)
    client = open_client(store)
    client.create_experiment("blocked", artifact_location=(blocker / "artifacts").as_uri())
    # a fresh `fin-meta` process picks the background process itself; this one has MLflow loaded
    monkeypatch.setattr(backtest_job, "open_store", lambda *a, **k: open_store(*a, **{**k, "background": True}))
    with pytest.raises(SystemExit) as exit_info:
        main(["backtest", "-s", "sma_cross", "--start", PERIOD["start"], "--end", PERIOD["end"],
              "--experiment", "blocked", "--tracking-uri", store])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert exit_info.value.code == 1 and len(lines) == 1, err  # not the user's input: exit 1
    assert lines[0].startswith("error: internal NotADirectoryError") and "Traceback" not in err
    run = only_run(client, "blocked")
    assert run.info.status == "FAILED" and run.data.tags["fin_meta.error"].startswith("NotADirectoryError")


def test_a_child_started_early_is_taken_over_by_the_store_or_stopped(store, monkeypatch):
    spawn.start_child_early()  # this process has MLflow loaded: no child would save anything
    assert spawn._early_child is None
    monkeypatch.setattr(spawn, "background_wanted", lambda: True)  # as in a fresh `fin-meta backtest`
    spawn.start_child_early()
    early = spawn._early_child
    assert early is not None
    taken = BackgroundStore("bt-early", store)
    assert taken.pid == early.pid and spawn._early_child is None
    with taken.start_run(params={"x": 1}) as tracker:
        tracker.log_metrics({"m": 2.0})
    run = only_run(open_client(store), "bt-early")
    assert run.info.status == "FINISHED" and run.data.metrics == {"m": 2.0}
    spawn.start_child_early()
    unused = spawn._early_child
    spawn.drop_early_child()  # the command did not open its store: the child is stopped, not left running
    assert unused.returncode is not None and spawn._early_child is None
    spawn.drop_early_child()  # nothing left to stop
