"""`fin-meta sweep` on the Optuna backend (issue 14): a 3-trial sweep on a tiny budget is one
parent run with 3 child runs, chosen on the validation net Sharpe; a pruned trial ends KILLED and
tagged, never FAILED; the study lives in `optuna.db` beside `mlflow.db`, and running the same
sweep again (here from the CLI, 2 trials in 2 worker processes) adds trials to the same parent,
which logs the best trial's test DSR deflated by the trials run and the PBO over their test
returns, after the choice."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient

from fin_meta.cli import main
from fin_meta.overfitting import (
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_moments,
)
from fin_meta.sweeps.job import run_sweep
from fin_meta.sweeps.objective import PRUNED_TAG, RERUN_TAG, SWEEP_TAG
from tests.sweep_data import EXPERIMENT, SWEEP_SETS, family, record_statuses, statuses, write_space

NAME = "tiny"


class PruneTrialOne(optuna.pruners.BasePruner):
    """A real Optuna pruner that stops trial 1 at its first evaluation and no other trial."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number == 1


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A 3-trial sweep (trial 1 pruned), then the same sweep again from the CLI with 2 more
    trials in 2 processes: (folder, store URI, first outcome, the CLI's exit code and output)."""
    folder = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{folder}/mlflow.db"
    space = write_space(folder)
    record_statuses(uri)  # every status each run is given, by SQLite triggers on MLflow's table
    lines: list[str] = []
    first = run_sweep(EXPERIMENT, space, trials=3, name=NAME, overrides=SWEEP_SETS, tracking_uri=uri,
                      pruner=PruneTrialOne(), echo=lines.append, progress=False)
    first_client = MlflowClient(uri)
    before = family(first_client)
    args = ["sweep", EXPERIMENT, "--space", str(space), "--trials", "2", "--jobs", "2", "--name", NAME,
            "--tracking-uri", uri, "--no-prune", *[a for s in SWEEP_SETS for a in ("--set", s)]]
    with pytest.raises(SystemExit) as done:
        main(args)
    return folder, uri, first, lines, before, done.value.code


def test_a_sweep_is_one_parent_run_with_a_child_run_per_trial(sweep):
    _, uri, first, lines, (parents, children), _ = sweep
    (parent,) = parents
    assert parent.info.run_id == first.parent_run_id and parent.data.tags[SWEEP_TAG] == NAME
    assert sorted(children) == [0, 1, 2]
    assert {c.data.tags[SWEEP_TAG] for c in children.values()} == {NAME}
    assert [line.split(":")[0] for line in lines if line.startswith("trial ")] == [
        "trial 0 complete", "trial 1 pruned", "trial 2 complete"]
    # each child is a full run of the experiment with its trial's values, and says how to rerun it
    study = optuna.load_study(study_name=NAME, storage=first.storage)
    for trial in study.trials[:3]:
        child = children[trial.number]
        assert float(child.data.params["agent.lr"]) == pytest.approx(trial.params["agent.lr"], rel=1e-12)
        assert f"--set agent.lr={trial.params['agent.lr']!r}" in child.data.tags[RERUN_TAG]


def test_a_pruned_trial_ends_killed_and_tagged_never_failed(sweep):
    _, uri, first, _, (_, children), _ = sweep
    pruned = children[1]
    assert pruned.info.status == "KILLED"
    assert statuses(uri, pruned.info.run_id) == ["RUNNING", "KILLED"]  # not even briefly FAILED
    study = optuna.load_study(study_name=NAME, storage=first.storage)
    assert study.trials[1].user_attrs["run_id"] == pruned.info.run_id  # start_run handed it to the signal
    assert pruned.data.tags[PRUNED_TAG].startswith("pruned after 1 iteration ")
    assert "fin_meta.error" not in pruned.data.tags
    assert "test.sharpe" not in pruned.data.metrics  # stopped before the test period was scored
    assert {children[0].info.status, children[2].info.status} == {"FINISHED"}
    assert (first.session, first.total) == ({"complete": 2, "pruned": 1, "failed": 0},) * 2


def test_the_objective_is_the_validation_sharpe_and_the_best_trial_is_reported_with_its_test_figures(sweep):
    folder, uri, first, _, (_, children), _ = sweep
    client = MlflowClient(uri)
    study = optuna.load_study(study_name=NAME, storage=first.storage)
    assert first.storage == f"sqlite:///{folder}/optuna.db"  # beside mlflow.db
    complete = [t for t in study.trials[:3] if t.state == optuna.trial.TrialState.COMPLETE]
    for trial in complete:  # the value is the child's validation net Sharpe at its evaluation
        (val,) = client.get_metric_history(trial.user_attrs["run_id"], "val.sharpe")[:1]
        assert val.step == 1 and trial.value == pytest.approx(val.value, rel=1e-12)
    best = max(complete, key=lambda t: t.value)
    assert (first.best_number, first.best_run_id) == (best.number, children[best.number].info.run_id)
    best_run = client.get_run(first.best_run_id)
    assert first.best_test["sharpe"] == best_run.data.metrics["test.sharpe"]
    parent = client.get_run(first.parent_run_id)
    history = {m.step: m.value for m in client.get_metric_history(first.parent_run_id, "sweep.trials")}
    assert history[3] == 3
    # the tags name the best of every trial so far: the second sweep below has added two
    every = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best_so_far = max(every, key=lambda t: t.value)
    assert parent.data.tags["sweep.best.run_id"] == best_so_far.user_attrs["run_id"]
    assert float(parent.data.tags["sweep.best.agent.lr"]) == best_so_far.params["agent.lr"]
    first_best = [m for m in client.get_metric_history(first.parent_run_id, "sweep.best.val.sharpe") if m.step == 3]
    assert first_best[-1].value == pytest.approx(best.value)
    assert not math.isnan(first.best_test["sharpe"])


def test_running_the_same_sweep_again_adds_trials_to_the_same_parent(sweep):
    _, uri, first, _, _, code = sweep
    assert code == 0
    parents, children = family(MlflowClient(uri))
    assert [p.info.run_id for p in parents] == [first.parent_run_id]
    assert sorted(children) == [0, 1, 2, 3, 4]
    assert {children[3].info.status, children[4].info.status} == {"FINISHED"}  # --no-prune
    study = optuna.load_study(study_name=NAME, storage=first.storage)
    assert len(study.trials) == 5
    # the new trials drew new values (a resumed sampler does not repeat the first draws)
    assert study.trials[3].params != study.trials[0].params
    client = MlflowClient(uri)
    assert client.get_run(first.parent_run_id).data.metrics["sweep.trials"] == 5
    artifacts = {a.path for a in client.list_artifacts(first.parent_run_id, "sweep")}
    assert {"sweep/trials.csv", "sweep/best_params.json", "sweep/history.html"} <= artifacts


def _test_returns(client: MlflowClient, run_ids: list[str], folder) -> np.ndarray:
    columns = []
    for run_id in run_ids:
        frame = pd.read_csv(client.download_artifacts(run_id, "test/returns.csv", str(folder)), index_col=0)
        columns.append(frame.iloc[:, 0].to_numpy())
    return np.column_stack(columns)


def test_the_parent_logs_the_best_trials_test_dsr_over_the_trials_run_and_their_pbo(sweep, tmp_path):
    _, uri, first, lines, _, code = sweep
    client = MlflowClient(uri)
    study = optuna.load_study(study_name=NAME, storage=first.storage)
    assert code == 0 and len(study.trials) == 5
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value)  # chosen on validation; the test figures come after
    returns = _test_returns(client, [t.user_attrs["run_id"] for t in complete], tmp_path)
    m = sharpe_moments(returns)
    variance = float(np.var(m.sharpe, ddof=1))
    j = complete.index(best)
    dsr = deflated_sharpe_ratio(m.sharpe[j], m.n_bars, m.skew[j], m.kurtosis[j], 5, variance)

    def at(name: str) -> dict[int, float]:
        return {x.step: x.value for x in client.get_metric_history(first.parent_run_id, name)}

    assert at("sweep.dsr.trials") == {3: 3, 5: 5}  # both sessions: every trial run, the pruned one too
    assert at("sweep.dsr.sharpe_var")[5] == pytest.approx(variance, rel=1e-9)
    assert at("sweep.best.test.dsr")[5] == pytest.approx(dsr, rel=1e-9)
    assert at("sweep.pbo.trials") == {3: 2, 5: 4}  # the completed trials' test returns
    assert at("sweep.pbo")[5] == probability_of_backtest_overfitting(returns, 16).pbo
    parent = client.get_run(first.parent_run_id)
    assert parent.data.tags["sweep.pbo.note"].startswith("PBO (CSCV, S=16, 12,870 splits) over 4 trials")
    assert first.overfitting.n_trials == 3 and first.overfitting.pbo.n_strategies == 2
    artifacts = {a.path for a in client.list_artifacts(first.parent_run_id, "sweep")}
    assert {"sweep/overfitting.md", "sweep/overfitting.csv"} <= artifacts
    table = pd.read_csv(client.download_artifacts(first.parent_run_id, "sweep/overfitting.csv", str(tmp_path)))
    assert list(table["trial"]) == [0, 1, 2, 3, 4] and list(table["state"]).count("pruned") == 1
    assert table.loc[table["best"], "trial"].tolist() == [best.number]
