"""The end of a sweep, deflated (`fin_meta.sweeps.overfit`), on runs logged to a real SQLite
MLflow store and real Optuna trials: the best trial's test DSR counts every trial run (pruned
ones too) with the variance of the tested trials' per-bar Sharpes, checked against the paper's
formula computed here; the PBO is CSCV over the completed trials' test returns; too few trials
or bars give a reason instead of a number. And `start_run` ends a run stopped by `StopRun`
(a pruned trial) KILLED without it ever being FAILED, read from the store's own status changes."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from scipy import stats

from fin_meta.overfitting import probability_of_backtest_overfitting
from fin_meta.sweeps.objective import PRUNED_TAG, Pruned
from fin_meta.sweeps.overfit import assess_trials
from fin_meta.tracking import start_run
from tests.sweep_data import record_statuses, statuses

EULER = 0.5772156649015329


def _log_returns(uri: str, returns: pd.Series) -> str:
    """A FINISHED run whose `test/returns.csv` has `returns` as its headline column."""
    frame = pd.DataFrame({"agent": returns, "buy_and_hold": returns * 0.5 + 1e-4}, index=returns.index)
    with start_run("sweep", tracking_uri=uri) as tracker:
        tracker.log_table(frame.rename_axis("date").reset_index(), "test/returns.csv")
    return tracker.run_id


def _trial(number: int, state: str, run_id: str | None, value: float | None = None) -> optuna.trial.FrozenTrial:
    dist = {"agent.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    trial = optuna.trial.create_trial(state=optuna.trial.TrialState[state], value=value, params={"agent.lr": 1e-3},
                                      distributions=dist, user_attrs={"run_id": run_id} if run_id else {})
    trial.number = number  # as a study numbers them
    return trial


def _returns(seed: int, bars: int, drift: float) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2012-01-02", periods=bars)
    return pd.Series(rng.standard_t(5, bars) * 0.01 + drift, index=index)


def expected_dsr(r: np.ndarray, n: int, variance: float) -> float:
    """Bailey & López de Prado (2014), from the formula: PSR against the expected best Sharpe."""
    sr = r.mean() / r.std(ddof=1)
    sr0 = math.sqrt(variance) * ((1 - EULER) * stats.norm.ppf(1 - 1 / n) + EULER * stats.norm.ppf(1 - 1 / (n * math.e)))
    skew, kurt = stats.skew(r), stats.kurtosis(r, fisher=False)
    return float(stats.norm.cdf((sr - sr0) * math.sqrt(len(r) - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with 3 tested trials' runs (300 bars) and one of 20 bars: (uri, client, run ids)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('overfit')}/mlflow.db"
    ids = [_log_returns(uri, _returns(seed, 300, drift)) for seed, drift in ((0, 4e-4), (1, 0.0), (2, 1e-3))]
    short = _log_returns(uri, _returns(3, 20, 0.0))
    return uri, MlflowClient(uri), ids, short


def test_the_best_trials_dsr_counts_every_trial_run_and_the_pbo_ranks_the_tested_ones(store):
    _, client, ids, _ = store
    trials = [_trial(0, "COMPLETE", ids[0], 0.3), _trial(1, "PRUNED", None), _trial(2, "COMPLETE", ids[1], 0.1),
              _trial(3, "COMPLETE", ids[2], 0.5), _trial(4, "FAIL", None)]
    found = assess_trials(client, trials, ids[2])
    matrix = np.column_stack([_returns(s, 300, d).to_numpy() for s, d in ((0, 4e-4), (1, 0.0), (2, 1e-3))])
    sharpes = matrix.mean(axis=0) / matrix.std(axis=0, ddof=1)
    variance = float(np.var(sharpes, ddof=1))
    assert found.n_trials == 4  # complete + pruned; the failed trial never ran
    assert found.sharpe_variance == pytest.approx(variance, rel=1e-9)
    assert found.best_sharpe == pytest.approx(sharpes[2], rel=1e-9)
    assert found.dsr == pytest.approx(expected_dsr(matrix[:, 2], 4, variance), abs=1e-6)
    assert found.dsr < found.psr  # deflating by the trials lowers the figure
    assert found.pbo is not None and found.pbo.n_strategies == 3 and found.pbo.bars_used == 288  # 16 blocks of 18
    assert found.pbo.pbo == probability_of_backtest_overfitting(matrix, 16).pbo
    assert found.metrics()["sweep.best.test.dsr"] == found.dsr and found.metrics()["sweep.dsr.trials"] == 4
    table = found.table.set_index("trial")
    assert list(table.index) == [0, 1, 2, 3] and table.loc[3, "best"] and not table.loc[0, "best"]
    assert math.isnan(table.loc[1, "test_sharpe_per_bar"]) and table.loc[1, "state"] == "pruned"
    assert table.loc[0, "test_sharpe_per_bar"] == pytest.approx(sharpes[0], rel=1e-9)
    assert "| 3 | complete |" in found.markdown() and "DSR" in found.lines()[0]


def test_too_few_trials_or_bars_give_a_reason_instead_of_a_number(store):
    _, client, ids, short = store
    one = assess_trials(client, [_trial(0, "COMPLETE", ids[0], 0.3), _trial(1, "PRUNED", None)], ids[0])
    assert one.pbo is None and "at least 2 completed trials, found 1" in one.pbo_note
    assert one.sharpe_variance == 0.0 and one.dsr == pytest.approx(one.psr)  # V unknown: the PSR
    assert "sweep.pbo" not in one.metrics() and one.lines()[1].startswith("PBO not computed: needs")
    few = assess_trials(client, [_trial(0, "COMPLETE", ids[0], 0.3), _trial(1, "COMPLETE", short, 0.1)], ids[0])
    assert few.pbo is None and "too few" in few.pbo_note  # the common bars: 20
    none = assess_trials(client, [_trial(0, "PRUNED", None)], None)
    assert none.dsr is None and none.dsr_note == "no completed trial: nothing was tested" and none.n_trials == 1
    assert "nothing was tested" in none.pbo_note and "sweep.best.test.dsr" not in none.metrics()


def test_a_pruned_run_ends_killed_without_ever_being_failed(store):
    uri = store[0]
    record_statuses(uri)
    with pytest.raises(Pruned) as stopped, start_run("sweep", tracking_uri=uri):
        raise Pruned(2, -0.25)
    run = MlflowClient(uri).get_run(stopped.value.run_id)
    assert statuses(uri, run.info.run_id) == ["RUNNING", "KILLED"]
    assert run.data.tags[PRUNED_TAG] == "pruned after 2 iterations (validation net Sharpe -0.25)"
    assert "fin_meta.error" not in run.data.tags
    with pytest.raises(ValueError), start_run("sweep", tracking_uri=uri) as tracker:  # an error still fails it
        raise ValueError("boom")
    assert statuses(uri, tracker.run_id) == ["RUNNING", "FAILED"]
