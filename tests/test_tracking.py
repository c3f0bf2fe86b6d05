"""MLflow tracking: runs written to a real temporary SQLite store and read back with
`MlflowClient` (params, metrics, tags, artifacts, FAILED runs), `compare_runs`, the UI argv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from fin_meta import __version__
from fin_meta.errors import DataError, FinMetaError
from fin_meta.tracking import (
    MAX_PARAM_LENGTH,
    TrackingError,
    compare_runs,
    flatten_params,
    git_info,
    latest_run_id,
    open_client,
    prices_hash,
    resolve_tracking_uri,
    start_run,
    ui_command,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the module (creating MLflow's tables takes seconds); every test
    uses its own experiment name in it."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture
def client(store):
    return open_client(store)


@pytest.fixture
def git_repo(tmp_path, monkeypatch) -> str:
    """A fresh git repo with one commit as the working directory; returns the commit sha."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "f.txt").write_text("x")
    git = [
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "-c",
        "commit.gpgsign=false",
    ]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "f.txt"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def _prices(n: int = 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.cumprod(1 + rng.normal(0, 0.01, n))
    index = pd.date_range("2020-01-01", periods=n, freq="D", name="date")
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1e6},
        index=index,
    )


def _artifact_text(client, run_id: str, path: str) -> str:
    return Path(client.download_artifacts(run_id, path)).read_text()


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


def test_git_info_outside_a_repo_and_without_git(tmp_path, monkeypatch, git_repo):
    assert git_info()["git.commit"] == git_repo
    assert git_info(tmp_path.parent) == {}  # tmp folders are not git repos
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))  # no git executable at all
    assert git_info() == {}


# runs ------------------------------------------------------------------------------------------
def test_run_logs_params_metrics_tags_and_artifacts(store, client, git_repo, tmp_path):
    params = {"agent": {"lr": 3e-4, "hidden": [64, 64]}, "seed": 7}
    stats = pd.DataFrame(
        {"sharpe": [1.2, 0.4], "total_return": [0.3, 0.1]}, index=pd.Index(["meta", "buy_and_hold"])
    )
    figure = tmp_path / "equity.png"
    figure.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    with start_run(
        "full",
        run_name="r1",
        params=params,
        tags={"data.source": "sample:sp500", "data.hash": "abc"},
        tracking_uri=store,
        command_line="fin-meta backtest --strategy sma_cross",
    ) as tracker:
        tracker.log_metrics({"train.return": 0.05}, step=2)
        tracker.log_metrics({"train.return": 0.07, "bad": float("nan"), "huge": np.inf}, step=3)
        tracker.log_stats(stats, prefix="test", main="meta")
        tracker.log_table(stats, "tables/stats.csv")
        tracker.log_dict({"agent": {"lr": 3e-4}}, "config.yaml")
        tracker.log_dict({"a": [1, 2]}, "extra.json")
        tracker.log_text("hello", "notes/readme.txt")
        tracker.log_figure_file(figure, "plots")
        tracker.log_figure(lambda path: path.write_bytes(figure.read_bytes()), "plots/drawn.png")
        tracker.log_artifact(figure)
        checkpoint = tmp_path / "checkpoint"
        (checkpoint / "weights").mkdir(parents=True)
        (checkpoint / "agent.json").write_text("{}")
        (checkpoint / "weights" / "w.bin").write_bytes(b"w")
        tracker.log_artifact(checkpoint)
        tracker.log_artifact(checkpoint, "saved")
        run_id = tracker.run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "r1"
    assert run.data.params == {"agent.lr": "0.0003", "agent.hidden": "64, 64", "seed": "7"}
    assert run.data.metrics == {
        "train.return": 0.07,
        "test.sharpe": 1.2,
        "test.total_return": 0.3,
        "test.sharpe.buy_and_hold": 0.4,
        "test.total_return.buy_and_hold": 0.1,
    }
    history = client.get_metric_history(run_id, "train.return")
    assert [(m.step, m.value) for m in history] == [(2, 0.05), (3, 0.07)]
    tags = run.data.tags
    assert tags["fin_meta.version"] == __version__
    assert tags["command"] == "fin-meta backtest --strategy sma_cross"
    assert tags["git.commit"] == git_repo and tags["mlflow.source.git.commit"] == git_repo
    assert tags["data.source"] == "sample:sp500" and tags["data.hash"] == "abc"
    assert tags["nonfinite.bad"] == "nan (step 3)" and tags["nonfinite.huge"] == "inf (step 3)"
    back = pd.read_csv(client.download_artifacts(run_id, "tables/stats.csv"), index_col=0)
    pd.testing.assert_frame_equal(back, stats)
    assert "lr: 0.0003" in _artifact_text(client, run_id, "config.yaml")
    assert '"a": [\n    1,' in _artifact_text(client, run_id, "extra.json")
    assert _artifact_text(client, run_id, "notes/readme.txt") == "hello"
    assert {a.path for a in client.list_artifacts(run_id)} >= {
        "equity.png",
        "plots",
        "tables",
        "notes",
    }
    for folder in ("checkpoint", "saved/checkpoint"):
        assert {a.path for a in client.list_artifacts(run_id, folder)} == {
            f"{folder}/agent.json",
            f"{folder}/weights",
        }
        assert _artifact_text(client, run_id, f"{folder}/weights/w.bin") == "w"
    for name in ("equity.png", "drawn.png"):
        assert Path(client.download_artifacts(run_id, f"plots/{name}")).read_bytes() == figure.read_bytes()
    # artifacts sit beside the SQLite file, not in the working directory
    assert run.info.artifact_uri.startswith(Path(store.removeprefix("sqlite:///")).parent.as_uri())
    assert not (Path.cwd() / "mlruns").exists()


def test_command_tag_defaults_to_argv_and_no_git_outside_repo(store, client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["/some/bin/fin-meta", "backtest", "--data", "sample:sp500"])
    with start_run("argv", tracking_uri=store) as tracker:
        run_id = tracker.run_id
    tags = client.get_run(run_id).data.tags
    assert tags["command"] == "fin-meta backtest --data sample:sp500"
    assert "git.commit" not in tags


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValueError("boom"), "FAILED"),
        (KeyboardInterrupt(), "FAILED"),
        (SystemExit(0), "FINISHED"),
        (SystemExit(3), "FAILED"),
    ],
)
def test_exception_in_body_sets_status_and_propagates(store, client, error, status):
    with pytest.raises(type(error)) as caught:
        with start_run("failing", tracking_uri=store) as tracker:
            tracker.log_metrics({"m": 1.0})
            run_id = tracker.run_id
            raise error
    assert caught.value is error
    run = client.get_run(run_id)
    assert run.info.status == status
    assert run.info.end_time is not None
    if status == "FAILED":
        assert run.data.tags["fin_meta.error"].startswith(type(error).__name__)


def test_failed_writer_leaves_no_artifact(store, client):
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("cannot format")

        __repr__ = __str__

    frame = pd.DataFrame({"a": [1.0] * 50 + [Unprintable()]})
    with start_run("atomic", tracking_uri=store) as tracker:
        with pytest.raises(RuntimeError, match="cannot format"):
            tracker.log_table(frame, "half.csv")
        run_id = tracker.run_id
    assert client.list_artifacts(run_id) == []
    assert client.get_run(run_id).info.status == "FINISHED"


def test_resume_continues_the_same_run(store, client, tmp_path):
    params = {"agent": {"lr": 0.1}, "seed": 3}
    with pytest.raises(KeyboardInterrupt):
        with start_run(
            "resume", params=params, tracking_uri=store, command_line="fin-meta run a.yaml"
        ) as t:
            t.log_metrics({"train.return": 0.1}, step=0)
            (tmp_path / "ckpt.txt").write_text("iteration 1")
            t.log_artifact(tmp_path / "ckpt.txt", "checkpoints")
            run_id = t.run_id
            raise KeyboardInterrupt
    assert client.get_run(run_id).info.status == "FAILED"
    with start_run(
        "resume",
        params=params,
        tracking_uri=store,
        command_line="fin-meta run --resume",
        resume_run_id=run_id[:8],
    ) as t:
        assert t.run_id == run_id
        assert client.get_run(run_id).info.status == "RUNNING"
        checkpoint = t.download_artifact("checkpoints/ckpt.txt", tmp_path / "down")
        assert checkpoint.read_text() == "iteration 1"
        t.log_metrics({"train.return": 0.2}, step=1)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["command"] == "fin-meta run a.yaml"
    assert run.data.tags["resume.command"] == "fin-meta run --resume"
    assert run.data.tags["resume.previous_error"] == "KeyboardInterrupt"
    assert "fin_meta.error" not in run.data.tags
    assert [m.value for m in client.get_metric_history(run_id, "train.return")] == [0.1, 0.2]
    assert len(client.search_runs([run.info.experiment_id])) == 1
    with pytest.raises(TrackingError, match="Changing param values.*seed"):
        with start_run("resume", params={"seed": 4}, tracking_uri=store, resume_run_id=run_id):
            pass
    with pytest.raises(TrackingError, match="matches no run"):
        with start_run("resume", tracking_uri=store, resume_run_id="ffffffff"):
            pass


def test_bad_calls_raise_clear_errors(store):
    with start_run("bad-calls", tracking_uri=store) as tracker:
        with pytest.raises(TypeError, match="'sharpe'"):
            tracker.log_metrics({"sharpe": "high"})
        with pytest.raises(ValueError, match="main column 'ppo'"):
            tracker.log_stats(pd.DataFrame({"sharpe": [1.0]}, index=["meta"]), main="ppo")
        with pytest.raises(ValueError, match="relative path"):
            tracker.log_text("x", "../escape.txt")
        with pytest.raises(ValueError, match="not a figure"):
            tracker.log_figure_file("table.csv")
        with pytest.raises(ValueError, match="not a figure"):
            tracker.log_figure(lambda path: None, "plots/table.csv")
        with pytest.raises(FileNotFoundError, match="missing.png"):
            tracker.log_artifact("missing.png")
    with pytest.raises(TrackingError, match="non-empty"):
        with start_run("  ", tracking_uri=store):
            pass


def test_disabled_tracker_writes_nothing(tmp_path):
    uri = f"sqlite:///{tmp_path}/never.db"
    with pytest.raises(ValueError, match="inside"):
        with start_run("off", params={"a": 1}, tracking_uri=uri, enabled=False) as tracker:
            assert tracker.run_id is None and not tracker.enabled
            tracker.log_params({"b": 2})
            tracker.log_metrics({"m": float("nan")}, step=1)
            tracker.log_stats(pd.DataFrame({"sharpe": [1.0]}, index=["x"]))
            tracker.log_table(pd.DataFrame({"a": [1]}), "t.csv")
            tracker.log_dict({"a": 1}, "c.yaml")
            tracker.log_text("t", "t.txt")
            tracker.log_figure_file(tmp_path / "nothing.png")
            tracker.log_figure(lambda path: pytest.fail("drawn without tracking"), "plots/x.png")
            tracker.log_artifact(tmp_path / "nothing")
            tracker.set_tags({"a": "b"})
            raise ValueError("inside")
    assert list(tmp_path.iterdir()) == []


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
        "run_id", "run_name", "status", "start_time", "agent.lr",
        "test.max_drawdown", "test.sharpe", "train.return",
    ]  # fmt: skip
    assert list(table["agent.lr"]) == ["0.01", "0.001", "0.1", "0.01"]
    assert set(table["status"]) == {"FINISHED"}
    top = compare_runs("cmp", metric="max_drawdown", top=2, tracking_uri=store, ascending=True)
    assert list(top["run_name"]) == ["b", "c"]
    assert list(top["agent.lr"]) == ["0.01", "0.001"]
    detail = compare_runs(
        "cmp", metric="test.sharpe.buy_and_hold", tracking_uri=store, all_metrics=True
    )
    assert "test.sharpe.buy_and_hold" in detail.columns
    assert list(detail.columns[4:]) == [
        "agent.lr",
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


# UI --------------------------------------------------------------------------------------------
def test_ui_command_targets_the_same_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    argv = ui_command(uri, port=5123)
    assert argv[:4] == [sys.executable, "-m", "mlflow", "ui"]
    assert argv[argv.index("--backend-store-uri") + 1] == uri
    assert argv[argv.index("--port") + 1] == "5123"
    assert argv[argv.index("--default-artifact-root") + 1] == (tmp_path / "mlruns").as_uri()
    with pytest.raises(TrackingError, match="browser"):
        ui_command("http://server:5000")
    with pytest.raises(TrackingError, match="--port"):
        ui_command(uri, port=0)
    # the installed MLflow knows every option we pass
    help_text = subprocess.run(
        [*argv[:4], "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in (a for a in argv[4:] if a.startswith("--")):
        assert option in help_text


def test_load_agent_resolves_mlflow_uris_through_tracking(store, monkeypatch):
    from fin_meta import load_agent
    from fin_meta.errors import AgentError

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    with pytest.raises(AgentError, match="cannot download agent 'runs:/0123456789abcdef/agent'"):
        load_agent("runs:/0123456789abcdef/agent")
