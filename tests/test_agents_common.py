"""What every torch agent (PPO, RL²; MAML too for resuming) shares: the protocol, seeds,
causality, save/load, faithful resume, the registry and the errors of corrupt saved directories."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import fin_meta
from fin_meta.agents import Agent, load_agent, make_agent
from fin_meta.agents.normalization import observation_stats
from fin_meta.agents.serialization import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    TRAINING_STATE_FILE,
    WEIGHTS_FILE,
)
from fin_meta.errors import AgentError, ConfigError, DataError
from fin_meta.tasks import TaskSampler
from tests.agent_data import ar_blocks, perturb_after

ENV = {"window": 4, "fees": 5e-4, "slippage": 5e-4}
SMALL = {
    "ppo": {"num_envs": 16, "hidden_sizes": [16, 16], "epochs": 2, "minibatches": 2, "device": "cpu"},
    "rl2": {"num_envs": 16, "hidden_size": 16, "encoder_size": 16, "episodes_per_trial": 2, "epochs": 2,
            "minibatches": 2, "device": "cpu"},
}
VARIANTS = {"ppo": ("ppo", {}), "rl2": ("rl2", {}), "rl2-lstm": ("rl2", {"cell": "lstm", "separate_critic": True})}
"""Agents every common test runs on: algo and hyperparameters on top of its SMALL ones."""
ALGOS = list(VARIANTS)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    return ar_blocks([0.4, -0.4, 0.0, 0.4], 100, seed=3)


@pytest.fixture(scope="module")
def sampler(data) -> TaskSampler:
    prices, labels = data
    return TaskSampler(prices, labels, episode_length=12, window=4)


def _trained(variant: str, sampler: TaskSampler, seed: int = 0, **hp) -> Agent:
    algo, extra = VARIANTS[variant]
    agent = make_agent(algo, ENV, {**SMALL[algo], **extra, "seed": seed, **hp})
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


def assert_no_look_ahead(agent: Agent, prices: pd.DataFrame, cuts: tuple[int, ...] = (ENV["window"] + 3, 150, 330)):
    """Perturbing the prices after bar t changes no position up to t (and some after it)."""
    full = agent.positions(prices).to_numpy()
    for t in cuts:
        changed = agent.positions(perturb_after(prices, t)).to_numpy()
        np.testing.assert_array_equal(changed[: t + 1], full[: t + 1])
        assert not np.array_equal(changed[t + 1 :], full[t + 1 :])  # the perturbation is seen later


def test_no_look_ahead_in_positions(trained, data):
    assert_no_look_ahead(trained, data[0])


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
    assert sorted(p.name for p in again.iterdir()) == sorted([MANIFEST_FILE, WEIGHTS_FILE, TRAINING_STATE_FILE])


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


# ----------------------------------------------------------------------------- faithful resume

MAML_SMALL = {"meta_batch_size": 4, "envs_per_task": 2, "support_length": 12, "query_length": 12,
              "hidden_sizes": [16], "adapt_every": 20, "device": "cpu"}
RESUMABLE = {
    "ppo": ("ppo", SMALL["ppo"]),
    **{f"rl2-{s}": ("rl2", {**SMALL["rl2"], "trial_sampling": s}) for s in ("consecutive", "same_regime", "stream")},
    "rl2-lstm": ("rl2", {**SMALL["rl2"], "cell": "lstm"}),
    "rl2-long": ("rl2", {**SMALL["rl2"], "trial_sampling": "stream", "trial_iterations": 2}),  # carried streams
    "rl2-gate-teacher": ("rl2", {**SMALL["rl2"], "belief_coef": 0.5, "belief_gate": True,
                                 "gate_teacher_iterations": 3}),  # the teacher's schedule follows the iteration
    **{f"maml-{e}": ("maml", {**MAML_SMALL, "estimator": e}) for e in ("pathwise", "score")},
}
"""Every agent, and every variant with its own random streams, that training must resume."""
N1, N2 = 2, 1  # iterations before and after the interruption
TIMINGS = ("time_s", "env_steps_per_s")


@pytest.fixture(scope="module", params=list(RESUMABLE))
def resume_case(request, sampler, data, tmp_path_factory) -> dict:
    """One `fit(N1 + N2)` that writes a checkpoint from its callback after iteration N1 (as the
    pipeline does), and an agent trained by `fit(N1)`, saved, then `fit(N2)` in the same process."""
    algo, hp = RESUMABLE[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    whole = make_agent(algo, ENV, {**hp, "seed": 4})

    def checkpoint(i: int, _metrics: dict[str, float]) -> None:
        if i == N1 - 1:
            whole.save(folder / "checkpoint")

    whole.fit(sampler, iterations=N1 + N2, progress=False, callback=checkpoint)
    split = make_agent(algo, ENV, {**hp, "seed": 4})
    split.fit(sampler, iterations=N1, progress=False)
    split.save(folder / "split")
    positions = split.positions(data[0])
    split.fit(sampler, iterations=N2, progress=False)
    return {"whole": whole, "split": split, "folder": folder, "split_positions": positions}


def _assert_same_training(agent: Agent, history: list[dict[str, float]], reference: Agent,
                          prices: pd.DataFrame) -> None:
    """Bitwise the same weights, per-iteration metrics (timings aside) and positions."""
    ours, theirs = agent.net.state_dict(), reference.net.state_dict()
    assert list(ours) == list(theirs)
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=0, msg=name)
    untimed = [pd.DataFrame(h).drop(columns=list(TIMINGS)) for h in (history, reference.history)]
    pd.testing.assert_frame_equal(*untimed, check_exact=True)
    pd.testing.assert_series_equal(agent.positions(prices), reference.positions(prices), check_exact=True)


def test_fit_in_two_calls_equals_one_fit(resume_case, data):
    """`fit(N1)` then `fit(N2)` continues the same random streams and Adam state."""
    split = resume_case["split"]
    _assert_same_training(split, split.history, resume_case["whole"], data[0])


def test_save_load_then_fit_equals_one_fit(resume_case, sampler, data):
    """`fit(N1)` -> `save` -> `load_agent` -> `fit(N2)` is the uninterrupted run."""
    whole = resume_case["whole"]
    loaded = load_agent(resume_case["folder"] / "split")
    history = loaded.fit(sampler, iterations=N2, progress=False)
    _assert_same_training(loaded, whole.history[:N1] + history, whole, data[0])


def test_checkpoint_from_the_callback_resumes_the_uninterrupted_run(resume_case, sampler, data):
    """A `save` from the training callback after iteration N1 (mid-`fit`, as checkpoints are
    written) holds the state after that iteration: loading it and fitting N2 more is the
    uninterrupted run."""
    whole = resume_case["whole"]
    loaded = load_agent(resume_case["folder"] / "checkpoint")
    assert loaded.iterations_trained == N1
    history = loaded.fit(sampler, iterations=N2, progress=False)
    _assert_same_training(loaded, whole.history[:N1] + history, whole, data[0])


def test_progress_bar_continues_from_the_iterations_trained(sampler, capsys):
    """A resumed run's bar reads 2/3 -> 3/3, not 0/1; the callback still counts from 0."""
    agent = make_agent("ppo", ENV, SMALL["ppo"])
    agent.fit(sampler, iterations=2, progress=False)
    seen: list[int] = []
    history = agent.fit(sampler, iterations=1, progress=True, callback=lambda i, m: seen.append(i))
    err = capsys.readouterr().err
    assert "2/3" in err and "0/1" not in err
    assert seen == [0] and history[0]["iteration"] == 2.0 and agent.iterations_trained == 3
    assert history[0]["env_steps"] == 3 * agent.history[0]["env_steps"]


def test_deployment_saves_carry_no_training_state(sampler, trained, tmp_path):
    untrained = make_agent("ppo", ENV, SMALL["ppo"]).save(tmp_path / "untrained")
    deploy = trained.save(tmp_path / "deploy", training_state=False)
    for path in (untrained, deploy):
        assert sorted(p.name for p in path.iterdir()) == sorted([MANIFEST_FILE, WEIGHTS_FILE])
    assert (trained.save(tmp_path / "full") / TRAINING_STATE_FILE).is_file()


def test_agent_saved_without_training_state_loads_and_trains_from_fresh_streams(resume_case, sampler, data,
                                                                                  tmp_path):
    """The previous format (no training_state.pt): same weights and positions; training
    continues, deterministically, from fresh streams seeded by the iteration count and a fresh
    optimiser, so it differs from the faithful resume."""
    whole, path = resume_case["whole"], tmp_path / "old"
    shutil.copytree(resume_case["folder"] / "split", path)
    (path / TRAINING_STATE_FILE).unlink()
    old = [load_agent(path) for _ in range(2)]
    assert old[0].iterations_trained == N1
    pd.testing.assert_series_equal(old[0].positions(data[0]), resume_case["split_positions"], check_exact=True)
    histories = [agent.fit(sampler, iterations=N2, progress=False) for agent in old]
    pd.testing.assert_series_equal(old[0].positions(data[0]), old[1].positions(data[0]), check_exact=True)
    assert histories[0][0]["iteration"] == N1 and old[0].iterations_trained == N1 + N2
    pairs = zip(old[0].net.state_dict().values(), whole.net.state_dict().values(), strict=True)
    assert not all(torch.equal(ours, theirs) for ours, theirs in pairs)


def test_load_rejects_corrupt_training_state(trained, tmp_path):
    path = trained.save(tmp_path / "agent")
    state = torch.load(path / TRAINING_STATE_FILE, weights_only=True)
    state["optimizer"]["param_groups"] = []
    torch.save(state, path / TRAINING_STATE_FILE)
    with pytest.raises(AgentError, match="training_state.pt does not fit this agent"):
        load_agent(path)
    (path / TRAINING_STATE_FILE).write_bytes(b"\x00garbage")
    with pytest.raises(AgentError, match="training_state.pt is corrupt"):
        load_agent(path)
