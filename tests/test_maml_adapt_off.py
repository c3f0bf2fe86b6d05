"""MAML with adaptation switched off (`adapt: false`): the pooled pathwise MLP with the same
tasks, objective and outer loop; no inner step in training or deployment. Small budgets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fin_meta.agents import load_agent
from fin_meta.agents.deploy import walk_forward
from fin_meta.agents.maml.agent import MAMLAgent
from fin_meta.agents.maml.config import ADAPT_ONLY, MAMLConfig
from fin_meta.agents.maml.core import env_actions
from fin_meta.config.experiment import load_config
from fin_meta.data import synthetic_regimes
from fin_meta.errors import ConfigError
from fin_meta.tasks import TaskSampler
from tests.pipeline_data import QUICKSTART

WINDOW = 8
SMALL = {"meta_batch_size": 16, "support_length": 20, "query_length": 20, "hidden_sizes": [16], "seed": 3,
         "device": "cpu"}


@pytest.fixture(scope="module")
def path() -> tuple[pd.DataFrame, pd.Series]:
    return synthetic_regimes(600, seed=11)


@pytest.fixture(scope="module")
def sampler(path) -> TaskSampler:
    prices, labels = path
    return TaskSampler(prices, labels, episode_length=40, window=WINDOW, min_segment=45)


def _agent(**overrides) -> MAMLAgent:
    return MAMLAgent(env_config={"window": WINDOW}, hparams={**SMALL, **overrides})


def _flat(agent: MAMLAgent) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in agent.theta().values()])


@pytest.fixture(scope="module")
def control(sampler) -> tuple[MAMLAgent, list[dict[str, float]]]:
    agent = _agent(adapt=False)
    return agent, agent.fit(sampler, iterations=2, progress=False)


class _Unadapted:
    """The network as it is: theta's policy module on each observation, no inner step."""

    def __init__(self, agent: MAMLAgent) -> None:
        self.agent = agent

    @torch.no_grad()
    def act(self, obs_NO: torch.Tensor, feedback) -> torch.Tensor:
        return env_actions(self.agent.policy(obs_NO), self.agent.env_config)


def test_deployed_positions_are_the_unadapted_networks(control, path, tmp_path) -> None:
    agent, _ = control
    prices, _ = path
    positions = agent.positions(prices)
    plain = walk_forward(prices, agent.env_config, _Unadapted(agent), device=agent.device)
    np.testing.assert_allclose(positions.to_numpy(), plain, rtol=0, atol=1e-6)
    assert agent.adaptation_points(prices).size == 0 and positions.iloc[WINDOW:].abs().sum() > 0
    # the same weights with adaptation on do adapt, so the comparison can fail
    adapting = _agent(adapt_every=10)
    adapting.net.load_state_dict(agent.net.state_dict())
    assert not np.allclose(adapting.positions(prices).to_numpy(), plain, atol=1e-6)
    # saved and loaded, it stays the control
    loaded = load_agent(agent.save(tmp_path / "maml_no_adapt"))
    assert loaded.hparams.adapt is False
    pd.testing.assert_series_equal(loaded.positions(prices), positions)
    # the meta-test: every k trades theta
    curve = agent.adaptation_curve(prices, 100, 200, [0, 1, 2])
    assert curve[0] == curve[1] == curve[2]


def test_training_is_the_same_loop_without_the_inner_step(control, sampler) -> None:
    agent, history = control
    assert not torch.allclose(_flat(agent), _flat(_agent(adapt=False)))  # it trains
    assert all(np.isfinite(list(m.values())).all() for m in history)
    assert "support_return_pre" not in history[0] and "inner_lr" not in history[0]
    assert history[-1]["env_steps"] == 2 * 16 * 20  # query windows only
    # adaptation with a vanishing step: the same tasks, windows and objective, so the same
    # first loss and (nearly) the same gradient as the control's
    tiny = _agent(inner_lr=1e-9, learn_inner_lr=False)
    h_tiny = tiny.fit(sampler, iterations=1, progress=False)
    assert h_tiny[0]["loss"] == pytest.approx(history[0]["loss"], rel=1e-5)
    assert h_tiny[0]["grad_norm"] == pytest.approx(history[0]["grad_norm"], rel=1e-3)
    # real adaptation differs from the control: other query losses, other parameters
    adapting = _agent()
    h_on = adapting.fit(sampler, iterations=2, progress=False)
    assert h_on[0]["loss"] != pytest.approx(history[0]["loss"], rel=1e-4)
    assert not torch.allclose(_flat(adapting), _flat(agent))


def test_adapt_only_keys_with_adapt_off_are_a_clear_error() -> None:
    MAMLConfig(adapt=False, support_length=30, query_length=30, outer_lr=1e-3)  # shared keys are fine
    with pytest.raises(ConfigError) as info:
        _agent(adapt=False, inner_lr=0.3, adapt_every=21)
    message = str(info.value)
    assert "\n" not in message and "inner_lr=0.3, adapt_every=21" in message and "adapt: true" in message
    for key in ADAPT_ONLY:  # every listed key is a real field with a default
        assert key in MAMLConfig.model_fields
    # from an experiment file: the dotted key and the fix, in one line
    with pytest.raises(ConfigError) as info:
        load_config(QUICKSTART, overrides=["agent={algo: maml, adapt: false, adapt_steps: 2}"])
    assert "adapt_steps=2" in str(info.value) and "\n" not in str(info.value).strip()
    cfg = load_config(QUICKSTART, overrides=["agent={algo: maml, adapt: false}"])
    assert cfg.agent.hparams["adapt"] is False
