"""MAML agent: training moves, first vs second order, inner-loop adaptation, determinism,
save/load, no look-ahead, online walk-forward, errors. Small budgets (CPU, seconds)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from fin_meta.agents import load_agent
from fin_meta.agents.maml.agent import MAMLAgent
from fin_meta.agents.maml.core import inner_adapt
from fin_meta.agents.maml.rollout import ReturnsTable, rollout
from fin_meta.agents.normalization import observation_stats
from fin_meta.data import synthetic_regimes
from fin_meta.envs.vector_env import VectorTradingEnv
from fin_meta.errors import AgentError, ConfigError
from fin_meta.tasks import TaskSampler

WINDOW = 8
ENV = {"window": WINDOW}
SMALL = {"meta_batch_size": 16, "support_length": 20, "query_length": 20, "hidden_sizes": [16],
         "adapt_every": 10, "seed": 3}


@pytest.fixture(scope="module")
def path() -> tuple[pd.DataFrame, pd.Series]:
    return synthetic_regimes(600, seed=11)


@pytest.fixture(scope="module")
def sampler(path) -> TaskSampler:
    prices, labels = path
    return TaskSampler(prices, labels, episode_length=40, window=WINDOW, min_segment=45)


def _agent(**overrides) -> MAMLAgent:
    return MAMLAgent(env_config=ENV, hparams={**SMALL, **overrides})


def _flat(agent: MAMLAgent) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in agent.theta().values()])


@pytest.fixture(scope="module")
def trained(sampler) -> tuple[MAMLAgent, list[dict[str, float]]]:
    agent = _agent()
    history = agent.fit(sampler, iterations=6, progress=False)
    return agent, history


def test_training_moves_parameters_and_improves_query_return(trained, sampler) -> None:
    agent, history = trained
    fresh = _agent()
    assert len(history) == 6
    assert all(np.isfinite(list(m.values())).all() for m in history)
    assert not torch.allclose(_flat(agent), _flat(fresh))
    assert len({round(m["loss"], 9) for m in history}) > 1
    first, last = history[0]["query_return"], np.mean([m["query_return"] for m in history[-2:]])
    assert last > first
    assert history[-1]["env_steps"] == 6 * 16 * 40 and history[-1]["env_steps_per_s"] > 0


def test_callback_gets_every_iteration(sampler) -> None:
    seen: list[int] = []
    _agent().fit(sampler, iterations=2, progress=False, callback=lambda i, m: seen.append(i))
    assert seen == [0, 1]


def test_first_and_second_order_both_run_and_differ(sampler) -> None:
    second, first = _agent(first_order=False), _agent(first_order=True)
    h2 = second.fit(sampler, iterations=2, progress=False)
    h1 = first.fit(sampler, iterations=2, progress=False)
    assert np.isfinite(h1[-1]["loss"]) and np.isfinite(h2[-1]["loss"])
    # same seed, same tasks: the first step's loss is identical, the meta-gradients are not
    assert h1[0]["loss"] == pytest.approx(h2[0]["loss"], rel=1e-6)
    assert h1[0]["grad_norm"] != pytest.approx(h2[0]["grad_norm"], rel=1e-4)
    assert not torch.allclose(_flat(first), _flat(second))


def _trend_prices(n: int = 300, phi: float = 0.5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    r = np.zeros(n)
    eps = rng.standard_normal(n) * 0.01
    for t in range(1, n):  # tiny test series; the generator under test is elsewhere
        r[t] = phi * r[t - 1] + eps[t]
    close = 100 * np.exp(np.cumsum(r))
    idx = pd.bdate_range("2001-01-01", periods=n, name="date")
    return pd.DataFrame({"open": close, "high": close * 1.001, "low": close * 0.999, "close": close,
                         "volume": 1e6}, index=idx)


def test_inner_loop_improves_the_support_objective_on_one_task() -> None:
    prices = _trend_prices()
    agent = _agent(inner_lr=0.3)
    agent.policy.norm.set(*(torch.as_tensor(v) for v in observation_stats([prices], agent.env_config)))
    returns = ReturnsTable([prices], agent.device)
    env = VectorTradingEnv(prices, 1, config=agent.env_config, device=agent.device)
    one = torch.zeros(1, dtype=torch.long)
    support = rollout(env, agent.policy, agent._task_params(1, requires_grad=False), one, one + 20, 200, returns)
    objective = agent.objectives.inner(support)
    history = inner_adapt(agent._task_params(1, requires_grad=False), agent.step_sizes(), objective, 3,
                          create_graph=False)
    values = [float(objective(p).detach()) for p in history]
    assert values[1] > values[0] and values[3] > values[1]


def test_same_seed_same_positions(sampler, path) -> None:
    prices, _ = path
    a, b = _agent(), _agent()
    a.fit(sampler, iterations=2, progress=False)
    b.fit(sampler, iterations=2, progress=False)
    pa, pb = a.positions(prices), b.positions(prices)
    pd.testing.assert_series_equal(pa, pb)
    assert pa.dtype == np.float64 and pa.index.equals(prices.index)
    assert (pa.iloc[:WINDOW] == 0).all() and pa.abs().max() <= 1.0 and pa.iloc[WINDOW:].abs().sum() > 0


def test_save_load_round_trip(trained, path, tmp_path) -> None:
    agent, _ = trained
    prices, _ = path
    saved = agent.save(tmp_path / "maml")
    loaded = load_agent(saved)
    assert isinstance(loaded, MAMLAgent) and loaded.hparams == agent.hparams
    pd.testing.assert_series_equal(loaded.positions(prices), agent.positions(prices))


def test_loaded_agent_continues_training_with_its_input_scaling(trained, sampler, tmp_path) -> None:
    """Fit after load is a continuation: the normaliser set from the original training prices is
    kept (not refitted on the new sampler) and the iteration count carries over."""
    agent, _ = trained
    loaded = load_agent(agent.save(tmp_path / "maml"))
    assert loaded.iterations_trained == agent.iterations_trained == 6
    norm = loaded.policy.norm
    before = (norm.mean.clone(), norm.std.clone())
    prices, labels = synthetic_regimes(600, seed=99)
    other = TaskSampler(prices, labels, episode_length=40, window=WINDOW, min_segment=45)
    refit_mean, _ = observation_stats([prices], loaded.env_config)
    assert not np.allclose(refit_mean, before[0].numpy())  # a refit would be seen
    loaded.fit(other, iterations=1, progress=False)
    torch.testing.assert_close(norm.mean, before[0], rtol=0, atol=0)
    torch.testing.assert_close(norm.std, before[1], rtol=0, atol=0)
    assert loaded.iterations_trained == 7


def test_load_rejects_weights_that_do_not_match_the_config(trained, tmp_path) -> None:
    agent, _ = trained
    saved = agent.save(tmp_path / "maml")
    manifest = json.loads((saved / "agent.json").read_text())
    manifest["hparams"]["hidden_sizes"] = [32]
    (saved / "agent.json").write_text(json.dumps(manifest))
    with pytest.raises(AgentError, match="do not match"):
        load_agent(saved)


@pytest.mark.parametrize("regime_change", [False, True])
def test_no_look_ahead_and_online(trained, path, regime_change) -> None:
    base, _ = trained  # same weights, deployment rule with or without regime-change triggers
    agent = MAMLAgent(env_config=base.env_config,
                      hparams=base.hparams.model_copy(update={"adapt_on_regime_change": regime_change}))
    agent.net.load_state_dict(base.net.state_dict())
    prices, _ = path
    full = agent.positions(prices)
    t = 400
    future = prices.copy()
    future.iloc[t + 1 :, :4] *= np.exp(np.linspace(0.1, -0.4, len(prices) - t - 1))[:, None]
    perturbed = agent.positions(future)
    np.testing.assert_array_equal(full.iloc[: t + 1].to_numpy(), perturbed.iloc[: t + 1].to_numpy())
    assert not np.allclose(full.iloc[t + 1 :], perturbed.iloc[t + 1 :])
    prefix = agent.positions(prices.iloc[: t + 1])
    np.testing.assert_allclose(prefix.to_numpy(), full.iloc[: t + 1].to_numpy(), rtol=0, atol=1e-6)


def test_score_estimator_trains_and_deploys_online(sampler, path) -> None:
    prices, _ = path
    agent = _agent(estimator="score", envs_per_task=4, meta_batch_size=8)
    history = agent.fit(sampler, iterations=2, progress=False)
    assert np.isfinite(history[-1]["loss"]) and history[-1]["env_steps"] == 2 * 8 * 4 * 40
    full = agent.positions(prices)
    pd.testing.assert_series_equal(full, agent.positions(prices))
    prefix = agent.positions(prices.iloc[:301])
    np.testing.assert_allclose(prefix.to_numpy(), full.iloc[:301].to_numpy(), rtol=0, atol=1e-6)


def test_adaptation_curve_protocol(trained, path) -> None:
    agent, _ = trained
    prices, _ = path
    curve = agent.adaptation_curve(prices, 100, 220, [0, 2, 1])
    assert sorted(curve) == [0, 1, 2] and all(np.isfinite(list(curve.values())))
    assert curve[1] != curve[0]
    # evaluation uses bars of the segment only: changing prices after `end` changes nothing
    later = prices.copy()
    later.iloc[225:, :4] *= 1.5
    assert agent.adaptation_curve(later, 100, 220, [0, 1, 2]) == curve


def test_bad_settings_raise_clear_errors(sampler) -> None:
    with pytest.raises(ConfigError, match="continuous"):
        MAMLAgent(env_config={"window": WINDOW, "action": "discrete"})
    with pytest.raises(ConfigError, match="inner_steps"):
        MAMLAgent(env_config=ENV, hparams={"inner_steps": 0})
    with pytest.raises(ConfigError, match="envs_per_task"):
        MAMLAgent(env_config=ENV, hparams={"estimator": "score"})
    with pytest.raises(ConfigError, match="window"):
        MAMLAgent(env_config={"window": 16}).fit(sampler, iterations=1, progress=False)
