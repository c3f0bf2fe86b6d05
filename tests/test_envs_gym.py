"""TradingEnv: gymnasium API, registration, accounting by hand, rewards, no look-ahead, errors."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

from fin_meta.envs import ENV_ID, EnvConfig, TradingEnv, observation_features, observation_size
from fin_meta.envs.features import FEATURES
from fin_meta.errors import ConfigError, DataError, FinMetaError
from tests.test_envs_support import make_prices, perturb_after

PRICES = make_prices(400, seed=1)


def _check(env: gymnasium.Env) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")  # unbounded feature Box
        warnings.filterwarnings("ignore", message=".*render modes.*")
        check_env(env)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"action": "discrete", "reward": "differential_sharpe", "features": list(FEATURES), "episode_length": 50},
        {"allow_short": False, "max_position": 0.5, "window": 4},
    ],
)
def test_check_env_passes(kwargs):
    _check(TradingEnv(PRICES, **kwargs))


def test_gymnasium_make_and_registration():
    env = gymnasium.make(ENV_ID, prices=PRICES, window=16, fees=1e-3)
    assert env.unwrapped.config.window == 16 and env.unwrapped.config.fees == 1e-3
    obs, info = env.reset(seed=3)
    assert obs.shape == (observation_size(EnvConfig(window=16)),) and info["equity"] == 1.0
    _check(env.unwrapped)


def test_registration_waits_for_gymnasium_import_and_stays_light():
    code = (
        "import sys, fin_meta, fin_meta.envs\n"
        "heavy = [m for m in ('gymnasium', 'torch', 'vectorbt', 'mlflow') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import gymnasium\n"
        "assert 'fin_meta/Trading-v0' in gymnasium.envs.registry\n"
        "import importlib.resources, inspect\n"
        "assert inspect.getsource(gymnasium) and importlib.resources.files('gymnasium').is_dir()\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_hand_computed_episode():
    close = np.array([100.0, 100.0, 110.0, 99.0, 99.0, 108.9])
    prices = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": np.ones(6)},
        index=pd.bdate_range("2020-01-01", periods=6, name="date"),
    )
    env = TradingEnv(prices, window=1, fees=4e-4, slippage=6e-4)
    obs, info = env.reset(options={"start": 1, "length": 4})
    assert info["date"] == prices.index[1] and info["equity"] == 1.0 and obs[-1] == 0.0
    # targets 1, -1, -1, 0.5 held over returns +10%, -10%, 0%, +10%; cost 0.001 per unit traded
    growths = [0.999 * 1.1, 0.998 * 1.1, (1 - 0.001 * 2 / 11) * 1.0, (1 - 0.001 * 1.5) * 1.05]
    drifted = [1.0, -0.9 / 1.1, -1.0, 0.5 * 1.1 / 1.05]
    equity = 1.0
    for step, action in enumerate([1.0, -1.0, -1.0, 0.5]):
        obs, reward, terminated, truncated, info = env.step(np.array([action], dtype=np.float32))
        equity *= growths[step]
        assert info["date"] == prices.index[1 + step]
        assert info["equity"] == pytest.approx(equity, rel=1e-12)
        assert reward == pytest.approx(np.log(growths[step]), rel=1e-9)
        assert obs[-1] == pytest.approx(drifted[step], rel=1e-6)
        assert obs[0] == pytest.approx(np.log(close[2 + step] / close[1 + step]), rel=1e-6)
        assert (terminated, truncated) == (False, step == 3)
    assert info["cost"] == pytest.approx(0.0015) and info["traded"] == pytest.approx(1.5)
    with pytest.raises(FinMetaError, match="reset"):
        env.step(np.array([0.0], dtype=np.float32))


def test_reset_windows_and_seeds():
    env = TradingEnv(PRICES, window=10, episode_length=30)
    starts = [env.reset(seed=s)[1]["t"] for s in range(20)]
    assert min(starts) >= 10 and max(starts) <= len(PRICES) - 1 - 30 and len(set(starts)) > 5
    assert env.reset(seed=7)[1]["t"] == env.reset(seed=7)[1]["t"]
    _, info = env.reset(options={"start": 100, "length": 3})
    assert info["t"] == 100
    steps = 0
    while True:
        _, _, terminated, truncated, info = env.step(np.array([0.3], dtype=np.float32))
        steps += 1
        if terminated or truncated:
            break
    assert steps == 3 and info["t"] == 102
    full = TradingEnv(PRICES, window=10)
    assert full.reset()[1]["t"] == 10


def test_discrete_and_long_only_actions():
    env = TradingEnv(PRICES, window=5, action="discrete", max_position=0.5, fees=0.0, slippage=0.0)
    env.reset(options={"start": 5})
    assert [env.step(a)[4]["position"] for a in (0, 1, 2)] == [-0.5, 0.0, 0.5]
    long_only = TradingEnv(PRICES, window=5, allow_short=False)
    long_only.reset(options={"start": 5})
    assert long_only.step(np.array([-0.7], dtype=np.float32))[4]["position"] == 0.0
    assert long_only.step(np.array([3.0], dtype=np.float32))[4]["position"] == 1.0


def test_differential_sharpe_matches_per_step_reference():
    eta = 0.1
    env = TradingEnv(PRICES, window=5, reward="differential_sharpe", dsr_eta=eta, fees=1e-3, slippage=0.0)
    env.reset(options={"start": 5, "length": 60})
    actions = np.sin(np.arange(60) / 3.0)
    mean = second = 0.0
    previous = 1.0
    for action in actions:
        _, reward, _, _, info = env.step(np.array([action], dtype=np.float32))
        ret = info["equity"] / previous - 1.0
        previous = info["equity"]
        var = second - mean**2
        expected = 0.0 if var < 1e-12 else (second * (ret - mean) - 0.5 * mean * (ret**2 - second)) / var**1.5
        assert reward == pytest.approx(expected, rel=1e-7, abs=1e-12)
        mean, second = mean + eta * (ret - mean), second + eta * (ret**2 - second)
    assert mean != 0.0


def test_features_are_causal():
    features = list(FEATURES)
    base = observation_features(PRICES, 20, features)
    assert base.shape == (len(PRICES), 1 + len(features)) and np.isfinite(base).all()
    for bar in (25, 200, 398):
        moved = observation_features(perturb_after(PRICES, bar, seed=bar), 20, features)
        np.testing.assert_array_equal(moved[: bar + 1], base[: bar + 1])
        assert not np.array_equal(moved[bar + 1 :], base[bar + 1 :])


def test_lag_product_reads_the_sign_of_autocorrelation():
    """`lag_product` is r[t] * r[t-1] / vol: negative on a zig-zag, positive on a steady trend."""
    index = pd.bdate_range("2020-01-01", periods=60)
    zigzag = 100 * np.exp(np.cumsum(np.where(np.arange(60) % 2 == 0, 0.01, -0.01)))
    trend = 100 * np.exp(np.cumsum(0.01 + 0.002 * np.sin(np.arange(60))))
    for close, sign in ((zigzag, -1), (trend, 1)):
        prices = pd.DataFrame({c: close for c in ("open", "high", "low", "close")}, index=index).assign(volume=1.0)
        value = observation_features(prices, 10, ["lag_product"])[:, 1]
        assert (np.sign(value[12:]) == sign).all()
        r = np.diff(np.log(close))
        assert value[30] == pytest.approx(r[29] * r[28] / r[20:30].std())


def test_env_observations_and_rewards_have_no_look_ahead():
    cut = 150
    kwargs = {"window": 12, "features": ["realised_vol", "volume_z"], "fees": 1e-3}
    actions = np.cos(np.arange(200) / 5.0)
    traces = []
    for prices in (PRICES, perturb_after(PRICES, cut, seed=9)):
        env = TradingEnv(prices, **kwargs)
        obs, _ = env.reset(options={"start": 12, "length": 200})
        rows, rewards = [obs], []
        for action in actions:
            obs, reward, *_ = env.step(np.array([action], dtype=np.float32))
            rows.append(obs)
            rewards.append(reward)
        traces.append((np.array(rows), np.array(rewards)))
    # row k is the observation at decision bar 12 + k; reward k settles at close 13 + k
    known = cut - 12
    np.testing.assert_array_equal(traces[0][0][: known + 1], traces[1][0][: known + 1])
    np.testing.assert_array_equal(traces[0][1][:known], traces[1][1][:known])
    assert not np.array_equal(traces[0][0][known + 1 :], traces[1][0][known + 1 :])


def test_bad_input_errors():
    with pytest.raises(ConfigError, match="windw"):
        TradingEnv(PRICES, windw=5)
    with pytest.raises(ConfigError, match="reward"):
        TradingEnv(PRICES, reward="sharpe")
    with pytest.raises(ConfigError, match="features"):
        TradingEnv(PRICES, features=["rsi"])
    with pytest.raises(DataError, match="bars"):
        TradingEnv(PRICES.iloc[:20], window=32)
    with pytest.raises(DataError, match="close"):
        TradingEnv(PRICES.drop(columns="close"))
    bad = PRICES.copy()
    bad.iloc[50, bad.columns.get_loc("close")] = -1.0
    with pytest.raises(DataError, match="close"):
        TradingEnv(bad)
    with pytest.raises(ConfigError, match="episode"):
        TradingEnv(PRICES, episode_length=len(PRICES))
    env = TradingEnv(PRICES, window=8)
    with pytest.raises(ConfigError, match="start"):
        env.reset(options={"start": 3})
    with pytest.raises(ConfigError, match="options"):
        env.reset(options={"begin": 10})
    env.reset()
    with pytest.raises(FinMetaError, match="finite"):
        env.step(np.array([np.nan], dtype=np.float32))
    discrete = TradingEnv(PRICES, action="discrete")
    discrete.reset()
    with pytest.raises(FinMetaError, match="discrete"):
        discrete.step(3)


def test_ruin_ends_the_episode_at_zero_equity():
    """A 2x short through a price that doubles: growth < 0; equity is 0 (not negative) and the
    episode terminates; the vector env reports the same zero equity."""
    close = np.array([100.0, 100.0, 200.0, 150.0, 100.0])
    prices = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": np.ones(5)},
        index=pd.bdate_range("2020-01-01", periods=5, name="date"),
    )
    kwargs = dict(window=1, fees=0.0, slippage=0.0, max_position=2.0)
    env = TradingEnv(prices, **kwargs)
    env.reset(options={"start": 1, "length": 3})
    _, _, terminated, truncated, info = env.step(np.array([-2.0], dtype=np.float32))
    assert terminated and not truncated and info["equity"] == 0.0
    with pytest.raises(FinMetaError, match="reset"):
        env.step(np.array([0.0], dtype=np.float32))

    import torch

    from fin_meta.envs import VectorTradingEnv

    venv = VectorTradingEnv(prices, 1, device="cpu", **kwargs)
    venv.set_tasks([0], [1], [3])
    _, _, v_terminated, _, v_info = venv.step(torch.tensor([-2.0]))
    assert bool(v_terminated[0]) and float(v_info["equity"][0]) == 0.0
