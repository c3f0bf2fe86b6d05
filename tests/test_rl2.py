"""RL²: the recurrent agent adapts in context — on a two-regime AR(1) toy it learns to follow
the last return where returns are positively autocorrelated and to fade it where they are
negatively autocorrelated, which no memoryless policy with a one-bar window can do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fin_meta.agents import make_agent
from fin_meta.errors import DataError
from fin_meta.tasks import TaskSampler
from tests.agent_data import ar_blocks, lag_correlation

BLOCK = 150
TOY_ENV = {"window": 1, "fees": 0.0, "slippage": 0.0}  # one bar: the sign of phi is only in memory


@pytest.fixture(scope="module")
def toy_agent():
    """Trained on trials inside one block (legacy `windows="inside"`): the toy's blocks are the
    generator's fixed 150-bar schedule, so this hides nothing a trader could not know, and it
    tests the in-context mechanism where context is pure signal. (With the default
    start-conditioned trials, ~16% of which cross a block, seeds 0-2 learn the flip too but two
    context episodes no longer help: 18.0 / 17.5 bp per bar with 0 / 2, vs 23.8 / 24.1 inside.)"""
    prices, labels = ar_blocks([0.5, -0.5] * 10, BLOCK, seed=0)
    sampler = TaskSampler(prices, labels, episode_length=12, window=1, windows="inside")
    agent = make_agent("rl2", TOY_ENV, {"num_envs": 96, "episodes_per_trial": 2, "hidden_size": 32,
                                        "encoder_size": 32, "lr": 3e-3, "seed": 0, "device": "cpu"})
    agent.fit(sampler, iterations=25, progress=False)
    return agent


def _block_correlations(agent, prices, labels) -> dict[int, list[float]]:
    pos = agent.positions(prices).to_numpy()
    out: dict[int, list[float]] = {0: [], 1: []}
    for b in range(len(prices) // BLOCK):
        bars = slice(b * BLOCK + 20, (b + 1) * BLOCK)  # after 20 bars of context in the block
        out[int(labels.iloc[b * BLOCK])].append(lag_correlation(pos, prices, bars))
    return out


def test_rl2_flips_its_policy_by_regime(toy_agent):
    prices, labels = ar_blocks([0.5, -0.5] * 3, BLOCK, seed=99)  # unseen paths
    corr = _block_correlations(toy_agent, prices, labels)
    assert min(corr[1]) > 0.1, corr  # trend-following where phi = +0.5
    assert max(corr[0]) < -0.1, corr  # contrarian where phi = -0.5


def test_rl2_trial_metrics_and_context_help(toy_agent):
    history = toy_agent.history
    assert len(history) == 25
    first, last = history[:3], history[-3:]
    assert np.mean([m["trial_return"] for m in last]) > np.mean([m["trial_return"] for m in first]) + 0.01
    prices, _ = ar_blocks([-0.5], 300, seed=5)
    curve = toy_agent.adaptation_curve(prices, 1, 300, [0, 2])
    assert curve[2] > curve[0]  # two context episodes of the regime help on the same evaluation bars


def test_hidden_state_is_reset_per_call(toy_agent):
    prices, _ = ar_blocks([0.5, -0.5], BLOCK, seed=4)
    one = toy_agent.positions(prices)
    two = toy_agent.positions(prices)
    np.testing.assert_array_equal(one.to_numpy(), two.to_numpy())
    assert torch.is_tensor(toy_agent.step_policy().h) and float(toy_agent.step_policy().h.abs().sum()) == 0.0


def test_trials_from_short_segments_need_same_regime_sampling():
    """Legacy `windows="inside"` sampler: consecutive trials must fit inside one segment, so
    40-bar segments refuse 48-step trials (the default start-conditioned sampler takes them)."""
    prices, labels = ar_blocks([0.5, -0.5] * 4, 40, seed=2)  # 40-bar segments
    sampler = TaskSampler(prices, labels, episode_length=12, window=2, windows="inside")
    small = {"num_envs": 8, "episodes_per_trial": 4, "hidden_size": 8, "encoder_size": 8, "device": "cpu"}
    with pytest.raises(DataError, match="trial_sampling: same_regime"):
        make_agent("rl2", {"window": 2}, small).fit(sampler, iterations=1, progress=False)
    agent = make_agent("rl2", {"window": 2}, {**small, "trial_sampling": "same_regime"})
    history = agent.fit(sampler, iterations=2, progress=False)
    assert history[-1]["env_steps"] == 2 * 8 * 4 * 12 and np.isfinite(history[-1]["trial_return"])
    default = TaskSampler(prices, labels, episode_length=12, window=2)
    history = make_agent("rl2", {"window": 2}, small).fit(default, iterations=1, progress=False)
    assert history[-1]["env_steps"] == 8 * 4 * 12


@pytest.fixture(scope="module")
def trial_agent(toy_agent):
    """The toy agent deployed with `deploy_context: trial` (same weights)."""
    import copy

    agent = copy.copy(toy_agent)
    agent.hparams = toy_agent.hparams.model_copy(update={"deploy_context": "trial"})
    return agent


def test_trial_deployment_equals_one_fresh_trial_per_bar(trial_agent):
    """Each batched decision is what a fresh trial over the last `episodes x length` bars, played
    bar by bar, decides at its end (and the bars before the first full trial are its prefix)."""
    from fin_meta.agents.deploy import action_to_position, play_episodes
    from fin_meta.envs.features import first_decision_bar

    prices, _ = ar_blocks([0.5, -0.5], 80, seed=7)
    got = trial_agent.positions(prices).to_numpy()
    length, context = trial_agent.episode_length, 2 * trial_agent.episode_length
    first = first_decision_bar(trial_agent.env_config.window)
    prefix = play_episodes(prices, trial_agent.env_config, trial_agent.step_policy(),
                           [(first, length), (first + length, context - 1 - length)], device=trial_agent.device)
    assert (got[:first] == 0).all()
    np.testing.assert_allclose(got[first : first + context - 1], np.concatenate(prefix.positions), atol=1e-6)
    for t in (first + context - 1, first + context + 5, len(prices) - 2, len(prices) - 1):
        s = t - context + 1
        policy = trial_agent.step_policy()
        log = play_episodes(prices, trial_agent.env_config, policy, [(s, length), (s + length, length - 1)],
                            device=trial_agent.device)
        fb = log.final_feedback
        fb.done = torch.zeros_like(fb.done)
        with torch.no_grad():
            want = float(action_to_position(policy.act(log.final_obs, fb), trial_agent.env_config)[0])
        assert got[t] == pytest.approx(want, abs=1e-6), t


def test_trial_deployment_has_no_look_ahead_and_still_flips_by_regime(trial_agent):
    from tests.agent_data import perturb_after

    prices, labels = ar_blocks([0.5, -0.5] * 3, BLOCK, seed=99)
    base = trial_agent.positions(prices).to_numpy()
    cut = 400
    moved = trial_agent.positions(perturb_after(prices, cut, seed=1)).to_numpy()
    np.testing.assert_array_equal(base[: cut + 1], moved[: cut + 1])
    assert not np.array_equal(base[cut + 1 :], moved[cut + 1 :])
    corr = _block_correlations(trial_agent, prices, labels)
    assert min(corr[1]) > 0.1 and max(corr[0]) < -0.1, corr


def test_stream_trials_train_across_regime_changes():
    """`trial_sampling: stream` trials run on past the end of their regime segment, so segments
    shorter than a trial are fine (consecutive sampling from a legacy `windows="inside"` sampler
    refuses them)."""
    prices, labels = ar_blocks([0.5, -0.5] * 4, 30, seed=2)
    sampler = TaskSampler(prices, labels, episode_length=12, window=1, windows="inside")
    hp = {"num_envs": 16, "episodes_per_trial": 4, "hidden_size": 8, "encoder_size": 8, "device": "cpu"}
    with pytest.raises(DataError, match="stream"):
        make_agent("rl2", TOY_ENV, hp).fit(sampler, iterations=1, progress=False)
    agent = make_agent("rl2", TOY_ENV, {**hp, "trial_sampling": "stream"})
    history = agent.fit(sampler, iterations=2, progress=False)
    assert history[-1]["env_steps"] == 2 * 16 * 48 and np.isfinite(history[-1]["policy_loss"])


def test_trial_deployment_needs_one_full_trial_of_bars(trial_agent):
    prices, _ = ar_blocks([0.5], 60, seed=3)
    from fin_meta.envs.features import first_decision_bar

    need = first_decision_bar(trial_agent.env_config.window) + 2 * trial_agent.episode_length
    with pytest.raises(DataError, match=f"at least window \\+ episodes_per_trial x episode_length = {need}"):
        trial_agent.positions(prices.iloc[: need - 1])
    assert np.isfinite(trial_agent.positions(prices.iloc[:need]).to_numpy()).all()
