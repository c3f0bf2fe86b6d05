"""Validation and early stopping (issue 12, item 3) and in-sample / validation / test side by side:
the agents are scored on the validation period during training, the best checkpoint is the one
walked over the test period, training stops after `agent.patience` evaluations without a better
one, the training tasks and the choice never see the test period, and an interrupted validated
run resumes to exactly what it gives uninterrupted (or is refused in one line).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from fin_meta.agents import load_agent, make_agent
from fin_meta.errors import FinMetaError
from fin_meta.pipeline import run_job as pipeline
from fin_meta.pipeline.run_job import baseline_hparams, run_experiment
from fin_meta.pipeline.stages import detect_labels, task_sampler, validation_scores
from fin_meta.pipeline.training import EarlyStopping, Validation, evaluation_points, train
from fin_meta.tracking.checkpoints import Checkpointer
from fin_meta.tracking.run import Tracker
from tests.pipeline_data import CHECKPOINT_TAG, SMALL_PPO, only_run, tiny_config

VAL = ["data.train_end=2009-12-31", "data.val_start=2010-02-03", "evaluation.min_test_bars=200"]
"""A validation period (2010-02-03 .. 2011-01-03, 232 bars) between the tiny budget's periods."""
EARLY = [*VAL, "agent.iterations=6", "agent.eval_every=1", "agent.patience=1", "evaluation.baselines=[buy_and_hold]",
         "evaluation.pooled_ppo=true", SMALL_PPO]
"""Six iterations at most, validated after each, stopping at the first that is no better."""
VAL_TAG = "fin_meta.checkpoint.validation"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture(scope="module")
def validated(store):
    """One tracked validated run that stops early: (outcome, printed lines)."""
    lines: list[str] = []
    cfg = tiny_config(*EARLY, "tracking.experiment=validated", uri=store)
    return run_experiment(cfg, echo=lines.append, progress=False), lines


def history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


# -- the selection rule ---------------------------------------------------------------------------
def test_early_stopping_counts_evaluations_without_a_better_one():
    state = EarlyStopping(patience=2)
    improved = [state.update(i, s) for i, s in enumerate([math.nan, 0.1, 0.3, 0.2, 0.3], start=1)]
    assert improved == [True, True, True, False, False]  # NaN is -inf but the first is the best so far
    assert (state.best_iteration, state.best_score, state.since_best, state.stopped) == (3, 0.3, 2, True)
    never = EarlyStopping(patience=None)
    assert [never.update(i, -i) for i in range(1, 50)] == [True] + [False] * 48
    assert (never.best_iteration, never.since_best, never.stopped) == (1, 48, False)
    assert evaluation_points(10, 3) == [3, 6, 9, 10] and evaluation_points(5, 10) == [5]


@pytest.fixture(scope="module")
def small_ppo_setup():
    """A tiny PPO agent factory, the training sampler and the sources of the validated config."""
    cfg = tiny_config(*VAL, SMALL_PPO)
    sources = pipeline._load_sources(cfg)
    regimes = cfg.regimes
    labels = [detect_labels(src, regimes.method, regimes.params, regimes.min_length, hindsight_tasks=True)
              for src in sources]
    sampler = task_sampler(sources, labels, episode_length=21, window=cfg.env.window, min_segment=regimes.min_length)
    return (lambda: make_agent("ppo", cfg.env, baseline_hparams(cfg, "ppo"))), sampler, sources


def test_the_training_tasks_come_from_the_training_period_only(small_ppo_setup):
    _, sampler, sources = small_ppo_setup
    (src,) = sources
    assert src.val is not None and src.val.index[0] > src.train.index[-1]
    assert all(p.index[-1] <= src.train.index[-1] for p in sampler.prices)
    assert sum(len(p) for p in sampler.prices) == len(src.train)


def test_validating_changes_no_training_and_patience_stops_at_the_best(small_ppo_setup):
    new_agent, sampler, sources = small_ppo_setup
    walk = sources[0].val_walk
    plain = train(new_agent(), sampler, 4, Tracker(), progress=False).agent

    def rising(agent):  # walks the agent (as validation does) and scores later checkpoints higher
        agent.positions(walk)
        return {"sharpe": float(agent.iterations_trained)}

    best = train(new_agent(), sampler, 4, Tracker(), progress=False, validation=Validation(rising, every=1))
    assert (best.iterations, best.selection.best_iteration, best.selection.stopped) == (4, 4, False)
    pd.testing.assert_series_equal(best.agent.positions(walk), plain.positions(walk), check_exact=True)

    def falling(agent):
        return {"sharpe": -float(agent.iterations_trained)}

    stopped = train(new_agent(), sampler, 4, Tracker(), progress=False,
                    validation=Validation(falling, every=1, patience=2))
    assert (stopped.iterations, stopped.selection.best_iteration, stopped.selection.stopped) == (3, 1, True)
    assert [e["iteration"] for e in stopped.evaluations] == [1.0, 2.0, 3.0]
    one = train(new_agent(), sampler, 1, Tracker(), progress=False).agent
    assert stopped.agent.iterations_trained == 1
    pd.testing.assert_series_equal(stopped.agent.positions(walk), one.positions(walk), check_exact=True)


def test_validation_never_reads_the_test_period(small_ppo_setup):
    new_agent, _, sources = small_ppo_setup
    (src,) = sources
    agent = new_agent()
    scores = validation_scores(agent, sources, fees=5e-4, slippage=5e-4, max_position=1.0)
    src_garbage = pipeline.SourceData(src.source, src.full, src.train, src.test * np.nan, src.walk * np.nan, src.val,
                                      val_walk=src.val_walk, train_walk=src.train_walk)
    assert validation_scores(agent, [src_garbage], fees=5e-4, slippage=5e-4, max_position=1.0) == scores
    assert set(scores) == {"sharpe", "gross_sharpe", "turnover", "cost_drag"}


# -- a validated run ----------------------------------------------------------------------------------
def test_early_stopping_stops_and_the_best_checkpoint_is_tested(validated, store, tmp_path):
    outcome, lines = validated
    client = MlflowClient(store)
    run = client.get_run(outcome.run_id)
    curve = history(client, outcome.run_id, "val.sharpe")[:-1]  # the last point: the selected agent's, re-logged
    steps, values = [s for s, _ in curve], [v for _, v in curve]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) < 6  # stopped before the budget
    assert values[-1] <= max(values[:-1]) and all(b > a for a, b in zip(values[:-2], values[1:-1], strict=True))
    best = 1 + int(np.argmax(values))
    assert run.data.tags[CHECKPOINT_TAG] == str(len(steps))
    assert f"rl2: {len(steps)} of 6 iterations, stopped early" in "\n".join(lines)
    assert f"tested: the checkpoint after {best} iterations" in "\n".join(lines)
    assert outcome.agent.iterations_trained == best

    ev = outcome.evaluations[0]
    walk = pipeline._load_sources(outcome.config)[0].walk
    best_saved = load_agent(client.download_artifacts(outcome.run_id, "best_checkpoint", str(tmp_path)))
    assert best_saved.iterations_trained == best
    np.testing.assert_array_equal(best_saved.positions(walk).loc[ev.positions.index].to_numpy(),
                                  ev.positions["rl2"].to_numpy())
    selected = outcome.validation[0].stats.loc["rl2", "sharpe"]
    assert selected == pytest.approx(values[best - 1], rel=1e-12)
    assert run.data.metrics["val.sharpe"] == pytest.approx(selected, rel=1e-12)  # the latest: the tested agent's
    assert history(client, outcome.run_id, "ppo.val.sharpe")  # the pooled baseline is validated too


def test_in_sample_validation_and_test_side_by_side(validated, store, tmp_path):
    outcome, _ = validated
    client = MlflowClient(store)
    metrics = client.get_run(outcome.run_id).data.metrics
    for period, evs in (("train", outcome.in_sample), ("val", outcome.validation), ("test", outcome.evaluations)):
        stats = evs[0].stats
        assert list(stats.index) == ["rl2", "ppo", "buy_and_hold"]
        for stat in ("sharpe", "gross_sharpe", "turnover", "cost_drag"):
            assert metrics[f"{period}.{stat}"] == pytest.approx(stats.loc["rl2", stat], rel=1e-12)
            assert metrics[f"{period}.{stat}.ppo"] == pytest.approx(stats.loc["ppo", stat], rel=1e-12)
    src = pipeline._load_sources(outcome.config)[0]
    assert outcome.in_sample[0].positions.index.equals(src.train.index)
    assert outcome.validation[0].positions.index.equals(src.val.index)

    local = Path(client.download_artifacts(outcome.run_id, "test", str(tmp_path)))
    summary = pd.read_csv(local / "summary.csv").set_index("strategy")
    for period, evs in (("train", outcome.in_sample), ("val", outcome.validation)):
        np.testing.assert_allclose(summary.loc[["rl2", "ppo"], f"{period}_sharpe"],
                                   evs[0].stats.loc[["rl2", "ppo"], "sharpe"], rtol=1e-12)
    markdown = (local / "summary.md").read_text()
    row = summary.loc["rl2"]
    assert (f"| sp500 | rl2 | {row.train_sharpe:.2f} / {row.val_sharpe:.2f} / {row.sharpe:.2f} | "
            f"{row.train_gross_sharpe:.2f} / {row.val_gross_sharpe:.2f} / {row.gross_sharpe:.2f} |") in markdown
    report: list[str] = []
    outcome.print_report(report.append)
    text = "\n".join(report)
    assert "sp500 by period (train / val / test" in text and "cost drag/yr" in text and "gross sharpe" in text
    assert f"{row.train_sharpe:.2f} / {row.val_sharpe:.2f} / {row.sharpe:.2f}" in text


# -- resume -------------------------------------------------------------------------------------------
def test_a_validated_run_resumes_faithfully_or_is_refused(monkeypatch, store, validated):
    save = Checkpointer.save

    def interrupted_save(self, agent, iterations):
        save(self, agent, iterations)
        if self.name == "checkpoint" and iterations == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Checkpointer, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny_config(*EARLY, "tracking.experiment=resumed", uri=store), progress=False)
    monkeypatch.undo()
    client = MlflowClient(store)
    run_id = only_run(client, "resumed").info.run_id
    states = json.loads(client.get_run(run_id).data.tags[VAL_TAG])
    assert states[-1]["iteration"] == 1 and states[-1]["best_iteration"] == 1

    client.set_tag(run_id, VAL_TAG, json.dumps([{**states[-1], "iteration": 0}]))  # a state from elsewhere
    with pytest.raises(FinMetaError, match=f"resume: run {run_id} has no validation state for its checkpoint after 1"):
        run_experiment(resume=run_id, tracking_uri=store, progress=False)
    client.set_tag(run_id, VAL_TAG, json.dumps(states))

    outcome = run_experiment(resume=run_id, tracking_uri=store, progress=False)
    first, _ = validated
    assert client.get_run(run_id).info.status == "FINISHED" and outcome.training == first.training
    for a, b in ((first.evaluations, outcome.evaluations), (first.validation, outcome.validation),
                 (first.in_sample, outcome.in_sample)):
        pd.testing.assert_frame_equal(a[0].positions, b[0].positions, check_exact=True)
        pd.testing.assert_frame_equal(a[0].stats, b[0].stats, check_exact=True)
    assert history(client, run_id, "val.sharpe") == history(client, first.run_id, "val.sharpe")
