"""`positions_batch`: frames walked forward together give each frame's own walk (as `positions`
gives it alone), frames of different lengths are grouped, and nothing of one frame's future (nor
of another frame) reaches a decision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fin_meta.agents import make_agent
from fin_meta.tasks import TaskSampler
from tests.agent_data import ar_blocks, perturb_after

ENV = {"window": 4, "fees": 5e-4, "slippage": 5e-4}
RNN = {"num_envs": 8, "hidden_size": 8, "encoder_size": 8, "episodes_per_trial": 2, "epochs": 1, "minibatches": 2}
CASES = {
    "ppo": ("ppo", {"num_envs": 8, "hidden_sizes": [8], "epochs": 1, "minibatches": 2}),
    "rl2": ("rl2", RNN),
    "rppo": ("rppo", {**RNN, "trial_sampling": "stream"}),
    "maml": ("maml", {"meta_batch_size": 4, "envs_per_task": 2, "support_length": 12, "query_length": 12,
                      "hidden_sizes": [8], "adapt_every": 7}),
    "maml-regime-change": ("maml", {"meta_batch_size": 4, "envs_per_task": 2, "support_length": 12,
                                    "query_length": 12, "hidden_sizes": [8], "adapt_every": 20,
                                    "adapt_on_regime_change": True}),
}


@pytest.fixture(scope="module")
def frames() -> list[pd.DataFrame]:
    """Three frames of 100 bars and one of 80 (a second length group)."""
    out = [ar_blocks([0.4, -0.4], 50, seed=s)[0] for s in (11, 12, 13)]
    return [*out, ar_blocks([-0.4, 0.4], 40, seed=14)[0]]


@pytest.fixture(scope="module", params=list(CASES))
def agent(request):
    algo, hp = CASES[request.param]
    prices, labels = ar_blocks([0.4, -0.4, 0.0, 0.4], 60, seed=3)
    agent = make_agent(algo, ENV, {**hp, "device": "cpu", "seed": 0})
    agent.fit(TaskSampler(prices, labels, episode_length=10, window=4), iterations=1, progress=False)
    return agent


def test_batch_walk_equals_each_frame_alone(agent, frames):
    together = agent.positions_batch(frames)
    assert len(together) == len(frames)
    for prices, got in zip(frames, together, strict=True):
        alone = agent.positions(prices)
        assert got.index.equals(prices.index) and got.name == alone.name
        np.testing.assert_allclose(got.to_numpy(), alone.to_numpy(), rtol=0, atol=1e-6)
        assert got.abs().sum() > 0  # it traded: the comparison means something


def test_batch_walk_has_no_look_ahead_within_or_across_frames(agent, frames):
    before = agent.positions_batch(frames)
    t = 60
    changed = [perturb_after(frames[0], t), *frames[1:3], perturb_after(frames[3], 20)]
    after = agent.positions_batch(changed)
    np.testing.assert_allclose(after[0].iloc[: t + 1], before[0].iloc[: t + 1], rtol=0, atol=1e-6)
    for i in (1, 2):  # frames that did not change walk as before, whatever their neighbours did
        np.testing.assert_allclose(after[i], before[i], rtol=0, atol=1e-6)
    assert not np.allclose(after[3].iloc[21:], before[3].iloc[21:])  # the perturbation reached its own frame
