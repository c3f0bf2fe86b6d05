"""`trial_iterations`: RL² and rppo trials that span several iterations, each env's stream,
hidden state and feedback carried from one iteration's rollout into the next."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fin_meta.agents import make_agent
from fin_meta.errors import ConfigError
from fin_meta.tasks import TaskSampler
from tests.agent_data import ar_blocks, perturb_after

ENV = {"window": 4, "fees": 5e-4, "slippage": 5e-4}
K = 3
LONG = {"num_envs": 6, "hidden_size": 8, "encoder_size": 8, "episodes_per_trial": 3, "epochs": 2,
        "minibatches": 2, "device": "cpu", "trial_sampling": "stream", "trial_iterations": K}
STEPS = 3 * 10  # a rollout: episodes_per_trial x episode_length


PRICES, LABELS = ar_blocks([0.4, -0.4, 0.0, 0.4], 60, seed=3)


@pytest.fixture(scope="module")
def sampler() -> TaskSampler:
    return TaskSampler(PRICES, LABELS, episode_length=10, window=4)


def _two_rollouts(algo: str, sampler: TaskSampler):
    agent = make_agent(algo, ENV, LONG)
    ctx = agent.fit_context(sampler, np.random.default_rng(0), agent.streams()[1])
    first = agent.collect(sampler, ctx)
    after_first = (agent._streams.start.copy(), agent._streams.left.copy(), agent._streams.hidden.clone())
    second = agent.collect(sampler, ctx)
    return agent, first, after_first, second


def test_long_trials_need_stream_sampling():
    with pytest.raises(ConfigError, match="trial_iterations=2.*trial_sampling: stream"):
        make_agent("rl2", ENV, {**LONG, "trial_sampling": "consecutive", "trial_iterations": 2})
    assert make_agent("rppo", ENV, {**LONG, "trial_sampling": "stream"}).hparams.trial_iterations == K


@pytest.mark.parametrize("algo", ["rl2", "rppo"])
def test_streams_carry_bars_and_state_into_the_next_iteration(algo, sampler):
    agent, first, (start1, left1, hidden1), second = _two_rollouts(algo, sampler)
    n = LONG["num_envs"]
    assert first.hidden0 is not None and not first.hidden0.any()  # the first stretch starts fresh
    np.testing.assert_array_equal(left1, np.arange(n) % K)  # staggered: env i's first stream lasts 1 + i mod K
    carried, fresh = left1 > 0, left1 == 0
    assert hidden1.abs().sum() > 0
    torch.testing.assert_close(second.hidden0[:, torch.as_tensor(carried)], hidden1[:, torch.as_tensor(carried)],
                               rtol=0, atol=0)
    assert not second.hidden0[:, torch.as_tensor(fresh)].any()  # a used-up stream restarts from zero
    np.testing.assert_array_equal(agent._streams.start[carried], start1[carried] + STEPS)  # the bars run on
    assert (agent._streams.left[fresh] == K - 1).all()


def test_the_update_reruns_each_stretch_from_its_carried_state(sampler):
    agent, _, (_, left1, _), second = _two_rollouts("rl2", sampler)
    everyone = torch.arange(LONG["num_envs"])
    logp = agent._evaluate(second, everyone)[0]
    torch.testing.assert_close(logp, second.batch["logp"], rtol=1e-5, atol=1e-5)  # PPO's ratio starts at 1
    second.hidden0 = torch.zeros_like(second.hidden0)  # what re-running from a fresh state would give
    wrong = agent._evaluate(second, everyone)[0]
    carried = torch.as_tensor(left1 > 0)
    assert not torch.allclose(wrong[carried], second.batch["logp"][carried], atol=1e-4)


def test_long_trials_train_deterministically_and_trade_causally(sampler):
    prices = PRICES

    def trained(extra: dict) -> pd.Series:
        agent = make_agent("rl2", ENV, {**LONG, **extra})
        agent.fit(sampler, iterations=4, progress=False)
        assert agent.history[-1]["env_steps"] == 4 * LONG["num_envs"] * STEPS
        return agent

    agent = trained({})
    full = agent.positions(prices)
    pd.testing.assert_series_equal(trained({}).positions(prices), full, check_exact=True)
    assert not np.allclose(trained({"trial_iterations": 1}).positions(prices).to_numpy(), full.to_numpy())
    moved = agent.positions(perturb_after(prices, 120)).to_numpy()
    np.testing.assert_array_equal(moved[:121], full.to_numpy()[:121])


def test_streams_begin_anew_in_another_sampler(sampler):
    agent = make_agent("rl2", ENV, LONG)
    agent.fit(sampler, iterations=2, progress=False)
    np.testing.assert_array_equal(agent._streams.left, (1 + np.arange(LONG["num_envs"]) % K - 2) % K)
    other = TaskSampler(*ar_blocks([0.4, -0.4, 0.4], 70, seed=5), episode_length=10, window=4)
    agent.fit(other, iterations=1, progress=False)  # the old streams' bars are not in `other`
    assert agent._streams.fits(other, STEPS, LONG["num_envs"])
    np.testing.assert_array_equal(agent._streams.left, np.arange(LONG["num_envs"]) % K)


def test_a_corrupt_carried_stream_state_is_a_clear_error(sampler, tmp_path):
    from fin_meta.agents import load_agent
    from fin_meta.errors import AgentError

    agent = make_agent("rl2", ENV, LONG)
    agent.fit(sampler, iterations=1, progress=False)
    path = agent.save(tmp_path / "agent")
    state = torch.load(path / "training_state.pt", weights_only=True)
    del state["carried_streams"]["hidden"]
    torch.save(state, path / "training_state.pt")
    with pytest.raises(AgentError, match="training_state.pt does not fit this agent"):
        load_agent(path)
