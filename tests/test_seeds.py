"""Seed sets (issue 13, item 1): `fin-meta run X.yaml --seeds 0-1 [--jobs 2]` and `run_seeds`, end
to end on the quickstart file with a tiny budget: real data, real RL² agents, real vectorbt
backtests, a real SQLite MLflow store read back with `MlflowClient`. One parent run, a child run
per seed; the parent's figures are checked against what the children logged."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from fin_meta.cli import main
from fin_meta.comparison import paired_difference_ci
from fin_meta.config import config_to_dict
from fin_meta.errors import ConfigError
from fin_meta.pipeline import parse_jobs, parse_seeds, run_experiment, run_seeds
from fin_meta.pipeline.seeds import SeedFailed, child, seed_label
from fin_meta.tracking.nesting import PARENT_TAG, ROLE_TAG, child_runs
from tests.pipeline_data import QUICKSTART, TINY, artifact_paths, tiny_config
from tests.test_cli import cli, one_line_error

EXTRA = ["evaluation.baselines=[momentum]", "evaluation.adaptation_steps=[0]", "data.start=2009-01-02",
         "data.train_start=2009-01-02"]
"""On top of the tiny budget: one rule baseline (and buy-and-hold), two years of training bars."""
SETS = [arg for item in [*TINY, *EXTRA] for arg in ("--set", item)]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('seeds')}/mlflow.db"


@pytest.fixture(scope="module")
def seed_set(store):
    """`fin-meta run quickstart.yaml --seeds 0-1` (tiny budget, seeds one after the other in this
    process): (parent run id, what it printed, torch threads before)."""
    threads = torch.get_num_threads()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        main(["run", str(QUICKSTART), *SETS, "--set", "tracking.experiment=seeds", "--tracking-uri", store,
              "--seeds", "0-1"])
    assert done.value.code in (0, None), out.getvalue()[-2000:]
    return only_parent(MlflowClient(store), "seeds").info.run_id, out.getvalue(), threads


def only_parent(client: MlflowClient, experiment: str):
    (parent,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                                   filter_string=f"tags.`{ROLE_TAG}` = 'parent'")
    return parent


def children_by_seed(client: MlflowClient, parent_id: str) -> dict[int, object]:
    return {int(run.data.tags["seed"]): run for run in child_runs(client, parent_id)}


def logged_returns(client: MlflowClient, run_id: str, folder: Path) -> pd.DataFrame:
    """A run's test returns as it logged them (`test/returns.csv`)."""
    local = client.download_artifacts(run_id, "test/returns.csv", str(folder))
    return pd.read_csv(local, index_col="date", parse_dates=True)


def metric_name(stat: str, strategy: str) -> str:
    return f"test.{stat}" if strategy == "rl2" else f"test.{stat}.{strategy}"


def test_one_parent_and_a_child_run_per_seed(seed_set, store):
    parent_id, out, threads = seed_set
    client = MlflowClient(store)
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags[ROLE_TAG] == "parent"
    assert parent.data.params["seeds"] == "0, 1" and "seed" not in parent.data.params
    assert parent.info.run_name.startswith("rl2-sp500-s0,1-")
    kids = children_by_seed(client, parent_id)
    assert sorted(kids) == SEEDS
    for seed, run in kids.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags[PARENT_TAG] == parent_id and run.data.tags[ROLE_TAG] == "seed"
        assert run.data.params["seed"] == str(seed) and "seeds" not in run.data.params  # a plain run
        assert f"seed {seed}: rl2 net Sharpe {run.data.metrics['test.sharpe']:.2f}, MLflow run {run.info.run_id}" in out
    assert torch.get_num_threads() == threads  # one thread while the seeds ran, restored after
    assert "  seed 1 [3/5] meta-training rl2" in out


def test_parent_logs_mean_and_sd_of_every_child_test_metric(seed_set, store):
    parent_id, _, _ = seed_set
    client = MlflowClient(store)
    kids = children_by_seed(client, parent_id)
    parent = client.get_run(parent_id).data
    names = sorted({k for run in kids.values() for k in run.data.metrics if k.startswith("test.")})
    assert {"test.sharpe", "test.sharpe.momentum", "test.cost_drag.buy_and_hold"} <= set(names)
    for name in names:
        values = np.array([kids[s].data.metrics.get(name, np.nan) for s in SEEDS])
        if np.isfinite(values).all():
            assert parent.metrics[f"{name}.mean"] == pytest.approx(values.mean(), rel=1e-12, abs=1e-15)
            assert parent.metrics[f"{name}.sd"] == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-15)
        else:  # undefined in one seed: undefined over the seeds, said in a tag
            assert f"nonfinite.{name}.mean" in parent.tags
    assert parent.metrics["test.sharpe.sd"] > 0  # the seeds' agents differ


def test_paired_ci_pooled_over_seeds_from_the_children_logged_returns(seed_set, store, tmp_path):
    parent_id, _, _ = seed_set
    client = MlflowClient(store)
    kids = children_by_seed(client, parent_id)
    parent = client.get_run(parent_id).data.metrics
    returns = [logged_returns(client, kids[s].info.run_id, tmp_path / str(s)) for s in SEEDS]
    samples = int(client.get_run(parent_id).data.params["evaluation.bootstrap_samples"])
    for baseline in ("buy_and_hold", "momentum"):
        name = f"test.sharpe_diff.{baseline}"
        point = np.mean([kids[s].data.metrics["test.sharpe"] - kids[s].data.metrics[f"test.sharpe.{baseline}"]
                         for s in SEEDS])
        assert parent[name] == pytest.approx(point, rel=1e-9)
        ci = paired_difference_ci([r["rl2"].to_numpy() for r in returns], [r[baseline].to_numpy() for r in returns],
                                  np.random.default_rng(SEEDS[0]), periods_per_year=252.0, n_resamples=samples)
        assert (parent[f"{name}.ci_low"], parent[f"{name}.ci_high"]) == pytest.approx((ci.ci_low, ci.ci_high), rel=1e-9)
        assert ci.ci_low < point < ci.ci_high


def test_results_table_in_artifacts_description_and_terminal(seed_set, store, tmp_path):
    parent_id, out, _ = seed_set
    client = MlflowClient(store)
    run = client.get_run(parent_id)
    assert {"config.yaml", "seeds/summary.csv", "seeds/summary.md", "seeds/children.csv",
            "seeds/test_returns.csv"} <= artifact_paths(client, parent_id)
    local = Path(client.download_artifacts(parent_id, "seeds", str(tmp_path)))
    summary = pd.read_csv(local / "summary.csv").set_index("strategy")
    assert sorted(summary.index) == ["buy_and_hold", "momentum", "rl2"]
    kids = children_by_seed(client, parent_id)
    for strategy in summary.index:
        for stat in ("sharpe", "gross_sharpe", "turnover", "cost_drag"):
            values = [kids[s].data.metrics[metric_name(stat, strategy)] for s in SEEDS]
            assert summary.loc[strategy, f"{stat}_mean"] == pytest.approx(np.mean(values), rel=1e-12, abs=1e-15)
    assert (local / "summary.md").read_text() in run.data.tags["mlflow.note.content"]
    assert "mean ± sd over 2 seeds" in out and "paired 95% CI" in out and f"MLflow parent run {parent_id}" in out
    rl2 = summary.loc["rl2"]
    row = next(line for line in out.splitlines() if line.strip().startswith("rl2 "))
    assert row.split()[1:4] == [f"{rl2['sharpe_mean']:.2f}", "±", f"{rl2['sharpe_sd']:.2f}"]


def test_jobs_2_gives_the_children_of_jobs_1(seed_set, store, tmp_path):
    parent_id, _, _ = seed_set
    client = MlflowClient(store)
    kids = children_by_seed(client, parent_id)
    again = run_seeds(tiny_config(*EXTRA), SEEDS, jobs=2, progress=False)  # untracked, two worker processes
    assert [c.seed for c in again.children] == SEEDS and again.jobs == 2
    for result in again.children:
        logged = kids[result.seed].data.metrics
        (source,) = result.sources
        for row in source.table.to_dict("records"):
            for stat in ("sharpe", "gross_sharpe", "total_return", "max_drawdown", "turnover", "cost_drag"):
                assert row[stat] == logged[metric_name(stat, row["strategy"])], (result.seed, row["strategy"], stat)
        expected = logged_returns(client, kids[result.seed].info.run_id, tmp_path / str(result.seed))
        pd.testing.assert_frame_equal(source.returns, expected, check_exact=True, check_freq=False,
                                      check_names=False)
    local = client.download_artifacts(parent_id, "seeds/summary.csv", str(tmp_path))
    pd.testing.assert_frame_equal(again.summary, pd.read_csv(local), check_exact=True, check_dtype=False)


def test_a_failing_seed_fails_the_parent_naming_it_and_no_seed_starts_after_it(store, monkeypatch):
    calls: list[int] = []

    def broken(cfg, **kwargs):
        calls.append(cfg.seed)
        raise RuntimeError("injected")

    monkeypatch.setattr(child, "run_experiment", broken)
    with pytest.raises(SeedFailed, match="seed 3 failed: RuntimeError: injected"):
        run_seeds(tiny_config(*EXTRA, "tracking.experiment=seeds_fail", uri=store), [3, 4], progress=False)
    client = MlflowClient(store)
    (parent,) = client.search_runs([client.get_experiment_by_name("seeds_fail").experiment_id])
    assert parent.info.status == "FAILED" and "seed 3 failed" in parent.data.tags["fin_meta.error"]
    assert calls == [3]


def test_bad_input_in_a_seed_is_one_line_and_a_parent_cannot_be_resumed(store, capsys):
    short = ["--set", "data.test_start=2018-11-01", "--set", "data.test_end=2020-12-31"]
    code, _, err = cli(capsys, "run", str(QUICKSTART), *SETS, *short, "--set", "tracking.experiment=seeds_bad",
                       "--tracking-uri", store, "--seeds", "0,1")
    assert code == 2 and one_line_error(err).startswith("error: seed 0: the test period of sample:sp500 has 40 bars")
    client = MlflowClient(store)
    (parent,) = client.search_runs([client.get_experiment_by_name("seeds_bad").experiment_id])
    assert parent.info.status == "FAILED" and parent.data.tags["fin_meta.error"].startswith("ConfigError: seed 0:")
    code, _, err = cli(capsys, "run", "--resume", parent.info.run_id, "--tracking-uri", store)
    assert code == 2 and "is the parent of the seed set [0, 1]" in one_line_error(err)
    assert client.get_run(parent.info.run_id).info.status == "FAILED"  # left as it was


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--seeds", "a-b"], "--seeds: 'a-b' is not a list of seeds"),
        (["--seeds", "4-0"], "--seeds: the range '4-0' runs backwards"),
        (["--seeds", "-1"], "--seeds: '-1' is not a list of seeds"),
        (["--seeds", "0,1,1"], "--seeds: seed 1 appears more than once"),
        (["--seeds", ""], "--seeds: '' is not a list of seeds"),
        (["--seeds", "0-4", "--jobs", "two"], "--jobs: 'two' is not a number of processes"),
        (["--seeds", "0-4", "--resume", "0123abcd"], "--seeds cannot be combined with --resume"),
    ],
    ids=["letters", "backwards", "negative", "twice", "empty", "bad-jobs", "with-resume"],
)
def test_bad_seeds_or_jobs_are_one_line_exit_2_before_anything(capsys, tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "run", str(QUICKSTART), *args)
    assert code == 2 and needle in one_line_error(err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("text", "seeds", "label"),
                         [("0-4", [0, 1, 2, 3, 4], "0-4"), ("0,2,5", [0, 2, 5], "0,2,5"), ("3", [3], "3"),
                          (" 0-2, 7 ", [0, 1, 2, 7], "0,1,2,7"), ("100-104", [100, 101, 102, 103, 104], "100-104")])
def test_parse_seeds(text, seeds, label):
    assert parse_seeds(text) == seeds and seed_label(seeds) == label


def test_parse_jobs():
    assert parse_jobs("3") == 3 and parse_jobs(1) == 1
    assert parse_jobs("auto") == parse_jobs("0") >= 1


def test_one_seed_is_a_plain_run_and_run_experiment_refuses_a_set(tmp_path, monkeypatch):
    one = tiny_config("seeds=[3]")
    assert one.seed == 3 and one.seeds is None and "seeds" not in config_to_dict(one)
    assert config_to_dict(one) == config_to_dict(tiny_config("seed=3"))  # the same run as --set seed=3
    with pytest.raises(ConfigError, match="seeds are listed|appears more than once"):
        tiny_config("seeds=[2, 2]")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"seeds \[0, 1\]: run_experiment runs one seed"):
        run_experiment(tiny_config("seeds=[0, 1]"), progress=False)
    assert list(tmp_path.iterdir()) == []


def test_headline_table_reads_the_seed_set_back_and_chooses_the_rule_off_the_test_period(seed_set, store, capsys):
    from tests.test_benchmarks import _script

    headline = _script("headline_table")
    parent_id, _, _ = seed_set
    client = MlflowClient(store)
    kids = list(children_by_seed(client, parent_id).values())
    headline.main(["seeds", "--tracking-uri", store])
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in capsys.readouterr().out.splitlines()[2:]]
    table = {row[1].split(" (")[0]: dict(zip(headline.COLUMNS, row, strict=True)) for row in rows}
    assert list(table) == ["rl2", "buy-and-hold", "best rule: momentum"]  # no validation: the rule is chosen in-sample
    agent = [k.data.metrics["test.sharpe"] for k in kids]
    assert table["rl2"]["test net"] == f"{np.mean(agent):.2f} ± {np.std(agent, ddof=1):.2f}"
    assert table["rl2"]["val net"] == "–"  # the file has no validation period
    dsr = np.mean([k.data.metrics["test.dsr.momentum"] for k in kids])
    assert table["best rule: momentum"]["DSR"] == f"{dsr:.2f}"
    parent = client.get_run(parent_id).data.metrics
    assert table["buy-and-hold"]["agent − it [95% CI]"] == (
        f"{parent['test.sharpe_diff.buy_and_hold']:+.2f} [{parent['test.sharpe_diff.buy_and_hold.ci_low']:+.2f}, "
        f"{parent['test.sharpe_diff.buy_and_hold.ci_high']:+.2f}]")
    with pytest.raises(SystemExit) as bad:
        headline.main(["no_such_experiment", "--tracking-uri", store])
    assert bad.value.code == 2 and "no MLflow experiment 'no_such_experiment'" in capsys.readouterr().err
