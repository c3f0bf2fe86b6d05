"""Pooled PPO baseline: it learns a clear signal, the PPO machinery is right on small cases,
the discrete action space works."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fin_meta.agents import make_agent
from fin_meta.agents.ppo.core import PPOLossWeights, compute_gae, ppo_loss
from fin_meta.tasks import TaskSampler
from tests.agent_data import ar_blocks, lag_correlation


def test_gae_matches_hand_computation():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])  # the episode ends after step 1
    gamma, lam = 0.9, 0.8
    adv, ret = compute_gae(rewards, values, dones, torch.tensor([2.0]), gamma, lam)
    d2 = 3.0 + gamma * 2.0 - 1.5  # bootstraps from last_value
    d1 = 2.0 - 1.0  # no bootstrap across the episode end
    d0 = 1.0 + gamma * 1.0 - 0.5
    expected = [d0 + gamma * lam * d1, d1, d2]
    np.testing.assert_allclose(adv[:, 0].numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(ret.numpy(), (adv + values).numpy())


def test_clipped_loss_stops_the_gradient_outside_the_clip():
    old = torch.zeros(2)
    new = torch.log(torch.tensor([1.5, 0.9])).requires_grad_()
    adv = torch.tensor([1.0, 1.0])
    weights = PPOLossWeights(clip_coef=0.2, value_coef=0.0, normalize_advantages=False)
    loss, stats = ppo_loss(new, old, adv, torch.zeros(2), torch.zeros(2), torch.zeros(2), weights)
    loss.backward()
    assert new.grad[0] == 0.0  # ratio 1.5 > 1.2 with a positive advantage: clipped
    assert new.grad[1] < 0.0  # ratio 0.9 inside the clip: pushed up
    assert float(stats["clip_frac"]) == 0.5
    np.testing.assert_allclose(float(loss.detach()), -(1.2 + 0.9) / 2, rtol=1e-6)


@pytest.fixture(scope="module")
def trending():
    return ar_blocks([0.5] * 4, 150, seed=0)


def test_ppo_learns_to_follow_a_trend(trending):
    prices, labels = trending
    sampler = TaskSampler(prices, labels, episode_length=16, window=2)
    agent = make_agent("ppo", {"window": 2, "fees": 0.0, "slippage": 0.0},
                       {"num_envs": 64, "hidden_sizes": [32, 32], "lr": 3e-3, "seed": 0, "device": "cpu"})
    test, _ = ar_blocks([0.5], 300, seed=7)  # unseen path of the same process
    next_ret = test["close"].pct_change().shift(-1).fillna(0.0).to_numpy()
    untrained_pnl = float(agent.positions(test).to_numpy() @ next_ret)
    history = agent.fit(sampler, iterations=8, progress=False)
    returns = [m["episode_return"] for m in history]
    assert np.mean(returns[-3:]) > np.mean(returns[:3]) + 0.01
    pos = agent.positions(test).to_numpy()
    assert lag_correlation(pos, test, slice(10, None)) > 0.5
    assert float(pos @ next_ret) > untrained_pnl + 0.2  # > 20% more return over 300 bars


def test_discrete_actions(trending):
    prices, labels = trending
    sampler = TaskSampler(prices, labels, episode_length=8, window=3)
    agent = make_agent("ppo", {"window": 3, "action": "discrete", "allow_short": False},
                       {"num_envs": 8, "hidden_sizes": [8], "seed": 1, "device": "cpu"})
    history = agent.fit(sampler, iterations=2, progress=False)
    assert np.isfinite(history[-1]["policy_loss"])
    pos = agent.positions(prices)
    assert set(np.unique(pos.to_numpy())) <= {0.0, 1.0}  # long-only: short maps to flat
