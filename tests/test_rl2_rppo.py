"""`rppo`, the recurrent PPO control: registered, observation-only inputs, one long episode per
training stream, causal, deterministic, and it round-trips through save / load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fin_meta.agents import ALGOS, hparams_model, load_agent, make_agent
from fin_meta.agents.rl2.recurrent_ppo import RecurrentPPOAgent
from fin_meta.errors import ConfigError
from fin_meta.tasks import TaskSampler
from tests.agent_data import ar_blocks, perturb_after

ENV = {"window": 4, "fees": 5e-4, "slippage": 5e-4}
SMALL = {"num_envs": 8, "hidden_size": 8, "encoder_size": 8, "episodes_per_trial": 3, "epochs": 2,
         "minibatches": 2, "device": "cpu"}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    return ar_blocks([0.4, -0.4, 0.0, 0.4], 60, seed=3)


@pytest.fixture(scope="module")
def sampler(data) -> TaskSampler:
    return TaskSampler(*data, episode_length=10, window=4)


def _trained(sampler: TaskSampler, seed: int = 0) -> RecurrentPPOAgent:
    agent = make_agent("rppo", ENV, {**SMALL, "seed": seed})
    agent.fit(sampler, iterations=2, progress=False)
    return agent


@pytest.fixture(scope="module")
def trained(sampler) -> RecurrentPPOAgent:
    return _trained(sampler)


def test_registered_with_observation_only_inputs_and_stream_settings():
    assert "rppo" in ALGOS and hparams_model("rppo").__name__ == "RecurrentPPOConfig"
    agent = make_agent("rppo", ENV, SMALL)
    assert isinstance(agent, RecurrentPPOAgent) and agent.algo == "rppo"
    assert agent.net.input_size == agent.obs_size  # no previous action, reward or done flag
    assert make_agent("rl2", ENV, SMALL).net.input_size == agent.obs_size + 3
    assert agent.hparams.trial_sampling == "stream" and agent.hparams.deploy_context == "stream"
    for bad in ({"trial_sampling": "consecutive"}, {"deploy_context": "trial"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            make_agent("rppo", ENV, {**SMALL, **bad})


def test_trains_on_one_long_episode_per_stream(trained, sampler):
    history = trained.history
    assert len(history) == 2 and history[-1]["env_steps"] == 2 * 8 * 3 * 10
    for key in ("policy_loss", "value_loss", "entropy", "episode_return", "trial_return"):
        assert np.isfinite(history[-1][key]), key
    ctx = trained.fit_context(sampler, np.random.default_rng(1), trained.streams()[1])
    episodes = trained._episodes(sampler, ctx.rng, ctx.buffer.steps)
    assert len(episodes) == 1 and episodes[0][2] == 30  # one episode: the position runs on
    rollout = trained.collect(sampler, ctx)
    assert rollout.episode_return_JN.shape == (3, 8) and rollout.inputs_TNI.shape == (30, 8, trained.obs_size)


def test_positions_are_causal(trained, data):
    prices, _ = data
    full = trained.positions(prices).to_numpy()
    assert (full[: ENV["window"]] == 0).all() and np.abs(full[ENV["window"] :]).sum() > 0
    for t in (ENV["window"] + 3, 130):
        moved = trained.positions(perturb_after(prices, t)).to_numpy()
        np.testing.assert_array_equal(moved[: t + 1], full[: t + 1])
        assert not np.array_equal(moved[t + 1 :], full[t + 1 :])


def test_same_seed_same_agent_other_seed_differs(trained, sampler, data):
    prices, _ = data
    again, other = _trained(sampler, seed=0), _trained(sampler, seed=1)
    assert again.history[-1]["policy_loss"] == trained.history[-1]["policy_loss"]
    pd.testing.assert_series_equal(again.positions(prices), trained.positions(prices), check_exact=True)
    assert not np.allclose(other.positions(prices).to_numpy(), trained.positions(prices).to_numpy())


def test_save_load_round_trip(trained, data, tmp_path):
    prices, _ = data
    loaded = load_agent(trained.save(tmp_path / "agent"))
    assert type(loaded) is RecurrentPPOAgent and loaded.hparams == trained.hparams
    assert loaded.iterations_trained == 2
    pd.testing.assert_series_equal(loaded.positions(prices), trained.positions(prices), check_exact=True)
    assert loaded.adaptation_curve(prices, 60, 150, [0, 1]) == trained.adaptation_curve(prices, 60, 150, [0, 1])
