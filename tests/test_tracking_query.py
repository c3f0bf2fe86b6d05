"""Reading runs back: `compare_runs` (the `fin-meta compare` table: key columns, STALE runs
whose process was killed, lines that fit the terminal) and `latest_run_id`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from fin_meta.errors import FinMetaError
from fin_meta.tracking import TrackingError, compare_runs, latest_run_id, open_client, start_run
from fin_meta.tracking import query as query_module
from fin_meta.tracking.query import format_table
from fin_meta.tracking.tags import HEARTBEAT_TAG
from tests.test_cli import cli
from tests.test_tracking_runs import FakeClock


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the module; every test uses its own experiment name in it."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


# reading runs back -----------------------------------------------------------------------------
def _log(
    store: str,
    experiment: str,
    name: str,
    lr: float,
    sharpe: float | None,
    status_error: bool = False,
) -> str:
    params = {"agent": {"lr": lr, "hidden": 64}, "seed": 1}
    try:
        with start_run(experiment, run_name=name, params=params, tracking_uri=store) as tracker:
            if sharpe is not None:
                tracker.log_stats({"sharpe": sharpe, "max_drawdown": -sharpe / 10})
                tracker.log_metrics({"test.sharpe.buy_and_hold": 0.3, "train.return": lr})
            if status_error:
                raise RuntimeError("failed run")
    except RuntimeError:
        pass
    return tracker.run_id


def test_compare_runs_shows_differing_params_sorted_by_metric(store):
    ids = {
        name: _log(store, "cmp", name, lr, sharpe)
        for name, lr, sharpe in [
            ("a", 0.1, 0.5),
            ("b", 0.01, 1.5),
            ("c", 0.001, 1.0),
            ("d", 0.01, None),
        ]
    }
    table = compare_runs("cmp", tracking_uri=store)
    assert list(table["run_name"]) == ["b", "c", "a", "d"]  # descending, the run without it last
    assert list(table.index) == [ids[n] for n in "bcad"]
    assert list(table["run_id"]) == [ids[n][:8] for n in "bcad"]
    assert list(table.columns) == [
        "run_id", "run_name", "status", "start_time", "agent.lr", "test.sharpe", "test.max_drawdown",
    ]  # fmt: skip: the params that differ, the key metrics
    assert list(table["agent.lr"]) == ["0.01", "0.001", "0.1", "0.01"]
    assert set(table["status"]) == {"FINISHED"}
    top = compare_runs("cmp", metric="max_drawdown", top=2, tracking_uri=store, ascending=True)
    assert list(top["run_name"]) == ["b", "c"]
    assert list(top["agent.lr"]) == ["0.01", "0.001"]
    by_other = compare_runs("cmp", metric="test.sharpe.buy_and_hold", tracking_uri=store)
    assert list(by_other.columns[4:]) == [
        "agent.lr", "test.sharpe", "test.max_drawdown", "test.sharpe.buy_and_hold",
    ]  # fmt: skip: the sorting metric too
    detail = compare_runs("cmp", metric="test.sharpe.buy_and_hold", tracking_uri=store, show_all=True)
    assert list(detail.columns[4:]) == [
        "agent.hidden",
        "agent.lr",
        "seed",
        "test.max_drawdown",
        "test.sharpe",
        "test.sharpe.buy_and_hold",
        "train.return",
    ]


def test_compare_runs_errors_name_what_exists(store, tmp_path):
    _log(store, "errs", "only", 0.1, 1.0)
    with pytest.raises(TrackingError, match=r"unknown MLflow experiment 'nope'.*errs"):
        compare_runs("nope", tracking_uri=store)
    with pytest.raises(
        TrackingError, match=r"'sortino'.*available metrics: test.max_drawdown, test.sharpe"
    ):
        compare_runs("errs", metric="sortino", tracking_uri=store)
    with pytest.raises(TrackingError, match="--top"):
        compare_runs("errs", top=0, tracking_uri=store)
    missing = tmp_path / "missing.db"
    with pytest.raises(FinMetaError, match="no MLflow store"):
        compare_runs(tracking_uri=f"sqlite:///{missing}")
    assert not missing.exists()


def test_latest_run_and_latest_experiment(store):
    first = _log(store, "latest-a", "x", 0.1, 1.0)
    finished = _log(store, "latest-b", "y", 0.1, 2.0)
    failed = _log(store, "latest-b", "z", 0.2, 3.0, status_error=True)
    assert latest_run_id("latest-a", tracking_uri=store) == first
    assert latest_run_id(tracking_uri=store) == finished
    assert latest_run_id(tracking_uri=store, finished_only=False) == failed
    table = compare_runs(tracking_uri=store)  # the most recently active experiment
    assert set(table.index) == {finished, failed}
    assert dict(zip(table["run_name"], table["status"], strict=True)) == {
        "z": "FAILED",
        "y": "FINISHED",
    }


# STALE: a RUNNING run whose process died -----------------------------------------------------
def test_killed_run_shows_stale_after_its_heartbeat_stops(store, capsys, monkeypatch):
    code = textwrap.dedent(f"""
        import sys
        from fin_meta.tracking import start_run
        with start_run("killed", tracking_uri={store!r}) as tracker:
            tracker.log_metrics({{"test.sharpe": 0.5}})
            print(tracker.run_id, flush=True)
            sys.stdin.readline()  # alive until the test kills it
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()  # "" if the child died before starting its run
    finally:
        proc.kill()  # SIGKILL: no chance to mark the run FAILED
        proc.wait()
    assert run_id, "the child process did not start its run"
    client = open_client(store)
    assert client.get_run(run_id).info.status == "RUNNING"
    beat = float(client.get_run(run_id).data.tags[HEARTBEAT_TAG])
    clock = FakeClock(beat + 60)  # one minute after its last beat
    monkeypatch.setattr(query_module, "time", clock)
    assert compare_runs("killed", tracking_uri=store).loc[run_id, "status"] == "RUNNING"  # just beat
    clock.now = beat + 11 * 60  # 11 minutes after it
    assert compare_runs("killed", tracking_uri=store).loc[run_id, "status"] == "STALE"
    assert compare_runs("killed", tracking_uri=store, stale_after=20).loc[run_id, "status"] == "RUNNING"
    status, out, err = cli(capsys, "compare", "--experiment", "killed", "--tracking-uri", store)
    row = out.splitlines()[1].split()
    assert status == 0 and row[0] == run_id[:8] and "STALE" in row
    status, out, _ = cli(capsys, "compare", "--experiment", "killed", "--stale-after", "30", "--tracking-uri", store)
    assert status == 0 and "RUNNING" in out and "STALE" not in out


# fitting the terminal --------------------------------------------------------------------------
def test_format_table_fits_the_width_and_keeps_the_run_id_on_every_block():
    table = pd.DataFrame(
        {
            "run_id": ["aaaaaaaa", "bbbbbbbb"],
            "run_name": ["first", "second"],
            "status": ["FINISHED", "STALE"],
            "strategy_params.sma_cross.fast": ["10", "x" * 200],
            "test.sharpe": [1.23456, float("nan")],
            "test.max_drawdown": [-0.25, -0.5],
        }
    )
    full = format_table(table).splitlines()
    assert len(full) == 3 and "x" * 200 in full[2]  # a file or a pipe: one uncut line per run
    assert full[1].split() == ["aaaaaaaa", "first", "FINISHED", "10", "1.235", "-0.25"]
    lines = format_table(table, width=60).splitlines()
    assert max(map(len, lines)) <= 60
    blocks = [block.splitlines() for block in "\n".join(lines).split("\n\n")]
    assert len(blocks) > 1 and all(len(block) == 3 for block in blocks)
    assert all(b[0].startswith("run_id") and b[1].startswith("aaaaaaaa") for b in blocks)
    shown = " ".join(" ".join(block[0].split()[1:]) for block in blocks).split()
    assert shown == list(table.columns[1:])  # every column once, in order
    assert any(line.rstrip().endswith("...") for line in lines)  # the long value, cut


def test_compare_all_shows_every_param_and_metric(store, capsys):
    _log(store, "cmp-all", "a", 0.1, 1.0)
    _log(store, "cmp-all", "b", 0.2, 2.0)
    status, out, err = cli(capsys, "compare", "--experiment", "cmp-all", "--tracking-uri", store)
    assert status == 0, err
    header = out.splitlines()[0].split()
    assert "agent.lr" in header and "seed" not in header and "train.return" not in header
    status, out, err = cli(capsys, "compare", "--experiment", "cmp-all", "--all", "--tracking-uri", store)
    assert status == 0, err
    header = out.splitlines()[0].split()
    assert {"agent.lr", "agent.hidden", "seed", "train.return", "test.sharpe.buy_and_hold"} <= set(header)


def test_latest_run_of_a_source_with_an_agent(store):
    """The notebook's "latest run" must be a finished `fin-meta run` on the data shown, not any
    run of the experiment (it paired a monthly agent with S&P 500 prices)."""
    def tagged(name: str, source: str, job: str) -> str:
        with start_run("mix", run_name=name, tags={"data.source": source, "job": job}, tracking_uri=store) as t:
            return t.run_id

    sp500 = tagged("rl2-sp500", "sample:sp500", "run")
    tagged("rl2-monthly", "csv:btc_monthly.csv", "run")
    tagged("rules-sp500", "sample:sp500", "backtest")
    assert latest_run_id("mix", tracking_uri=store, source="sample:sp500", with_agent=True) == sp500
    with pytest.raises(TrackingError, match="no finished runs of fin-meta run on sample:nasdaq"):
        latest_run_id("mix", tracking_uri=store, source="sample:nasdaq", with_agent=True)
