"""MLflow runs written to a real temporary SQLite store and read back with `MlflowClient`:
params, metrics, tags, artifacts, FAILED runs, resuming, and the heartbeat of a live run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fin_meta import __version__
from fin_meta.tracking import TrackingError, git_info, open_client, start_run
from fin_meta.tracking import tags as tags_module
from fin_meta.tracking.tags import HEARTBEAT_TAG


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


def _artifact_text(client, run_id: str, path: str) -> str:
    return Path(client.download_artifacts(run_id, path)).read_text()


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


class FakeClock:
    """Stands in for the `time` module of `fin_meta.tracking.tags`: `time()` is `now`, moved by
    the test (heartbeats are then asserted exactly, never against the wall clock)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def test_heartbeat_set_at_start_renewed_by_metrics_and_on_resume(store, client, monkeypatch):
    clock = FakeClock(1_000_000.0)
    monkeypatch.setattr(tags_module, "time", clock)

    def beat() -> str:
        return client.get_run(run_id).data.tags[HEARTBEAT_TAG]

    with pytest.raises(KeyboardInterrupt):
        with start_run("heartbeat", tracking_uri=store) as tracker:
            run_id = tracker.run_id
            assert beat() == "1000000"  # set at the start
            clock.now += tags_module.HEARTBEAT_INTERVAL_S - 1
            tracker.log_metrics({"m": 1.0})  # within the interval: no write
            assert beat() == "1000000"
            clock.now += 2
            tracker.log_metrics({"m": 2.0}, step=1)  # past it: renewed
            assert beat() == str(int(clock.now))
            raise KeyboardInterrupt
    clock.now += 5_000
    with start_run("heartbeat", tracking_uri=store, resume_run_id=run_id):
        assert beat() == str(int(clock.now))  # a resumed run beats again
