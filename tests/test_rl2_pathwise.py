"""RL²'s pathwise estimator (`estimator: pathwise`): the trials' net log returns as a function of
the positions equal what a training env pays (costs, cost pressure, partial adjustment, episode
restarts); rollouts play the deterministic policy; an update ascends the return; an agent
trained so is causal and reproducible; the option needs continuous actions; rppo takes it too."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fin_meta.agents import make_agent
from fin_meta.agents.rl2.pathwise import trial_log_returns
from fin_meta.envs.config import make_config
from fin_meta.envs.vector_env import VectorTradingEnv
from fin_meta.errors import ConfigError
from fin_meta.seeding import numpy_generator, torch_generator
from fin_meta.tasks import TaskSampler
from tests.agent_data import ar_blocks, perturb_after

ENV = {"window": 4, "fees": 5e-4, "slippage": 5e-4}
SMALL = {"num_envs": 16, "hidden_size": 8, "encoder_size": 8, "episodes_per_trial": 2, "epochs": 2,
         "minibatches": 2, "device": "cpu", "cell": "lstm", "estimator": "pathwise"}


@pytest.mark.parametrize("options", [{}, {"train_cost_multiplier": 3.0, "turnover_penalty": 2e-4},
                                     {"adjust": 0.5, "train_cost_multiplier": 2.0}])
def test_trial_returns_equal_the_training_envs_rewards(options):
    prices, _ = ar_blocks([0.3, -0.3], 80, seed=5)
    config = make_config(**ENV, **options)
    env = VectorTradingEnv(prices, 6, device="cpu", seed=0, config=config, training=True, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    episodes, actions, r_next, rewards, step = [], [], [], [], 0
    for first in (10, 60):  # two episodes, each restarting flat
        env.set_tasks(np.zeros(6, dtype=np.int64), np.arange(6) + first, [15] * 6)
        episodes.append((step, step + 15))
        for _ in range(15):
            a = torch.rand(6, generator=gen, dtype=torch.float64) * 3 - 1.5  # some past the bounds
            r_next.append(env.next_returns())
            _, reward, *_ = env.step(a)
            actions.append(a.clamp(-1, 1))
            rewards.append(reward)
            step += 1
    g = trial_log_returns(torch.stack(actions), torch.stack(r_next), episodes, config)
    torch.testing.assert_close(g, torch.stack(rewards), rtol=0, atol=1e-12)
    assert float(torch.stack(rewards).abs().sum()) > 0


def _sampler(seed: int = 3) -> TaskSampler:
    prices, labels = ar_blocks([0.4, -0.4], 100, seed=seed)
    return TaskSampler(prices, labels, episode_length=12, window=4)


def _rollout(agent, sampler):
    ctx = agent.fit_context(sampler, numpy_generator(7), torch_generator(7, agent.device))
    return agent.collect(sampler, ctx), ctx


def test_rollouts_play_the_deterministic_policy():
    sampler = _sampler()
    agent = make_agent("rl2", ENV, SMALL)
    rollout, _ = _rollout(agent, sampler)
    with torch.no_grad():
        _, dist, _ = agent._rerun(rollout, torch.arange(SMALL["num_envs"]))
    torch.testing.assert_close(agent.net.head.mode(dist), rollout.actions_TN)
    assert rollout.episodes == [(0, 12), (12, 24)] and rollout.r_next_TN.shape == (24, SMALL["num_envs"])


def test_an_update_raises_the_rollouts_return():
    """Many epochs on one rollout: the re-run positions must earn more than before (a flipped
    sign, a detached position or a wrong return would not)."""
    sampler = _sampler()
    agent = make_agent("rl2", ENV, {**SMALL, "epochs": 20, "minibatches": 1, "lr": 3e-3})
    rollout, ctx = _rollout(agent, sampler)
    every = torch.arange(SMALL["num_envs"])
    with torch.no_grad():
        before = float(agent._pathwise_loss(rollout, every)[0])
    stats = agent.update(rollout, ctx)
    with torch.no_grad():
        after = float(agent._pathwise_loss(rollout, every)[0])
    assert after < before - 2e-4, (before, after)  # from ~0 (positions start near flat)
    assert np.isfinite(stats["policy_loss"]) and stats["grad_norm"] > 0


@pytest.mark.parametrize("algo", ["rl2", "rppo"])  # rppo so: the benchmark's control (e)
def test_pathwise_agent_is_causal_and_reproducible(algo):
    sampler = _sampler()
    frame = sampler.prices[0].iloc[:200]
    runs = []
    for _ in range(2):
        agent = make_agent(algo, ENV, {**SMALL, "belief_coef": 0.5, "belief_gate": True, "bound_coef": 1.0})
        history = agent.fit(sampler, iterations=3, progress=False)
        runs.append(agent.positions(frame).to_numpy())
    assert all(np.isfinite(m["policy_loss"]) and np.isfinite(m["aux_loss"]) for m in history)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert np.abs(runs[0]).sum() > 0
    moved = agent.positions(perturb_after(frame, 120)).to_numpy()
    np.testing.assert_array_equal(moved[:121], runs[0][:121])


def test_pathwise_needs_continuous_actions():
    agent = make_agent("rl2", {**ENV, "action": "discrete"}, SMALL)
    with pytest.raises(ConfigError, match="estimator: pathwise needs a continuous action"):
        agent.fit(_sampler(), iterations=1, progress=False)


def test_rppo_trains_pathwise_on_one_episode_streams():
    agent = make_agent("rppo", ENV, SMALL)
    rollout, ctx = _rollout(agent, _sampler())
    assert rollout.episodes == [(0, 24)]
    assert np.isfinite(agent.update(rollout, ctx)["policy_loss"])
