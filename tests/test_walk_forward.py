"""Walk-forward with refits (issue 13, item 2): no fold trains on a bar after its trade start minus
the embargo (perturb the future: the fold's trained parameters do not move), a warm start carries
the previous fold's agent on, fresh folds are seeded per fold, a fold's tasks come from its own
training window (expanding or rolling), and a tracked run stitches the folds' out-of-sample
positions into one backtest beside the baselines and a rolling-retrain pooled PPO, with per-fold
metrics as MLflow steps and a per-fold table."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from fin_meta.agents import make_agent
from fin_meta.envs import EnvConfig
from fin_meta.pipeline import run_experiment
from fin_meta.pipeline.fold_runs import TaskSettings, fold_sampler, fold_seed, run_folds
from fin_meta.pipeline.stages import load_sources
from fin_meta.pipeline.walk_forward import FOLDS_ARTIFACT
from fin_meta.splits import walk_forward_folds
from fin_meta.tracking import load_agent
from tests.pipeline_data import SMALL_PPO, artifact_paths, only_run, tiny_config

EMBARGO = 21
ENV = EnvConfig(window=16, episode_length=10)
TASKS = TaskSettings("trend_vol", {"trend_window": 42, "vol_window": 21}, min_length=20, hindsight=True,
                     episode_length=10, window=16)


def _make(seed, _parts):
    """A tiny RL² agent (the meta agent under test) seeded `seed`."""
    return {"rl2": make_agent("rl2", ENV, {"num_envs": 4, "hidden_size": 8, "encoder_size": 8,
                                           "episodes_per_trial": 2, "seed": seed})}


@pytest.fixture(scope="module")
def source():
    """S&P 500 2006-2009 with a 2009 test period: three folds of 63 bars are enough."""
    (src,) = load_sources(["sample:sp500"], {"train_end": "2008-06-30", "test_start": "2008-08-01",
                                              "test_end": "2009-06-30", "embargo": EMBARGO},
                          start="2006-06-01")
    return src


@pytest.fixture(scope="module")
def folds(source):
    """Three folds with rolling 150-bar training windows (so that fold 2 trains mostly on bars the
    perturbation test moves)."""
    return walk_forward_folds(source.full.index, test_start=source.test.index[0], test_end=source.test.index[-1],
                              refit_every=63, embargo=EMBARGO, train_bars=150)[:3]


def _run(src, folds, warm_start=True):
    return run_folds([src], [folds], _make, seed=3, iterations=1, warm_start=warm_start, tasks=TASKS)


@pytest.fixture(scope="module")
def base(source, folds):
    """The unperturbed runs, warm-started and fresh, made once: `base[warm_start]`."""
    return {warm: _run(source, folds, warm) for warm in (True, False)}


def _params(run):
    return {k: v.clone() for k, v in run.agents["rl2"].net.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("warm_start", [True, False], ids=["warm", "fresh"])
def test_a_fold_never_trains_on_a_bar_after_its_trade_start_minus_the_embargo(source, folds, base, warm_start):
    cut = folds[1].trade[0] - EMBARGO  # fold 1 may train on bars before this one only
    prices = source.full.copy()
    rng = np.random.default_rng(7)
    drift = np.exp(np.cumsum(rng.normal(0.0, 0.03, len(prices) - cut)))
    prices.iloc[cut:, :4] = prices.iloc[cut:, :4].to_numpy() * drift[:, None]  # every future bar moves
    kept, moved = base[warm_start], _run(replace(source, full=prices), folds, warm_start)
    for k in (0, 1):  # trained on bars before the cut only: identical parameters
        assert _same(_params(kept[k]), _params(moved[k]))
    before = kept[0].positions[0].index < prices.index[cut]
    pd.testing.assert_frame_equal(kept[0].positions[0][before], moved[0].positions[0][before])
    assert not _same(_params(kept[2]), _params(moved[2]))  # fold 2 trains past the cut: the test can fail
    assert not kept[1].positions[0].equals(moved[1].positions[0])  # and the perturbation reached the block


def test_warm_start_carries_the_previous_folds_agent_on(source, folds, base):
    warm = base[True]
    assert [r.agents["rl2"].iterations_trained for r in warm] == [1, 2, 3]
    assert [r.seed for r in warm] == [3, 3, 3]  # the agent of fold 0, trained on
    again = copy.deepcopy(warm[0].agents["rl2"])  # fold 0's agent, as it was after fold 0
    sampler, _, _ = fold_sampler([source], [folds[1]], TASKS)
    again.fit(sampler, iterations=1, progress=False)  # = fold 1 continued on fold 1's tasks
    assert _same(dict(again.net.state_dict()), _params(warm[1]))
    assert not _same(_params(warm[0]), _params(warm[1]))  # fold 1 trained on: the copy of fold 0 kept its state


def test_refit_iterations_shorten_the_warm_started_refits_and_steps_stay_contiguous(source, folds):
    steps = []
    runs = run_folds([source], [folds], _make, seed=3, iterations=1, warm_start=True, tasks=TASKS,
                     refit_iterations=2, on_iteration=lambda fold, _key, step, _m: steps.append((fold, step)))
    assert [r.agents["rl2"].iterations_trained for r in runs] == [1, 3, 5]  # fold 0: 1, each refit: 2
    assert steps == [(0, 0), (1, 1), (1, 2), (2, 3), (2, 4)]  # one step per iteration, counted across folds


def test_without_warm_start_each_fold_trains_a_fresh_agent_seeded_per_fold(base):
    fresh, warm = base[False], base[True]
    assert [r.seed for r in fresh] == [3, fold_seed(3, 1), fold_seed(3, 2)]
    assert len({3, fold_seed(3, 1), fold_seed(3, 2), 4, 5}) == 5  # not the seeds of the next runs
    assert [r.agents["rl2"].iterations_trained for r in fresh] == [1, 1, 1]
    assert _same(_params(fresh[0]), _params(warm[0]))  # fold 0 is the same agent either way: deterministic
    assert not _same(_params(fresh[1]), _params(warm[1]))


def test_a_folds_tasks_come_from_its_training_window_only(source, folds):
    index = source.full.index
    expanding = walk_forward_folds(index, test_start=source.test.index[0], test_end=source.test.index[-1],
                                   refit_every=63, embargo=EMBARGO)
    for fold_list, first in ((expanding, [0] * len(expanding)), (folds, [f.train[1] - 150 for f in folds])):
        for fold, a in zip(fold_list, first, strict=False):
            sampler, parts, labels = fold_sampler([source], [fold], TASKS)
            (train,) = sampler.prices
            assert train.index.equals(index[a: fold.train[1]])  # expanding from bar 0, or the latest 150 bars
            assert labels[0].index.equals(parts[0].test.index) and parts[0].test.index.equals(
                index[fold.trade[0]: fold.trade[1]])


def test_tracked_walk_forward_run_stitches_folds_and_logs_them(tracking_uri):
    cfg = tiny_config("evaluation.walk_forward={refit_every: 189, embargo: 10}", "evaluation.pooled_ppo=true",
                      SMALL_PPO, "evaluation.baselines=[momentum]", uri=tracking_uri)
    lines: list[str] = []
    outcome = run_experiment(cfg, echo=lines.append, progress=False)
    (ev,) = outcome.evaluations
    assert list(ev.positions.columns) == ["rl2", "ppo", "momentum", "buy_and_hold"]  # agents first, then baselines
    assert ev.positions.index.equals(ev.prices.index) and len(ev.prices) == 355  # the whole test period, once
    assert sum(line.lstrip().startswith("fold ") for line in lines) == 2  # one progress line per fold
    printed: list[str] = []
    outcome.print_report(printed.append)
    assert any("walk-forward with 2 folds" in line for line in printed)

    client = MlflowClient(tracking_uri)
    run = only_run(client, cfg.name)
    assert run.info.status == "FINISHED" and run.data.tags["walk_forward.folds"] == "2"
    assert run.data.params["evaluation.walk_forward.refit_every"] == "189"
    for key in ("fold.sharpe", "fold.sharpe.ppo", "fold.turnover.buy_and_hold"):
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) == [0, 1]
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "train.episode_return")) == [0, 1]
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "ppo.train.episode_return")) == [0, 1]
    assert run.data.metrics["test.sharpe"] == pytest.approx(ev.stats.loc["rl2", "sharpe"])
    assert 0.0 <= run.data.metrics["test.dsr"] <= 1.0 and run.data.tags["dsr.trials"] == "1"  # deflated too
    assert {FOLDS_ARTIFACT, "test/summary.csv", "test/positions.csv", "plots/equity_sp500.png"} <= artifact_paths(
        client, run.info.run_id)
    logged = load_agent(f"runs:/{run.info.run_id}/agent", tracking_uri=tracking_uri)  # the last fold's agent
    assert logged.iterations_trained == outcome.agent.iterations_trained == 2  # warm-started: 2 folds x 1 iteration
    assert _same(dict(logged.net.state_dict()), dict(outcome.agent.net.state_dict()))
    table = pd.read_csv(client.download_artifacts(run.info.run_id, FOLDS_ARTIFACT))
    assert table.groupby("fold")["trade_bars"].first().tolist() == [189, 166]
    assert set(table["strategy"]) == {"rl2", "ppo", "momentum", "buy_and_hold"}
    assert (pd.to_datetime(table["train_end"]) < pd.to_datetime(table["trade_start"])).all()
    first = table[(table.fold == 1) & (table.strategy == "rl2")].iloc[0]
    by_step = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "fold.sharpe")}
    assert first.sharpe == pytest.approx(by_step[1])
