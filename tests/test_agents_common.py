"""What every torch agent (PPO, RL²) shares: the protocol, seeds, causality, save/load,
the registry and the errors of corrupt saved directories."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

import fin_meta
from fin_meta.agents import Agent, load_agent, make_agent
from fin_meta.agents.normalization import observation_stats
from fin_meta.agents.serialization import FORMAT_VERSION, MANIFEST_FILE, WEIGHTS_FILE
from fin_meta.errors import AgentError, ConfigError, DataError
from fin_meta.tasks import TaskSampler
from tests.agent_data import ar_blocks, perturb_after

ENV = {"window": 4, "fees": 5e-4, "slippage": 5e-4}
SMALL = {
    "ppo": {"num_envs": 16, "hidden_sizes": [16, 16], "epochs": 2, "minibatches": 2, "device": "cpu"},
    "rl2": {"num_envs": 16, "hidden_size": 16, "encoder_size": 16, "episodes_per_trial": 2, "epochs": 2,
            "minibatches": 2, "device": "cpu"},
}
ALGOS = list(SMALL)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    return ar_blocks([0.4, -0.4, 0.0, 0.4], 100, seed=3)


@pytest.fixture(scope="module")
def sampler(data) -> TaskSampler:
    prices, labels = data
    return TaskSampler(prices, labels, episode_length=12, window=4)


def _trained(algo: str, sampler: TaskSampler, seed: int = 0, **hp) -> Agent:
    agent = make_agent(algo, ENV, {**SMALL[algo], "seed": seed, **hp})
    agent.fit(sampler, iterations=2, progress=False)
    return agent


@pytest.fixture(scope="module", params=ALGOS)
def trained(request, sampler) -> Agent:
    return _trained(request.param, sampler)


def test_protocol_and_metrics(trained, data):
    prices, _ = data
    assert isinstance(trained, Agent)
    assert trained.algo in ("ppo", "rl2")
    assert len(trained.history) == 2
    for key in ("episode_return", "policy_loss", "value_loss", "entropy", "approx_kl", "env_steps_per_s"):
        assert np.isfinite(trained.history[-1][key]), key
    assert trained.history[-1]["env_steps"] == 2 * trained.history[0]["env_steps"]
    pos = trained.positions(prices)
    assert pos.index.equals(prices.index) and pos.dtype == np.float64
    assert (pos.iloc[: ENV["window"]] == 0.0).all()
    assert pos.abs().max() <= 1.0 and pos.iloc[ENV["window"] :].abs().sum() > 0


def test_callback_gets_every_iteration(sampler):
    seen: list[tuple[int, float]] = []
    agent = make_agent("ppo", ENV, {**SMALL["ppo"], "seed": 5})
    agent.fit(sampler, iterations=3, progress=False, callback=lambda i, m: seen.append((i, m["episode_return"])))
    assert [i for i, _ in seen] == [0, 1, 2]
    assert [r for _, r in seen] == [m["episode_return"] for m in agent.history]


@pytest.mark.parametrize("algo", ALGOS)
def test_same_seed_same_positions_other_seed_differs(algo, sampler, data):
    prices, _ = data
    one = _trained(algo, sampler, seed=11).positions(prices)
    two = _trained(algo, sampler, seed=11).positions(prices)
    other = _trained(algo, sampler, seed=12).positions(prices)
    pd.testing.assert_series_equal(one, two, check_exact=True)
    assert not np.allclose(one.to_numpy(), other.to_numpy())


def test_no_look_ahead_in_positions(trained, data):
    prices, _ = data
    full = trained.positions(prices).to_numpy()
    for t in (ENV["window"] + 3, 150, 330):
        changed = trained.positions(perturb_after(prices, t)).to_numpy()
        np.testing.assert_array_equal(changed[: t + 1], full[: t + 1])
        assert not np.array_equal(changed[t + 1 :], full[t + 1 :])  # the perturbation is seen later


def test_truncated_prices_give_the_same_positions(trained, data):
    """Walking forward on prices up to t decides bar t exactly as on the whole series."""
    prices, _ = data
    full = trained.positions(prices).to_numpy()
    for t in (ENV["window"] + 1, 97, 250):
        part = trained.positions(prices.iloc[: t + 1]).to_numpy()
        np.testing.assert_array_equal(part, full[: t + 1])


def test_save_load_round_trip(trained, data, tmp_path):
    prices, _ = data
    path = trained.save(tmp_path / "agent")
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    assert manifest["algo"] == trained.algo and manifest["format_version"] == FORMAT_VERSION
    assert manifest["fin_meta_version"] == fin_meta.__version__
    assert manifest["torch_version"] == torch.__version__
    assert manifest["env_config"]["window"] == ENV["window"]
    assert manifest["spaces"]["observation_size"] == trained.obs_size
    loaded = fin_meta.load_agent(path)
    assert type(loaded) is type(trained) and loaded.env_config == trained.env_config
    assert loaded.iterations_trained == 2 and loaded.episode_length == trained.episode_length
    pd.testing.assert_series_equal(loaded.positions(prices), trained.positions(prices), check_exact=True)
    assert loaded.adaptation_curve(prices, 110, 200, [0, 1]) == trained.adaptation_curve(prices, 110, 200, [0, 1])
    again = loaded.save(path)  # saving over an existing agent replaces it atomically
    assert sorted(p.name for p in again.iterdir()) == sorted([MANIFEST_FILE, WEIGHTS_FILE])


def test_adaptation_curve_protocol(trained, data):
    prices, _ = data
    curve = trained.adaptation_curve(prices, 110, 200, [2, 0, 1])
    assert sorted(curve) == [0, 1, 2] and all(np.isfinite(v) for v in curve.values())
    if trained.algo == "ppo":  # memoryless: context cannot change anything, none is needed
        assert len(set(curve.values())) == 1
        assert trained.adaptation_curve(prices, 110, 200, [0, 8]) == dict.fromkeys([0, 8], curve[0])
    else:
        with pytest.raises(DataError, match=r"cannot hold 96 bars of context \(8 episodes of 12\)"):
            trained.adaptation_curve(prices, 110, 200, [0, 8])
    with pytest.raises(ConfigError, match="k >= 0"):
        trained.adaptation_curve(prices, 110, 200, [-1])


# ----------------------------------------------------------------------------- registry, errors


def test_make_agent_errors():
    with pytest.raises(ConfigError, match="unknown agent algo 'dqn'"):
        make_agent("dqn")
    with pytest.raises(ConfigError, match="learning_rate"):
        make_agent("ppo", ENV, {"learning_rate": 1e-3})
    with pytest.raises(ConfigError, match="num_envs"):
        make_agent("rl2", ENV, {"num_envs": 0})
    with pytest.raises(ConfigError, match="window"):
        make_agent("ppo", {"window": 0})


def test_sampler_window_must_cover_env_window(data):
    prices, labels = data
    agent = make_agent("ppo", {"window": 8}, {**SMALL["ppo"]})
    with pytest.raises(ConfigError, match="window=4 but the agent's env uses window=8"):
        agent.fit(TaskSampler(prices, labels, episode_length=8, window=4), iterations=1, progress=False)


def test_network_init_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    make_agent("rl2", ENV, SMALL["rl2"])
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


@pytest.fixture
def saved(tmp_path, sampler):
    agent = make_agent("ppo", ENV, {**SMALL["ppo"]})
    return agent.save(tmp_path / "agent")


def _edit_manifest(path, **changes):
    file = path / MANIFEST_FILE
    manifest = json.loads(file.read_text())
    for key, value in changes.items():
        manifest[key] = value
    file.write_text(json.dumps(manifest))


def test_loaded_agent_continues_training_with_its_input_scaling(trained, tmp_path):
    loaded = fin_meta.load_agent(trained.save(tmp_path / "agent"))
    before = (loaded.net.norm.mean.clone(), loaded.net.norm.std.clone())
    prices, labels = ar_blocks([0.4, -0.4], 100, seed=8)
    refit_mean, _ = observation_stats([prices], loaded.env_config)
    assert not np.allclose(refit_mean, before[0].numpy())  # a refit would be seen
    loaded.fit(TaskSampler(prices, labels, episode_length=12, window=4), iterations=1, progress=False)
    torch.testing.assert_close(loaded.net.norm.mean, before[0], rtol=0, atol=0)
    torch.testing.assert_close(loaded.net.norm.std, before[1], rtol=0, atol=0)
    assert loaded.iterations_trained == 3


def test_load_errors_name_the_problem(saved, tmp_path):
    with pytest.raises(AgentError, match="does not exist"):
        load_agent(tmp_path / "nowhere")
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(AgentError, match="is a file"):
        load_agent(tmp_path / "plain.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AgentError, match="agent.json is missing"):
        load_agent(tmp_path / "empty")


def test_load_rejects_corrupt_manifest(saved):
    (saved / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(AgentError, match="not valid JSON"):
        load_agent(saved)


def test_load_rejects_unknown_algo_and_newer_format(saved):
    _edit_manifest(saved, algo="dqn")
    with pytest.raises(AgentError, match="unknown algo 'dqn'"):
        load_agent(saved)
    _edit_manifest(saved, algo="ppo", format_version=FORMAT_VERSION + 1)
    with pytest.raises(AgentError, match="upgrade fin-meta"):
        load_agent(saved)


def test_load_rejects_missing_keys_and_bad_hparams(saved):
    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    _edit_manifest(saved, hparams={**manifest["hparams"], "bogus": 1})
    with pytest.raises(AgentError, match="invalid hparams"):
        load_agent(saved)
    del manifest["env_config"]
    (saved / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(AgentError, match="lacks the keys"):
        load_agent(saved)


def test_load_rejects_weights_that_do_not_match_the_config(saved):
    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    _edit_manifest(saved, hparams={**manifest["hparams"], "hidden_sizes": [32, 32]})
    with pytest.raises(AgentError, match="do not match its config"):
        load_agent(saved)


def test_load_rejects_spaces_that_do_not_match(saved):
    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    _edit_manifest(saved, env_config={**manifest["env_config"], "window": 5})
    with pytest.raises(AgentError, match="saved spaces"):
        load_agent(saved)


def test_load_rejects_missing_or_corrupt_weights(saved):
    (saved / WEIGHTS_FILE).write_bytes(b"\x00garbage")
    with pytest.raises(AgentError, match="corrupt"):
        load_agent(saved)
    (saved / WEIGHTS_FILE).unlink()
    with pytest.raises(AgentError, match="weights.pt is missing"):
        load_agent(saved)


def test_load_wrong_class_and_uri_loader(saved, data):
    import fin_meta
    from fin_meta.agents.rl2.agent import RL2Agent

    with pytest.raises(AgentError, match="holds a 'ppo' agent"):
        RL2Agent.load(saved)
    # the agents layer loads local directories only; MLflow URIs go through fin_meta.load_agent
    with pytest.raises(AgentError, match="fin_meta.load_agent"):
        load_agent("runs:/0123/agent")
    prices, _ = data
    via_public = fin_meta.load_agent(saved)
    pd.testing.assert_series_equal(via_public.positions(prices), load_agent(saved).positions(prices))
