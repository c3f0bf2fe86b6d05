"""RL²'s options: a separate critic (the value loss sends no gradient into the policy) and the
belief-supervision head (learns the regime label where it is readable; deployment needs no
labels; saved and loaded with the agent); the LSTM core (h and c in one state tensor). Also the
sampler's per-step label accessor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fin_meta.agents import load_agent, make_agent
from fin_meta.agents.networks import GRUActorCritic
from fin_meta.agents.rl2.diagnostics import trunk_gradient_norms
from fin_meta.errors import ConfigError
from fin_meta.seeding import numpy_generator, torch_generator
from fin_meta.tasks import TaskSampler
from tests.agent_data import ar_blocks, perturb_after

ENV = {"window": 4, "fees": 5e-4, "slippage": 5e-4}
SMALL = {"num_envs": 16, "hidden_size": 8, "encoder_size": 8, "episodes_per_trial": 2, "epochs": 2,
         "minibatches": 2, "device": "cpu"}


def vol_blocks(sigmas: list[float], block: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """Blocks of i.i.d. normal log returns with std `sigmas[i]`, labelled i % 2: with calm and
    volatile blocks alternating, the label is readable from a few recent returns."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(np.concatenate([rng.normal(0.0, s, block) for s in sigmas])))
    idx = pd.bdate_range("2000-01-03", periods=len(close), name="date")
    prices = pd.DataFrame({"open": close, "high": close * 1.001, "low": close * 0.999, "close": close,
                           "volume": 1e6}, index=idx)
    return prices, pd.Series(np.repeat(np.arange(len(sigmas)) % 2, block), index=idx, name="regime")


def _rollout(agent, sampler):
    """A fresh batch of trials from a fitted agent (its own random streams)."""
    ctx = agent.fit_context(sampler, numpy_generator(7), torch_generator(7, agent.device))
    return agent.collect(sampler, ctx)


@pytest.fixture(scope="module")
def sampler() -> TaskSampler:
    prices, labels = ar_blocks([0.4, -0.4, 0.0, 0.4], 100, seed=3)
    return TaskSampler(prices, labels, episode_length=12, window=4)


@pytest.mark.parametrize("separate", [False, True])
def test_separate_critic_keeps_the_value_loss_out_of_the_policy(sampler, separate):
    agent = make_agent("rl2", ENV, {**SMALL, "separate_critic": separate})
    agent.fit(sampler, iterations=1, progress=False)
    rollout = _rollout(agent, sampler)
    norms = trunk_gradient_norms(agent, rollout)
    assert norms["policy_trunk"] > 0
    # the value loss alone: which parameters does it reach?
    idx = torch.arange(rollout.inputs_TNI.shape[1])
    _, _, values, *_ = agent._evaluate(rollout, idx)
    agent.net.zero_grad(set_to_none=True)
    (values - rollout.batch["returns"]).pow(2).mean().backward()
    touched = {name for name, p in agent.net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    policy = {name for name, _ in agent.net.named_parameters() if name.split(".")[0] in ("encoder", "gru", "head")}
    if separate:
        assert norms["value_trunk"] == 0.0 and norms["ratio"] == 0.0
        assert not touched & policy, touched & policy
        assert {"critic.weight", "critic_gru.weight_hh_l0", "critic_encoder.weight"} <= touched
        assert agent.net.initial_state(3).shape == (1, 3, 16)  # actor and critic states side by side
    else:  # the shared trunk: the value gradient reaches the policy's encoder and GRU
        assert norms["value_trunk"] > 0 and norms["ratio"] > 1.0
        assert {"encoder.weight", "gru.weight_hh_l0"} <= touched


@pytest.fixture(scope="module")
def belief_run():
    prices, labels = vol_blocks([0.002, 0.03] * 4, 60, seed=0)
    sampler = TaskSampler(prices, labels, episode_length=8, window=4)
    agent = make_agent("rl2", {"window": 4}, {**SMALL, "separate_critic": True, "belief_coef": 1.0, "lr": 1e-2})
    history = agent.fit(sampler, iterations=6, progress=False)
    return agent, history, prices.iloc[:200]


def test_belief_head_learns_a_readable_label(belief_run):
    agent, history, _ = belief_run
    assert agent.hparams.belief_classes == 2 and agent.net.belief.out_features == 2
    loss = [m["belief_loss"] for m in history]
    assert np.isfinite(loss).all() and all(np.isfinite(m["aux_loss"]) for m in history)
    assert np.mean(loss[-2:]) < np.mean(loss[:2]) - 0.05, loss
    assert history[-1]["belief_accuracy"] > history[0]["belief_accuracy"]


def test_belief_agent_trades_without_labels_and_round_trips(belief_run, tmp_path):
    agent, _, prices = belief_run
    pos = agent.positions(prices)  # prices only: no labels exist at deployment
    assert pos.index.equals(prices.index) and np.isfinite(pos.to_numpy()).all()
    head, agent.net.belief = agent.net.belief, None
    try:  # the head is not on the deployment path: positions are the same without it
        pd.testing.assert_series_equal(agent.positions(prices), pos, check_exact=True)
    finally:
        agent.net.belief = head
    moved = agent.positions(perturb_after(prices, 120)).to_numpy()
    np.testing.assert_array_equal(moved[:121], pos.to_numpy()[:121])
    assert not np.array_equal(moved[121:], pos.to_numpy()[121:])
    loaded = load_agent(agent.save(tmp_path / "agent"))
    assert loaded.hparams == agent.hparams and loaded.hparams.belief_classes == 2
    torch.testing.assert_close(loaded.net.belief.weight, agent.net.belief.weight, rtol=0, atol=0)
    pd.testing.assert_series_equal(loaded.positions(prices), pos, check_exact=True)


def test_belief_head_rejects_a_sampler_with_more_regimes(sampler):
    prices, labels = ar_blocks([0.4, -0.4], 100, seed=3)
    three = TaskSampler(prices, labels.where(labels.index < labels.index[150], 2), episode_length=12, window=4)
    agent = make_agent("rl2", ENV, {**SMALL, "belief_coef": 0.5, "belief_classes": 2})
    with pytest.raises(ConfigError, match="labels up to 2 but the belief head predicts 2 classes"):
        agent.fit(three, iterations=1, progress=False)


def test_window_labels_read_each_decision_bar():
    idx = pd.bdate_range("2000-01-03", periods=60, name="date")
    prices = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}, index=idx)
    a = pd.Series(np.arange(60) // 20, index=idx, dtype=float)
    a.iloc[45] = np.nan
    b = pd.Series((np.arange(40) // 10) % 2, index=idx[:40])
    sampler = TaskSampler([prices, prices.iloc[:40]], [a, b], episode_length=4, window=2, min_segment=5)
    got = sampler.window_labels(np.array([0, 1, 0]), np.array([18, 8, 43]), 4)
    assert got.dtype == np.int64 and got.shape == (3, 4)
    np.testing.assert_array_equal(got, [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, -1, 2]])


def test_gradient_benchmark_smoke(capsys):
    import importlib.util
    from pathlib import Path

    file = Path(__file__).resolve().parents[1] / "benchmarks" / "rl2_gradients.py"
    spec = importlib.util.spec_from_file_location("bench_rl2_gradients", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--quick", "--iterations", "1", "--num-envs", "4"])
    out = capsys.readouterr().out
    assert "rl2 shared critic" in out and "rl2 separate critic" in out and "value/policy" in out


@pytest.mark.parametrize("separate", [False, True])
def test_lstm_cell_carries_h_and_c_in_one_state(separate):
    torch.manual_seed(0)
    net = GRUActorCritic(5, "continuous", -1.0, 1.0, encoder_size=6, hidden_size=4, separate_critic=separate,
                         cell="lstm")
    assert net.state_size == (16 if separate else 8) and net.initial_state(3).shape == (1, 3, net.state_size)
    assert {"lstm.lstm.weight_hh_l0", *(["critic_lstm.lstm.weight_hh_l0"] if separate else [])} <= \
        set(net.state_dict()) and not any(k.startswith("gru") for k in net.state_dict())
    x = torch.randn(7, 3, net.input_size)
    whole, last = net(x, net.initial_state(3))
    state, steps = net.initial_state(3), []
    for t in range(7):  # step by step, as collection and deployment run it
        feat, state = net(x[t:t + 1], state)
        steps.append(feat)
    torch.testing.assert_close(torch.cat(steps), whole)
    torch.testing.assert_close(state, last)
    assert whole.shape == (7, 3, 8 if separate else 4)  # features are H wide a trunk; the state, 2H (h and c)
    if separate:  # deployment runs the actor alone and leaves the critic's h and c as they were
        _, kept = net(x[:1], last, critic=False)
        torch.testing.assert_close(kept[..., 8:], last[..., 8:])
    with pytest.raises(ValueError, match="cell must be 'gru' or 'lstm'"):
        GRUActorCritic(5, "continuous", -1.0, 1.0, cell="rnn")


def test_default_gru_keeps_the_weight_names_saved_agents_have():
    keys = set(GRUActorCritic(5, "continuous", -1.0, 1.0, separate_critic=True).state_dict())
    assert {"gru.weight_hh_l0", "critic_gru.weight_hh_l0"} <= keys
