"""`fin-meta sweep --backend ray` on a real local Ray (2 CPUs, no network; issue 14): 2 trials
land as 2 child runs of the sweep's parent run, proposed by Optuna from the same study storage
as the Optuna backend, each child's run id kept on its Optuna trial. `make test` installs the
`ray` extra; without it this test fails (it is not skipped)."""

from __future__ import annotations

import optuna
import pytest
from mlflow import MlflowClient

from fin_meta.sweeps.job import run_sweep
from tests.sweep_data import EXPERIMENT, SWEEP_SETS, family, write_space


def test_a_ray_sweep_lands_its_trials_as_child_runs(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    lines: list[str] = []
    outcome = run_sweep(EXPERIMENT, write_space(tmp_path), trials=2, jobs=2, backend="ray", name="ray",
                        overrides=SWEEP_SETS, tracking_uri=uri, echo=lines.append, progress=False)
    parents, children = family(MlflowClient(uri))
    assert [p.info.run_id for p in parents] == [outcome.parent_run_id]
    assert sorted(children) == [0, 1] and {c.info.status for c in children.values()} == {"FINISHED"}
    study = optuna.load_study(study_name="ray", storage=outcome.storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for trial in study.trials:
        child = children[trial.number]
        assert trial.user_attrs["run_id"] == child.info.run_id
        assert float(child.data.params["env.adjust"]) == pytest.approx(trial.params["env.adjust"], rel=1e-12)
    assert outcome.session == {"complete": 2, "pruned": 0, "failed": 0}
    assert sorted(line.split(":")[0] for line in lines if line.startswith("trial ")) == [
        "trial 0 complete", "trial 1 complete"]
    assert outcome.best_test and outcome.best_run_id in {c.info.run_id for c in children.values()}
