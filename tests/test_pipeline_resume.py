"""`run_experiment(resume=RUN_ID)` (issue 10, items 6, 7 and 17): an interrupted run, resumed from
its own logged config and last checkpoints, gives exactly what the same seed gives uninterrupted
(the agent, the pooled PPO baseline, the meta-test, the backtest); a refused resume leaves the run
as it was; Ctrl-C says how to resume; no temporary folder is left behind.
"""

from __future__ import annotations

import tempfile

import pandas as pd
import pytest
from mlflow import MlflowClient

from fin_meta.agents import training
from fin_meta.errors import ConfigError
from fin_meta.pipeline import run_job as pipeline
from fin_meta.pipeline.run_job import run_experiment
from fin_meta.tracking import TrackingError
from fin_meta.tracking.checkpoints import Checkpointer
from tests.pipeline_data import CHECKPOINT_TAG, SMALL_PPO, only_run, tiny_config, train_steps

BUDGET = ["agent.iterations=3", "evaluation.baselines=[buy_and_hold, momentum]", "evaluation.pooled_ppo=true",
          SMALL_PPO]
"""Three iterations (a checkpoint after each), two rule baselines and the pooled PPO baseline."""


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture(scope="module")
def uninterrupted():
    """The same experiment run in one go (untracked: tracking does not change results)."""
    return run_experiment(tiny_config(*BUDGET), progress=False)


def interrupt(monkeypatch, store: str, experiment: str, checkpoint: str = "checkpoint", after: int = 2):
    """Run the experiment tracked in `experiment` and press Ctrl-C right after checkpoint `after`
    of `checkpoint`; returns (the run's id, the printed lines, the KeyboardInterrupt)."""
    save = Checkpointer.save

    def interrupted_save(self, agent, iterations):
        save(self, agent, iterations)
        if self.name == checkpoint and iterations == after:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "save", interrupted_save)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt) as info:
        run_experiment(tiny_config(*BUDGET, f"tracking.experiment={experiment}", uri=store), echo=lines.append,
                       progress=False)
    monkeypatch.undo()
    return only_run(MlflowClient(store), experiment).info.run_id, lines, info.value


@pytest.mark.parametrize("checkpoint", ["checkpoint", "checkpoint_ppo"], ids=["agent", "pooled-ppo"])
def test_interrupted_and_resumed_equals_uninterrupted(monkeypatch, store, uninterrupted, tmp_path, checkpoint):
    experiment = f"resume-{checkpoint}"
    run_id, lines, error = interrupt(monkeypatch, store, experiment, checkpoint)
    command = f"fin-meta run --resume {run_id} --tracking-uri {store}"
    assert lines[-1].endswith(command) and command in "".join(error.__notes__)  # Ctrl-C says how to go on
    client = MlflowClient(store)
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and run.data.tags[f"fin_meta.{checkpoint}.iterations"] == "2"

    bars = []  # every training progress bar: (initial, total)
    real_tqdm = training.tqdm

    def recording_tqdm(*args, **kwargs):
        bars.append((kwargs["initial"], kwargs["total"]))
        return real_tqdm(*args, **kwargs)

    monkeypatch.setattr(training, "tqdm", recording_tqdm)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a leaked temporary folder would stay
    outcome = run_experiment(resume=run_id[:12], tracking_uri=store, progress=False)  # no config: the run's own
    assert not list(tmp_path.glob("fin-meta-resume-*"))
    assert outcome.run_id == run_id and client.get_run(run_id).info.status == "FINISHED"
    # the bar goes on from iteration 2; an agent whose training had finished is not trained again
    assert bars == ([(2, 3), (0, 3)] if checkpoint == "checkpoint" else [(2, 3)])

    first, second = uninterrupted.evaluations[0], outcome.evaluations[0]
    assert list(second.positions.columns) == ["rl2", "ppo", "buy_and_hold", "momentum"]
    pd.testing.assert_frame_equal(first.positions, second.positions, check_exact=True)
    pd.testing.assert_frame_equal(first.stats, second.stats, check_exact=True)
    pd.testing.assert_frame_equal(first.table, second.table, check_exact=True)
    pd.testing.assert_frame_equal(uninterrupted.adaptation, outcome.adaptation, check_exact=True)
    for prefix in ("train.", "ppo.train."):  # every iteration logged once, none trained twice
        steps = train_steps(client, run_id, prefix)
        assert steps and all(s == [0, 1, 2] for s in steps.values())
    assert client.get_run(run_id).data.tags[CHECKPOINT_TAG] == "3"


@pytest.fixture(scope="module")
def finished(store):
    """A finished tracked run: (its id, its config)."""
    cfg = tiny_config("evaluation.baselines=[buy_and_hold]", "tracking.experiment=finished", uri=store)
    return run_experiment(cfg, progress=False).run_id, cfg


def test_a_finished_run_is_refused_and_left_finished(store, finished):
    run_id, cfg = finished
    client = MlflowClient(store)
    before = client.get_run(run_id)
    for config in (None, cfg):
        with pytest.raises(TrackingError, match=f"run {run_id} is FINISHED, there is nothing to continue"):
            run_experiment(config, resume=run_id, tracking_uri=store, progress=False)
    after = client.get_run(run_id)
    assert (after.info.status, after.info.end_time) == ("FINISHED", before.info.end_time)
    assert after.data.tags == before.data.tags


def test_refused_resumes_leave_a_failed_run_as_it_was(monkeypatch, store):
    run_id, _, _ = interrupt(monkeypatch, store, "refusals", after=1)
    client = MlflowClient(store)
    before = client.get_run(run_id)
    other = tiny_config(*BUDGET, "tracking.experiment=refusals", "agent.iterations=4", uri=store)
    with pytest.raises(TrackingError, match=r"differs from run .* \(agent.iterations: '3' in the run, '4' given\)"):
        run_experiment(other, resume=run_id, progress=False)
    changed = pipeline._run_params  # as if this version logged a param differently from the run's version

    def params_of_another_version(cfg, sources):
        return {**changed(cfg, sources), "env.fees": "0.001"}

    monkeypatch.setattr(pipeline, "_run_params", params_of_another_version)
    with pytest.raises(TrackingError, match=r"would change its params \(env.fees: '0.0005' logged, '0.001' now\)"):
        run_experiment(resume=run_id, tracking_uri=store, progress=False)
    monkeypatch.undo()
    for ref, error, needle in [("", TrackingError, "needs a run id"), ("nope", TrackingError, "matches no run")]:
        with pytest.raises(error, match=needle):
            run_experiment(resume=ref, tracking_uri=store, progress=False)
    with pytest.raises(ConfigError, match="drop --no-track"):
        run_experiment(tiny_config(*BUDGET), resume=run_id, progress=False)
    after = client.get_run(run_id)
    assert (after.info.status, after.info.end_time, after.data.tags) == (
        "FAILED", before.info.end_time, before.data.tags)
