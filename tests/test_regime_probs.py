"""`features: [regime_probs]`: filtered HMM probabilities fitted on the training period only, no
look-ahead, the model travels with the agent (save/load), one-line errors, and a tiny run."""

from __future__ import annotations

import gymnasium
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from fin_meta.agents import load_agent, make_agent
from fin_meta.data import synthetic_regimes
from fin_meta.envs import ENV_ID, TradingEnv
from fin_meta.envs.config import EnvConfig, make_config, observation_size
from fin_meta.envs.features import feature_names, observation_features
from fin_meta.envs.regime_features import (
    fit_regime_features,
    fit_regime_model,
    regime_probabilities,
)
from fin_meta.errors import ConfigError, DataError
from fin_meta.pipeline.run_job import run_experiment
from fin_meta.pipeline.stages import SourceData, fit_env_features, with_context
from fin_meta.splits import split_periods
from fin_meta.tasks import TaskSampler
from tests.agent_data import perturb_after
from tests.pipeline_data import tiny_config

FAST = {"n_init": 1, "n_iter": 20, "seed": 0}
WINDOW = 8
TRAIN_END = 449  # last training bar of PRICES


@pytest.fixture(scope="module")
def path() -> tuple[pd.DataFrame, pd.Series]:
    return synthetic_regimes(700, seed=5)


@pytest.fixture(scope="module")
def env(path) -> EnvConfig:
    prices, _ = path
    base = EnvConfig(window=WINDOW, features=["realised_vol", "regime_probs"])
    return fit_regime_features(base, [prices.iloc[: TRAIN_END + 1]], **FAST)


def _sources(prices: pd.DataFrame) -> list[SourceData]:
    parts = split_periods(prices, train_end=prices.index[TRAIN_END], test_start=prices.index[TRAIN_END + 30],
                          embargo=21)
    return [SourceData("synthetic:regimes", prices, parts["train"], parts["test"], with_context(prices, parts["test"]))]


def test_the_feature_is_k_columns_of_probabilities(env, path) -> None:
    prices, _ = path
    model = env.regime_model
    assert model is not None and model.n_states == 3 and model.fit_bars == TRAIN_END + 1 - model.vol_window
    assert model.fit_periods == [f"{prices.index[0].date()}..{prices.index[TRAIN_END].date()}"]
    names = feature_names(env.features, model)
    assert names == ["log_return", "realised_vol", "regime_p0", "regime_p1", "regime_p2"]
    assert observation_size(env) == WINDOW * len(names) + 1
    feats = observation_features(prices, WINDOW, env.features, model)
    probs = feats[:, 2:]
    assert feats.shape == (len(prices), 5) and np.isfinite(feats).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert (probs >= 0).all() and probs[model.vol_window :].std(axis=0).min() > 0.01  # they move
    # the states are ordered by mean log return (label 0 = lowest), like the hmm detector's
    means = np.asarray(model.means)[:, 0]
    assert (np.diff(means) >= 0).all()
    # the filter starts from the stationary belief (a frame may start anywhere)
    np.testing.assert_allclose(np.asarray(model.start) @ np.asarray(model.transition), model.start, atol=1e-9)


def test_no_look_ahead_in_the_feature(env, path) -> None:
    prices, _ = path
    base = observation_features(prices, WINDOW, env.features, env.regime_model)
    for bar in (WINDOW + 5, 300, 600):
        moved = observation_features(perturb_after(prices, bar, seed=bar), WINDOW, env.features, env.regime_model)
        np.testing.assert_array_equal(moved[: bar + 1], base[: bar + 1])
        assert not np.allclose(moved[bar + 1 :, 2:], base[bar + 1 :, 2:])  # the perturbation reaches it


def test_the_fit_sees_only_training_bars(path) -> None:
    prices, _ = path
    base = EnvConfig(window=WINDOW, features=["regime_probs"])
    fitted = fit_env_features(base, _sources(prices), "hmm", FAST)
    moved_test = fit_env_features(base, _sources(perturb_after(prices, TRAIN_END, seed=3)), "hmm", FAST)
    assert moved_test.regime_model == fitted.regime_model
    moved_train = fit_env_features(base, _sources(perturb_after(prices, TRAIN_END - 50, seed=3)), "hmm", FAST)
    assert moved_train.regime_model != fitted.regime_model  # the test can fail: training bars matter
    # without the feature the env is returned as it is, nothing fitted
    plain = EnvConfig(window=WINDOW)
    assert fit_env_features(plain, _sources(prices), "hmm", FAST) is plain


def test_several_sources_fit_one_model_on_every_training_frame(path) -> None:
    prices, _ = path
    other, _ = synthetic_regimes(500, seed=9)
    one = fit_regime_model([prices.iloc[:300]], **FAST)
    two = fit_regime_model([prices.iloc[:300], other.iloc[:300]], **FAST)
    assert len(two.fit_periods) == 2 and two.fit_bars == 2 * one.fit_bars and two != one
    with pytest.raises(DataError, match="needs 100"):
        fit_regime_model(prices.iloc[:60], **FAST)


def test_missing_model_is_one_clear_line(path) -> None:
    prices, _ = path
    bare = EnvConfig(window=WINDOW, features=["regime_probs"])  # valid as a config: fitted later
    for call in (lambda: observation_size(bare), lambda: make_agent("ppo", bare, {"device": "cpu"}),
                 lambda: TradingEnv(prices, config=bare),
                 lambda: observation_features(prices, WINDOW, ["regime_probs"])):
        with pytest.raises(ConfigError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and message.startswith("regime_probs needs a fitted regime model")
        assert "fit_regime_features" in message
    with pytest.raises(ConfigError, match=r"regime_model: .*transition must have shape \(3, 3\)"):
        make_config(bare, regime_model={**_model_dict(prices), "transition": [[1.0]]})


def _model_dict(prices: pd.DataFrame) -> dict:
    return fit_regime_model(prices.iloc[:300], **FAST).model_dump()


def test_gymnasium_env_passes_check_env(env, path) -> None:
    prices, _ = path
    made = gymnasium.make(ENV_ID, prices=prices, config=env, episode_length=40)
    check_env(made.unwrapped, skip_render_check=True)
    obs, _ = made.reset(seed=0)
    assert obs.shape == (observation_size(env),)


def test_agent_save_load_round_trips_the_model_and_positions(env, path, tmp_path) -> None:
    prices, labels = path
    train = prices.iloc[: TRAIN_END + 1]
    sampler = TaskSampler(train, labels.iloc[: TRAIN_END + 1], episode_length=32, window=WINDOW)
    agent = make_agent("ppo", env, {"num_envs": 8, "rollout_steps": 16, "hidden_sizes": [16], "device": "cpu"})
    agent.fit(sampler, iterations=1, progress=False)
    loaded = load_agent(agent.save(tmp_path / "ppo"))
    assert loaded.env_config == env and loaded.env_config.regime_model == env.regime_model
    walk = prices.iloc[TRAIN_END - 100 :]
    positions = agent.positions(walk)
    pd.testing.assert_series_equal(loaded.positions(walk), positions)
    assert positions.iloc[WINDOW:].abs().sum() > 0
    # the probabilities are what the agent reads: other probabilities, other positions
    np.testing.assert_allclose(regime_probabilities(walk, env.regime_model).sum(axis=1), 1.0, atol=1e-9)
    flat = env.regime_model.model_copy(update={"means": [[0.0, 0.0]] * 3})
    other = make_agent("ppo", env.model_copy(update={"regime_model": flat}), agent.hparams)
    other.net.load_state_dict(agent.net.state_dict())
    assert not np.allclose(other.positions(walk).to_numpy(), positions.to_numpy())


def test_run_experiment_with_regime_probs() -> None:
    cfg = tiny_config("features=[realised_vol, regime_probs]", "regimes.method=hmm",
                      "regimes.params={n_init: 1, n_iter: 20}", "evaluation.baselines=[buy_and_hold]")
    outcome = run_experiment(cfg, progress=False)
    model = outcome.agent.env_config.regime_model
    assert model is not None and model.params["n_init"] == 1
    assert model.fit_periods == ["2006-01-03..2010-12-31"]  # the training period, nothing after
    assert outcome.agent.obs_size == cfg.env.window * 5 + 1
    assert cfg.env.regime_model is None  # the experiment config stays as written
    (evaluation,) = outcome.evaluations
    assert np.isfinite(evaluation.positions.to_numpy()).all() and np.isfinite(evaluation.stats["sharpe"].to_numpy()).all()
