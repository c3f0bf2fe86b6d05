"""DSR trials and PBO from MLflow, on one real SQLite store for the module: `fin-meta backtest`
logs the deflated and probabilistic Sharpe ratios with the N trials they account for, and
`fin-meta compare [--pbo]` shows them and the PBO across runs, end to end (in-process through
`fin_meta.cli.main`; real vectorbt backtests of two years of `sample:sp500`); then which runs
count as trials (`fin_meta.tracking.trials`) and PBO across runs from their logged per-bar
returns, test or validation (`fin_meta.tracking.pbo_runs`), on runs logged directly."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from fin_meta.cli import main
from fin_meta.errors import DataError
from fin_meta.overfitting import (
    deflated_sharpe_ratio,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_moments,
)
from fin_meta.tracking import start_run
from fin_meta.tracking.nesting import child_tags
from fin_meta.tracking.pbo_runs import pbo_of_runs
from fin_meta.tracking.trials import PBO_ROLE, count_trials, trial_key
from tests.test_cli import cli, one_line_error

TEST = {"data.sources": "sample:sp500", "data.test_start": "2015-01-01", "data.test_end": "None",
        "data.end": "2016-12-31", "data.train_end": "2014-11-30", "data.bars_per_year": "252.0"}
"""The params of a `fin-meta run` whose test period is 2015-01-01 .. 2016-12-31."""

PERIOD = ["--start", "2015-01-01", "--end", "2016-12-31"]
STRATEGIES = ("sma_cross", "momentum")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the module (creating MLflow's tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture(scope="module")
def backtests(store, tmp_path_factory) -> tuple[MlflowClient, list]:
    """Two backtest runs of one strategy each (plus buy_and_hold) on the same period, oldest first."""
    for strategy in STRATEGIES:
        with pytest.raises(SystemExit) as done:
            main(["backtest", "-s", strategy, *PERIOD, "--tracking-uri", store])
        assert done.value.code in (0, None)
    client = MlflowClient(store)
    exp = client.get_experiment_by_name("backtest")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(runs) == len(STRATEGIES)
    return client, runs


def _returns(client: MlflowClient, run, tmp_path) -> pd.DataFrame:
    path = client.download_artifacts(run.info.run_id, "test/returns.csv", str(tmp_path / run.info.run_id))
    return pd.read_csv(path, index_col=0, parse_dates=True)


def test_backtests_log_psr_dsr_and_the_trials_before_them(backtests, tmp_path):
    client, runs = backtests
    per_bar = []
    for i, run in enumerate(runs):
        metrics = run.data.metrics
        returns = _returns(client, run, tmp_path)
        assert list(returns.columns) == [STRATEGIES[i], "buy_and_hold"]  # the headline column first
        m = sharpe_moments(returns.to_numpy())
        np.testing.assert_allclose(m.sharpe * math.sqrt(252), [metrics["test.sharpe"], metrics["test.sharpe.buy_and_hold"]],
                                   rtol=1e-9)  # the logged returns are the backtested ones
        per_bar.append(metrics["test.sharpe"] / math.sqrt(252))
        n = i + 1  # each run counts itself and the runs finished before it
        assert run.data.tags["dsr.trials"] == str(n)
        variance = float(np.var(per_bar, ddof=1)) if n > 1 else 0.0
        assert float(run.data.tags["dsr.sharpe_var"]) == pytest.approx(variance, rel=1e-5, abs=1e-12)
        psr = probabilistic_sharpe_ratio(m.sharpe, m.n_bars, m.skew, m.kurtosis)
        dsr = deflated_sharpe_ratio(m.sharpe, m.n_bars, m.skew, m.kurtosis, n, variance)
        assert [metrics["test.psr"], metrics["test.psr.buy_and_hold"]] == pytest.approx(list(psr), rel=1e-9)
        assert [metrics["test.dsr"], metrics["test.dsr.buy_and_hold"]] == pytest.approx(list(dsr), rel=1e-9)
        assert 0 < metrics["test.dsr"] <= metrics["test.psr"] < 1
    assert runs[-1].data.metrics["test.dsr"] < runs[-1].data.metrics["test.psr"]  # 2 trials deflate


def test_compare_shows_dsr_psr_and_trials(capsys, store, backtests):
    _, runs = backtests
    code, out, err = cli(capsys, "compare", "--experiment", "backtest", "--tracking-uri", store)
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    header = lines[0].split()
    assert header.index("test.sharpe") < header.index("test.dsr") < header.index("test.psr") < header.index("trials")
    end = lines[0].index(" trials") + len(" trials")  # numbers are right-aligned under their name
    trials = {row.split()[0]: row[:end].split()[-1] for row in lines[1:]}
    assert trials == {run.info.run_id[:8]: run.data.tags["dsr.trials"] for run in runs}


def test_compare_pbo_reports_and_logs_the_pbo_of_the_runs(capsys, store, backtests, tmp_path):
    client, runs = backtests
    plot = tmp_path / "pbo.png"
    code, out, err = cli(capsys, "compare", "--experiment", "backtest", "--pbo", "--blocks", "8", "--plot", str(plot),
                         "--tracking-uri", store)
    assert code == 0, err
    matrix = pd.concat({r.info.run_id: _returns(client, r, tmp_path).iloc[:, 0] for r in runs}, axis=1)
    expected = probability_of_backtest_overfitting(matrix, 8)
    assert f"PBO (CSCV) over {len(runs)} runs' test returns, {len(matrix)} common bars" in out
    assert f"S=8 blocks, 70 splits: PBO = {expected.pbo:.2f}" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    logged = [r for r in client.search_runs([runs[0].info.experiment_id]) if r.data.tags.get("fin_meta.role") == "pbo"]
    assert len(logged) == 1 and logged[0].data.metrics["pbo"] == pytest.approx(expected.pbo)
    files = {f.path for folder in ("pbo", "plots") for f in client.list_artifacts(logged[0].info.run_id, folder)}
    assert {"pbo/logits.csv", "pbo/runs.json", "plots/pbo_logits.png"} <= files
    logits = pd.read_csv(client.download_artifacts(logged[0].info.run_id, "pbo/logits.csv", str(tmp_path)))
    np.testing.assert_allclose(logits["logit"], expected.logits)
    code, out, _ = cli(capsys, "compare", "--experiment", "backtest", "--tracking-uri", store)
    assert code == 0 and len([line for line in out.splitlines() if line.strip()]) == 1 + len(runs)  # not listed


def test_pbo_on_too_few_bars_is_one_line(capsys, store):
    rng = np.random.default_rng(0)
    for _ in range(2):
        returns = pd.DataFrame({"agent": rng.normal(0, 0.01, 12)}, index=pd.bdate_range("2020-01-01", periods=12, name="date"))
        with start_run("short", params={"data.source": "x"}, tracking_uri=store) as tracker:
            tracker.log_metrics({"test.sharpe": 0.1})
            tracker.log_table(returns.reset_index(), "test/returns.csv")
    code, _, err = cli(capsys, "compare", "--experiment", "short", "--pbo", "--blocks", "8", "--tracking-uri", store)
    assert code == 2
    assert "12 bars are too few for 8 blocks" in one_line_error(err)


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--pbo", "--blocks", "7"], "even"), (["--pbo", "--top", "1"], "at least 2 finished runs, found 1"),
     (["--pbo", "--on", "later"], "--on"), (["--blocks", "8"], "add --pbo")],
    ids=["odd-blocks", "one-run", "bad-period", "blocks-without-pbo"],
)
def test_bad_pbo_input_is_one_line_exit_2(capsys, store, backtests, args, needle):
    code, _, err = cli(capsys, "compare", "--experiment", "backtest", *args, "--tracking-uri", store)
    assert code == 2
    assert needle in one_line_error(err)


# -- trials and PBO of runs logged directly ---------------------------------------------------------
def _log(uri, params, sharpe=None, *, experiment, tags=None, fail=False, returns=None, folder="test"):
    """A finished (or failed) run with `params`, `test.sharpe` and optional per-bar returns."""
    try:
        with start_run(experiment, params=params, tags=tags, tracking_uri=uri) as tracker:
            if sharpe is not None:
                tracker.log_metrics({"test.sharpe": sharpe})
            if returns is not None:
                tracker.log_table(returns.reset_index(), f"{folder}/returns.csv")
            if fail:
                raise RuntimeError("boom")
    except RuntimeError:
        pass
    return tracker.run_id


def test_trials_are_the_finished_runs_on_the_same_test_period(store):
    client = MlflowClient(store)
    log = partial(_log, store, experiment="trials")
    first = log(TEST, 0.5)
    seed = log({**TEST, "data.test_end": "2016-12-31", "data.train_end": "2014-06-30"}, 1.0,
                tags=child_tags("p" * 32, "seed"))  # same test period spelled out; another training window
    log(TEST, 2.0, tags={"fin_meta.role": "parent"})  # a seed set's summary: no trial
    log(TEST, 3.0, fail=True)  # failed: no trial
    log({**TEST, "data.test_start": "2015-06-01"}, 3.0)  # another test period
    log({**TEST, "data.bars_per_year": "365.0"}, 3.0)  # other bars
    log(TEST, 3.0, experiment="other-trials")  # another experiment
    log(TEST, 3.0, tags={"fin_meta.role": PBO_ROLE})
    with start_run("trials", params=TEST, tracking_uri=store) as tracker:
        tracker.log_metrics({"test.sharpe": -0.3})
        trials = count_trials(client, tracker.run_id)  # RUNNING: it counts itself
    assert trials.n == 3
    assert trials.run_ids[0] == tracker.run_id and set(trials.run_ids[1:]) == {first, seed}
    by_hand = np.array([-0.3, 0.5, 1.0]) / math.sqrt(252)  # mean 0.4/sqrt(252)
    assert trials.sharpe_variance == pytest.approx(np.sum((by_hand - by_hand.mean()) ** 2) / 2, rel=1e-12)
    assert trials.sharpe_variance == pytest.approx(0.43 / 252, rel=1e-12)  # (0.49 + 0.01 + 0.36) / 2 / 252
    alone = count_trials(client, log({**TEST, "data.sources": "sample:nasdaq"}, 1.0))
    assert (alone.n, alone.sharpe_variance) == (1, 0.0)


def test_trial_keys():
    assert trial_key(TEST) == trial_key({**TEST, "data.test_end": "2016-12-31", "agent.lr": "0.1"})
    assert trial_key(TEST) != trial_key({**TEST, "data.source_params.seed": "1"})
    backtest = {"data.source": "sample:sp500", "data.start": "2015-01-01", "data.end": "2016-12-31",
                "data.bars_per_year": "252.0"}
    assert trial_key(backtest) == trial_key({**backtest, "fees": "0.01"})
    assert trial_key(backtest) == trial_key(TEST)  # a rule backtest of exactly the test period is a trial too
    assert trial_key({**backtest, "data.start": "2014-01-01"}) != trial_key(TEST)
    assert trial_key({"pbo.on": "test"}) is None


def _made_returns(seed: int, start: str = "2020-01-01", bars: int = 64) -> pd.DataFrame:
    """Per-bar returns as `log_evaluation` logs them: the headline column first, then a baseline."""
    rng = np.random.default_rng(seed)
    index = pd.bdate_range(start, periods=bars, name="date")
    return pd.DataFrame({"agent": rng.normal(0.0, 0.01, bars), "buy_and_hold": rng.normal(0.0, 0.01, bars)}, index)


def test_pbo_of_runs_reads_their_validation_returns(store):
    client = MlflowClient(store)
    log = partial(_log, store, experiment="pbo-val")
    frames = {log(TEST, 0.1, returns=_made_returns(seed), folder="val"): _made_returns(seed) for seed in range(3)}
    late = _made_returns(9, start="2020-01-15")  # starts 10 bars later: only the common bars count
    frames[log(TEST, 0.1, returns=late, folder="val")] = late
    no_val = log(TEST, 0.1, returns=_made_returns(5))  # test returns only
    ids = [*frames, no_val]
    outcome = pbo_of_runs(client, ids, on="validation", n_blocks=4)
    assert list(outcome.returns.columns) == list(frames) and len(outcome.returns) == 54
    assert outcome.skipped.keys() == {no_val} and "no val/returns.csv" in outcome.skipped[no_val]
    matrix = pd.concat({k: v["agent"] for k, v in frames.items()}, axis=1, join="inner")
    expected = probability_of_backtest_overfitting(matrix, 4)
    np.testing.assert_array_equal(outcome.result.logits, expected.logits)
    with pytest.raises(DataError, match="at least 2 finished runs, found 1"):
        pbo_of_runs(client, ids, on="test", n_blocks=4)
