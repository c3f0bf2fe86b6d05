"""`fin-meta run` on the command line (issue 10, items 2, 6, 7 and 8): Ctrl-C prints the resume
command, `--resume RUN_ID` needs no config file or flags, a refused resume is one line (exit 2)
that leaves the run as it was, and bad settings fail in one line before training and before any
store is created.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from fin_meta.tracking.checkpoints import Checkpointer
from tests.pipeline_data import QUICKSTART, TINY, only_run
from tests.test_cli import cli, one_line_error

SETS = [arg for item in TINY for arg in ("--set", item)]
"""The tiny budget as `--set` flags."""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--resume", ""], "--resume needs a run id"),
        (["--resume", "0123abcd", "--no-track"], "cannot be combined with --no-track"),
        (["--resume", "0123abcd", "--set", "seed=1"], "--set needs an experiment file"),
        (["--resume", "0123abcd", "--offline-html"], "--offline-html cannot be combined with --resume"),
        ([], "give an experiment file"),
    ],
    ids=["empty-id", "no-track", "set-without-file", "offline-html-on-resume", "nothing"],
)
def test_run_argument_errors_are_one_line(capsys, tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "run", *args)
    assert code == 2 and needle in one_line_error(err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["evaluation.strategy_params={sma_cross: {fast: 60}}"], "sma_cross"),
        (["data.test_start=2018-11-01", "data.test_end=2020-12-31"], "the test period of sample:sp500 has 40 bars"),
        (["agent.patience=2"], "agent.patience: needs a validation period: set data.val_start"),
        (["data.train_end=2009-12-31", "data.val_start=2010-02-03", "agent.patience=0"],
         "agent.patience: input should be greater than or equal to 1"),
        (["data.val_start=2005-06-01"], "val_start (2005-06-01) must be after train_end (2010-12-31)"),
        (["data.train_end=2009-12-31", "data.val_start=2010-11-01"],
         "the validation period of sample:sp500 has 44 bars (2010-11-01 .. 2011-01-03), fewer than "
         "evaluation.min_test_bars=252"),
    ],
    ids=["strategy-param", "short-test-period", "patience-without-validation", "patience-0", "val-before-train-end",
         "short-validation-period"],
)
def test_bad_settings_fail_before_training_and_before_any_store(capsys, tmp_path, monkeypatch, sets, needle):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "run", str(QUICKSTART), *SETS, *[a for s in sets for a in ("--set", s)])
    assert code == 2 and needle in one_line_error(err)
    assert "[3/5]" not in out  # training never started
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no run left FAILED


def test_ctrl_c_then_resume_without_flags(capsys, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    save = Checkpointer.save

    def interrupted_save(self, agent, iterations):
        save(self, agent, iterations)
        raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "save", interrupted_save)
    tracked = ["--tracking-uri", uri, "--set", "agent.iterations=2", "--set", "evaluation.baselines=[buy_and_hold]"]
    code, out, err = cli(capsys, "run", str(QUICKSTART), *SETS, *tracked)
    monkeypatch.undo()
    client = MlflowClient(uri)
    run_id = only_run(client, "quickstart").info.run_id
    assert code == 130
    assert f"continue it with: fin-meta run --resume {run_id} --tracking-uri {uri}" in out

    # a config that disagrees with the run's own is refused, and the run stays as it was
    code, _, err = cli(capsys, "run", str(QUICKSTART), *SETS, *tracked, "--set", "seed=3", "--resume", run_id)
    assert code == 2 and "seed: '0' in the run, '3' given" in one_line_error(err)
    assert client.get_run(run_id).info.status == "FAILED"

    code, out, _ = cli(capsys, "run", "--resume", run_id, "--tracking-uri", uri)  # no file, no --set
    assert code == 0 and f"resuming MLflow run {run_id} (FAILED)" in out
    finished = client.get_run(run_id)
    assert finished.info.status == "FINISHED" and finished.data.tags["fin_meta.checkpoint.iterations"] == "2"

    code, _, err = cli(capsys, "run", "--resume", run_id, "--tracking-uri", uri)
    assert code == 2 and f"run {run_id} is FINISHED" in one_line_error(err)
    again = client.get_run(run_id)
    assert (again.info.status, again.info.end_time) == ("FINISHED", finished.info.end_time)


def test_offline_html_flag_sets_the_config(capsys, monkeypatch):
    import fin_meta.pipeline
    from fin_meta.errors import FinMetaError

    seen = []

    def fake_run(cfg, **kwargs):
        seen.append(cfg)
        raise FinMetaError("stopped before running")

    monkeypatch.setattr(fin_meta.pipeline, "run_experiment", fake_run)
    for extra, expected in (([], False), (["--offline-html"], True), (["--set", "tracking.offline_html=true"], True)):
        code, _, err = cli(capsys, "run", str(QUICKSTART), "--no-track", *extra)
        assert code == 2 and "stopped before running" in err
        assert seen[-1].tracking.offline_html is expected
