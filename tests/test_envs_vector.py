"""VectorTradingEnv: agreement with TradingEnv, tasks, auto-reset, seeds, dtypes, no look-ahead."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fin_meta.envs import TradingEnv, VectorTradingEnv
from fin_meta.errors import ConfigError, DataError, FinMetaError
from tests.test_envs_support import action_sequence, make_prices, perturb_after

ASSETS = [make_prices(600, seed=2), make_prices(350, seed=3, vol=0.03)]


def _run_gym(prices, actions, start, **kwargs):
    env = TradingEnv(prices, **kwargs)
    obs, _ = env.reset(options={"start": start, "length": len(actions)})
    rows, rewards, equity = [obs], [], []
    for action in actions:
        obs, reward, _, _, info = env.step(np.array([action], dtype=np.float32))
        rows.append(obs)
        rewards.append(reward)
        equity.append(info["equity"])
    return np.array(rows), np.array(rewards), np.array(equity)


@pytest.mark.parametrize("reward", ["log_return", "differential_sharpe"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_vector_env_matches_gym_env(reward, dtype):
    n_steps, window = 300, 16
    kwargs = {"window": window, "fees": 7e-4, "slippage": 3e-4, "reward": reward, "features": ["realised_vol"]}
    starts = [window, 200]
    actions = np.stack([action_sequence(n_steps, seed=s) for s in (5, 6)], axis=1).astype(np.float32)  # [T, N]
    env = VectorTradingEnv(ASSETS, 2, device="cpu", dtype=dtype, **kwargs)
    obs, info = env.set_tasks([0, 0], starts, [n_steps, n_steps])
    assert obs.dtype == dtype and info["t"].tolist() == starts
    rows, rewards, equity = [obs], [], []
    for t in range(n_steps):
        obs, reward, terminated, truncated, info = env.step(torch.as_tensor(actions[t]))
        assert reward.dtype == dtype and not terminated.any()
        assert truncated.tolist() == [t == n_steps - 1] * 2
        rows.append(obs)
        rewards.append(reward)
        equity.append(info["equity"])
    rows, rewards, equity = torch.stack(rows[:-1]), torch.stack(rewards), torch.stack(equity)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    for i, start in enumerate(starts):
        g_rows, g_rewards, g_equity = _run_gym(ASSETS[0], actions[:, i], start, **kwargs)
        np.testing.assert_allclose(equity[:, i].numpy(), g_equity, rtol=1e-12)
        np.testing.assert_allclose(rewards[:, i].numpy(), g_rewards, rtol=tol, atol=tol)
        np.testing.assert_allclose(rows[:, i].numpy(), g_rows[:-1], rtol=1e-6, atol=1e-7)
    assert abs(equity[-1, 0].item() - 1.0) > 1e-3  # the episode actually moved equity


def test_set_tasks_windows_and_auto_reset_replay():
    env = VectorTradingEnv(ASSETS, 3, window=8, fees=0.0, slippage=0.0, device="cpu", final_obs=True)
    first_obs, _ = env.set_tasks([1, 0, 1], [8, 300, 100], [2, 3, 1])
    assert [v.tolist() for v in env.tasks] == [[1, 0, 1], [8, 300, 100], [2, 3, 1]]
    seen_t, dones = [], []
    for _ in range(6):
        obs, _, terminated, truncated, info = env.step(torch.full((3,), 0.5))
        seen_t.append(info["t"].tolist())
        assert info["asset"].tolist() == [1, 0, 1]
        done = terminated | truncated
        dones.append(done.tolist())
        np.testing.assert_array_equal(obs[done].numpy(), first_obs[done].numpy())  # replayed start
        assert (obs[~done] == info["final_obs"][~done]).all()
        assert (info["final_obs"][done, -1] != 0).all()  # pre-reset obs holds the drifted position
    assert [row[0] for row in seen_t] == [8, 9, 8, 9, 8, 9]
    assert [row[1] for row in seen_t] == [300, 301, 302, 300, 301, 302]
    assert [row[2] for row in seen_t] == [100] * 6
    assert [row[2] for row in dones] == [True] * 6
    env.clear_tasks()
    _, info = env.reset(seed=1)
    assert info["t"].tolist() != [8, 300, 100]


def test_random_windows_seeded_and_within_bounds():
    def rollout(seed):
        env = VectorTradingEnv(ASSETS, 64, window=10, episode_length=20, device="cpu", seed=seed)
        obs, info = env.reset()
        out = [obs]
        starts = [info["t"]]
        for _ in range(45):
            obs, reward, terminated, truncated, info = env.step(torch.zeros(64) + 0.2)
            out.append(obs)
            assert not terminated.any()
        asset, start, length = env.tasks
        n_bars = torch.tensor([len(a) for a in ASSETS])[asset]
        assert (start >= 10).all() and (length == 20).all() and (start + length <= n_bars - 1).all()
        return torch.stack(out), torch.cat(starts)

    a, starts = rollout(0)
    b, _ = rollout(0)
    c, _ = rollout(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(set(starts.tolist())) > 30


def test_full_length_episodes_per_asset():
    env = VectorTradingEnv(ASSETS, 16, window=10, device="cpu")
    env.reset(seed=4)
    asset, start, length = env.tasks
    expected = torch.tensor([len(a) - 11 for a in ASSETS])[asset]
    assert (start == 10).all() and torch.equal(length, expected) and set(asset.tolist()) == {0, 1}


def test_vector_observations_have_no_look_ahead():
    cut, window = 120, 12
    actions = torch.as_tensor(np.stack([action_sequence(150, 8)] * 2, axis=1))
    traces = []
    for prices in (ASSETS[1], perturb_after(ASSETS[1], cut, seed=4)):
        env = VectorTradingEnv(prices, 2, window=window, features=["volume_z", "hl_range"], device="cpu",
                               dtype=torch.float64)
        obs, _ = env.set_tasks([0, 0], [window, 60], [150, 150])
        rows = [obs]
        for t in range(150):
            rows.append(env.step(actions[t])[0])
        traces.append(torch.stack(rows))
    for i, start in enumerate([window, 60]):
        known = cut - start  # row k = decision bar start + k
        assert torch.equal(traces[0][: known + 1, i], traces[1][: known + 1, i])
        assert not torch.equal(traces[0][known + 1 :, i], traces[1][known + 1 :, i])


def test_discrete_actions_and_ruin():
    env = VectorTradingEnv(ASSETS[0], 3, window=5, action="discrete", max_position=2.0, device="cpu")
    env.set_tasks([0, 0, 0], [5, 5, 5], [10, 10, 10])
    info = env.step(torch.tensor([0, 1, 2]))[4]
    assert info["position"].tolist() == [-2.0, 0.0, 2.0]
    with pytest.raises(FinMetaError, match="discrete"):
        env.step(torch.tensor([0, 3, 1]))
    crash = ASSETS[0].copy()
    crash.iloc[20:, crash.columns.get_loc("close")] *= 0.4  # a -60% bar: 2x long is ruined
    ruin = VectorTradingEnv(crash, 2, window=5, max_position=2.0, device="cpu", fees=0.0, slippage=0.0)
    ruin.set_tasks([0, 0], [19, 19], [5, 5])
    _, reward, terminated, truncated, info = ruin.step(torch.tensor([2.0, 0.5]))
    assert terminated.tolist() == [True, False] and not truncated.any()
    assert info["equity"][0] <= 0 and reward[0] == pytest.approx(np.log(1e-8))
    bar_return = crash["close"].iloc[20] / crash["close"].iloc[19] - 1.0
    assert ruin.tasks[1].tolist() == [19, 19] and info["equity"][1] == pytest.approx(1 + 0.5 * bar_return, rel=1e-12)


def test_vector_bad_inputs():
    with pytest.raises(ConfigError, match="num_envs"):
        VectorTradingEnv(ASSETS, 0)
    with pytest.raises(ConfigError, match="dtype"):
        VectorTradingEnv(ASSETS, 2, dtype=torch.int32)
    with pytest.raises(DataError, match="asset '1'"):
        VectorTradingEnv([ASSETS[0], ASSETS[1].iloc[:20]], 2)
    with pytest.raises(ConfigError, match="asset '1'"):
        VectorTradingEnv(ASSETS, 2, episode_length=400)
    with pytest.raises(DataError, match="DataFrame"):
        VectorTradingEnv(42, 2)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            VectorTradingEnv(ASSETS, 2, device="cuda")
    env = VectorTradingEnv(ASSETS, 2, window=8, device="cpu")
    with pytest.raises(FinMetaError, match="reset"):
        env.step(torch.zeros(2))
    with pytest.raises(ConfigError, match="env 1"):
        env.set_tasks([0, 1], [8, 300], [10, 100])
    with pytest.raises(ConfigError, match="asset_N"):
        env.set_tasks([0], [8], [10])
    env.reset()
    with pytest.raises(FinMetaError, match="actions"):
        env.step(torch.zeros(3))
    with pytest.raises(FinMetaError, match="finite"):
        env.step(torch.tensor([0.0, float("nan")]))
