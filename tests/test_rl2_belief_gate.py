"""RL²'s belief-gated policy (`belief_gate`): the action head mixes one linear policy per regime
class (over the memory's features and the bar's input) by the belief head's probabilities; the belief learns from its labels only (the policy
loss sends it no gradient); the option needs the belief head; a gated agent trades causally
without labels and saves and loads exactly; the teacher curriculum (`gate_teacher_iterations`)
follows its schedule and the update replays the gate the rollout sampled from. Also RL²'s
`bound_coef`, the penalty on a policy mean beyond the action bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fin_meta.agents import load_agent, make_agent
from fin_meta.agents.networks import ActionHead, GRUActorCritic, bound_loss
from fin_meta.agents.rl2.belief import teacher_gate, teacher_weight
from fin_meta.errors import ConfigError
from fin_meta.seeding import numpy_generator, torch_generator
from fin_meta.tasks import TaskSampler
from tests.agent_data import ar_blocks, perturb_after

ENV = {"window": 4, "fees": 5e-4, "slippage": 5e-4}
SMALL = {"num_envs": 16, "hidden_size": 8, "encoder_size": 8, "episodes_per_trial": 2, "epochs": 2,
         "minibatches": 2, "device": "cpu", "cell": "lstm", "separate_critic": True}


def _gated_net(classes: int = 3) -> GRUActorCritic:
    torch.manual_seed(0)
    net = GRUActorCritic(5, "continuous", -1.0, 1.0, encoder_size=6, hidden_size=4, cell="lstm")
    net.add_belief_head(classes, gate=True)
    return net


def test_the_gate_mixes_one_policy_per_class_by_the_belief():
    net = _gated_net(3)
    hidden = net.hidden_size
    width = hidden + net.input_size + 1
    assert net.head.linear.in_features == 3 * width
    per_class = torch.tensor([0.7, -0.4, 0.1])  # class k's policy: a constant mean (its weight on the 1)
    with torch.no_grad():
        net.head.linear.weight.zero_()
        net.head.linear.bias.zero_()
        for k in range(3):
            net.head.linear.weight[0, k * width + width - 1] = per_class[k]
            net.head.linear.weight[0, k * width + hidden] = 1.0 - 2.0 * k  # + (1 - 2k) x the input's first value
        x = torch.randn(6, 2, net.input_size)
        feat, _ = net(x, net.initial_state(2))
        belief = torch.softmax(net.belief_logits(feat), -1)
        expected = (belief * (per_class + (1.0 - 2.0 * torch.arange(3)) * x[..., :1])).sum(-1)
        assert float(expected.std()) > 1e-3  # the belief moves, so the test could fail
        torch.testing.assert_close(net.distribution(feat, x).mean, expected)
        with pytest.raises(ValueError, match="pass x"):
            net.distribution(feat)


def test_the_policy_loss_sends_the_belief_no_gradient():
    net = _gated_net(2)
    x = torch.randn(6, 2, net.input_size)
    feat, _ = net(x, net.initial_state(2))
    net.distribution(feat, x).log_prob(torch.full((6, 2), 0.3)).sum().backward()
    assert net.belief.weight.grad is None or float(net.belief.weight.grad.abs().sum()) == 0.0
    assert float(net.head.linear.weight.grad.abs().sum()) > 0 and float(net.lstm.lstm.weight_hh_l0.grad.abs().sum()) > 0


def test_ungated_policy_reads_the_actor_features():
    torch.manual_seed(0)
    net = GRUActorCritic(5, "continuous", -1.0, 1.0, encoder_size=6, hidden_size=4)
    net.add_belief_head(2)
    feat = torch.randn(3, 4)
    assert torch.equal(net.policy_features(feat), feat) and net.head.linear.in_features == 4


def test_belief_gate_needs_the_belief_head():
    with pytest.raises(ConfigError, match="belief_gate .* needs belief_coef > 0"):
        make_agent("rl2", ENV, {**SMALL, "belief_gate": True})
    with pytest.raises(ConfigError, match="gate_teacher_iterations .* set belief_gate: true"):
        make_agent("rl2", ENV, {**SMALL, "belief_coef": 0.1, "gate_teacher_iterations": 5})


def test_teacher_schedule_and_mix():
    assert [teacher_weight(i, 4) for i in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert teacher_weight(0, 0) == 0.0
    belief = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    mixed = teacher_gate(belief, torch.tensor([1, -1]), 0.75)
    torch.testing.assert_close(mixed, torch.tensor([[0.125, 0.825, 0.05], [0.1, 0.1, 0.8]]))
    assert teacher_gate(belief, torch.tensor([1, 2]), 0.0) is belief


def test_teacher_gate_is_replayed_in_the_update():
    """PPO's ratio starts at 1 only if the update re-runs the policy the rollout sampled from:
    with the teacher on, the gate must mix the same labels at the same weight."""
    prices, labels = ar_blocks([0.4, -0.4], 100, seed=3)
    sampler = TaskSampler(prices, labels, episode_length=12, window=4)
    agent = make_agent("rl2", ENV, {**SMALL, "belief_coef": 0.5, "belief_gate": True,
                                    "gate_teacher_iterations": 4})
    agent.fit(sampler, iterations=1, progress=False)
    rollout = agent.collect(sampler, agent.fit_context(sampler, numpy_generator(7), torch_generator(7, agent.device)))
    assert rollout.teacher == 0.75
    idx = torch.arange(rollout.inputs_TNI.shape[1])
    with torch.no_grad():
        logp = agent._evaluate(rollout, idx)[0]
        torch.testing.assert_close(logp, rollout.batch["logp"])
        rollout.teacher = 0.0  # gated by the belief alone, the same actions are another policy's
        assert not torch.allclose(agent._evaluate(rollout, idx)[0], rollout.batch["logp"])


def test_gated_agent_trains_trades_causally_and_round_trips(tmp_path):
    prices, labels = ar_blocks([0.4, -0.4], 100, seed=3)
    sampler = TaskSampler(prices, labels, episode_length=12, window=4)
    agent = make_agent("rl2", ENV, {**SMALL, "belief_coef": 0.5, "belief_gate": True})
    history = agent.fit(sampler, iterations=3, progress=False)
    assert agent.net.belief_gate and agent.net.head.linear.in_features == 2 * (8 + agent.net.input_size + 1)
    assert all(np.isfinite(m["belief_loss"]) for m in history)
    frame = prices.iloc[:200]
    pos = agent.positions(frame)  # prices only: no labels at deployment
    assert np.isfinite(pos.to_numpy()).all() and pos.abs().sum() > 0
    moved = agent.positions(perturb_after(frame, 120)).to_numpy()
    np.testing.assert_array_equal(moved[:121], pos.to_numpy()[:121])
    loaded = load_agent(agent.save(tmp_path / "agent"))
    assert loaded.net.belief_gate and loaded.hparams.belief_gate
    pd.testing.assert_series_equal(loaded.positions(frame), pos, check_exact=True)


def test_bound_loss_is_the_squared_excess_beyond_the_bounds():
    head = ActionHead(3, "continuous", -1.0, 1.0)
    mean = torch.tensor([0.5, -1.0, 1.5, -3.0])
    assert float(bound_loss(mean, head)) == pytest.approx((0.25 + 4.0) / 4)
    assert float(bound_loss(torch.tensor([0.9, -0.9]), head)) == 0.0
    vector = ActionHead(3, "continuous", (-1.0, 0.0), (1.0, 0.5))
    assert float(bound_loss(torch.tensor([[0.0, 0.7], [1.2, -0.1]]), vector)) == pytest.approx((0.04 + 0.04 + 0.01) / 4)


def test_bound_coef_adds_its_penalty_to_the_update():
    prices, labels = ar_blocks([0.4, -0.4], 100, seed=3)
    sampler = TaskSampler(prices, labels, episode_length=12, window=4)
    agent = make_agent("rl2", ENV, {**SMALL, "bound_coef": 2.0})
    history = agent.fit(sampler, iterations=1, progress=False)
    assert "aux_loss" in history[0]
    rollout = agent.collect(sampler, agent.fit_context(sampler, numpy_generator(7), torch_generator(7, agent.device)))
    idx = torch.arange(rollout.inputs_TNI.shape[1])
    with torch.no_grad():
        agent.net.head.linear.bias.fill_(3.0)  # push the mean past the bound
        *_, aux = agent._evaluate(rollout, idx)
        x = rollout.inputs_TNI
        feat, _ = agent.net(x, agent.net.initial_state(x.shape[1]))
        mean = agent.net.distribution(feat, x).mean
    assert float(aux) > 0
    torch.testing.assert_close(aux, 2.0 * bound_loss(mean, agent.net.head))


def test_bound_coef_needs_continuous_actions():
    prices, labels = ar_blocks([0.4, -0.4], 100, seed=3)
    sampler = TaskSampler(prices, labels, episode_length=12, window=4)
    agent = make_agent("rl2", {**ENV, "action": "discrete"}, {**SMALL, "bound_coef": 1.0})
    with pytest.raises(ConfigError, match="bound_coef needs a continuous action"):
        agent.fit(sampler, iterations=1, progress=False)
