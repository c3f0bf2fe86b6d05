"""Cost-aware actions in both envs: partial adjustment, the no-trade band, hold (hand-computed),
training cost pressure (rewards only, never equity), spaces, no look-ahead, errors. The
agreement with `simulate()` and `backtest()` is in `test_envs_equivalence.py`."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from fin_meta.envs import TradingEnv, VectorTradingEnv
from fin_meta.envs.actions import held_position
from fin_meta.envs.config import EnvConfig
from fin_meta.envs.ledger import ScalarOps
from fin_meta.errors import ConfigError, FinMetaError
from tests.test_envs_support import action_sequence, make_prices, perturb_after

PRICES = make_prices(300, seed=21)
CLOSE = np.array([100.0, 100.0, 110.0, 99.0, 99.0, 108.9])  # returns +10%, -10%, 0%, +10%
HAND = pd.DataFrame({"open": CLOSE, "high": CLOSE, "low": CLOSE, "close": CLOSE, "volume": np.ones(6)},
                    index=pd.bdate_range("2020-01-01", periods=6, name="date"))


def _drift(w: float, r: float) -> float:
    return w * (1 + r) / (1 + w * r)


def _play(actions, **kwargs) -> list[dict]:
    env = TradingEnv(HAND, window=1, fees=4e-4, slippage=6e-4, **kwargs)
    env.reset(options={"start": 1, "length": len(actions)})
    return [env.step(a)[4] for a in actions]


@pytest.mark.parametrize("kwargs", [
    {"no_trade_band": True},
    {"no_trade_band": True, "adjust": 0.5, "allow_short": False, "max_position": 0.5, "train_cost_multiplier": 3.0},
    {"action": "discrete_hold", "reward": "differential_sharpe", "turnover_penalty": 1e-3},
    {"adjust": 0.2},
])
def test_check_env_passes(kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")
        warnings.filterwarnings("ignore", message=".*render modes.*")
        check_env(TradingEnv(PRICES, window=8, **kwargs))
        check_env(TradingEnv(PRICES, window=8, training=True, **kwargs))


def test_partial_adjustment_by_hand():
    infos = _play([np.array([1.0], np.float32)] * 3 + [np.array([0.0], np.float32)], adjust=0.5)
    w0 = 0.5  # halfway from flat to long
    d1 = _drift(w0, 0.1)
    w1 = d1 + 0.5 * (1.0 - d1)
    d2 = _drift(w1, -0.1)
    w2 = d2 + 0.5 * (1.0 - d2)
    w3 = 0.5 * _drift(w2, 0.0)  # halfway to flat
    for info, w, d in zip(infos, [w0, w1, w2, w3], [0.0, d1, d2, _drift(w2, 0.0)], strict=True):
        assert info["position"] == pytest.approx(w, rel=1e-12)
        assert info["traded"] == pytest.approx(abs(w - d), rel=1e-12)
    growth = [(1 - 1e-3 * abs(w - d)) * (1 + w * r)
              for w, d, r in zip([w0, w1, w2, w3], [0.0, d1, d2, _drift(w2, 0.0)], [0.1, -0.1, 0.0, 0.1], strict=True)]
    assert infos[-1]["equity"] == pytest.approx(math.prod(growth), rel=1e-12)


def test_no_trade_band_by_hand():
    band = [np.array(a, np.float32) for a in ([0.5, 0.25], [0.5, 0.25], [-1.0, 0.5], [0.0, -3.0])]
    infos = _play(band, no_trade_band=True)
    d1 = _drift(0.25, 0.1)  # 0.268..., inside [0.25, 0.75]: no trade
    d2 = _drift(d1, -0.1)
    assert infos[0]["position"] == 0.25 and infos[0]["traded"] == 0.25
    assert infos[1]["position"] == d1 and infos[1]["traded"] == 0.0 and infos[1]["cost"] == 0.0
    assert infos[2]["position"] == -0.5 and infos[2]["traded"] == pytest.approx(d2 + 0.5, rel=1e-12)
    assert infos[3]["position"] == 0.0  # a negative half-width is a closed band: trade to the target
    assert infos[3]["traded"] == 0.5


def test_hold_keeps_the_drifted_weight_within_the_bounds():
    infos = _play([1, 2, 3, 3], action="discrete_hold", max_position=0.5)
    assert [i["position"] for i in infos[:2]] == [0.0, 0.5]
    held = _drift(0.5, -0.1)  # long 0.5 over a -10% bar
    assert infos[2]["position"] == held and infos[2]["traded"] == 0.0 and infos[2]["cost"] == 0.0
    assert infos[3]["position"] == _drift(held, 0.0) and infos[3]["traded"] == 0.0
    # a short over a +10% bar drifts to -0.58: hold keeps it, clipped to the -0.5 bound
    infos = _play([0, 3, 2, 3], action="discrete_hold", max_position=0.5)
    assert _drift(-0.5, 0.1) < -0.5 and infos[1]["position"] == -0.5
    assert infos[1]["traded"] == pytest.approx(-0.5 - _drift(-0.5, 0.1), rel=1e-12)
    assert infos[3]["position"] == 0.5 and infos[3]["traded"] == 0.0
    cfg = EnvConfig(action="discrete_hold", max_position=2.0, adjust=0.5)
    assert held_position(2.25, 2.25, None, cfg, ScalarOps) == 2.0  # clipped, even half way


def test_training_cost_pressure_shapes_rewards_only():
    actions = action_sequence(120, seed=3).astype(np.float32)
    kwargs = {"window": 8, "fees": 5e-4, "slippage": 5e-4, "adjust": 0.5}
    shaping = {"train_cost_multiplier": 5.0, "turnover_penalty": 2e-3}
    runs = {}
    for training in (False, True):
        env = TradingEnv(PRICES, training=training, **kwargs, **shaping)
        env.reset(options={"start": 8, "length": 120})
        steps = [env.step(np.array([a], np.float32)) for a in actions]
        runs[training] = ([s[1] for s in steps], [s[4] for s in steps])
    plain = TradingEnv(PRICES, **kwargs)
    plain.reset(options={"start": 8, "length": 120})
    plain_rewards = [plain.step(np.array([a], np.float32))[1] for a in actions]
    (true_rewards, true_infos), (shaped_rewards, shaped_infos) = runs[False], runs[True]
    assert true_rewards == plain_rewards  # deployment envs charge the true costs
    for key in ("position", "equity", "cost", "traded"):
        assert [i[key] for i in true_infos] == [i[key] for i in shaped_infos]
    cost = 1e-3
    for reward, info, true in zip(shaped_rewards, shaped_infos, true_rewards, strict=True):
        hold = math.exp(true) / (1 - cost * info["traded"])  # 1 + w r
        expected = math.log((1 - 5 * cost * info["traded"]) * hold) - 2e-3 * info["traded"]
        assert reward == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert sum(shaped_rewards) < sum(true_rewards) - 0.05
    venv = VectorTradingEnv(PRICES, 1, device="cpu", dtype=torch.float64, training=True, **kwargs, **shaping)
    venv.set_tasks([0], [8], [120])
    v_rewards = [float(venv.step(torch.tensor([a]))[1][0]) for a in actions]
    np.testing.assert_allclose(v_rewards, shaped_rewards, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("options", [{"no_trade_band": True, "adjust": 0.4}, {"action": "discrete_hold", "adjust": 0.7}])
def test_no_look_ahead_with_cost_aware_actions(options):
    cut, window, n = 150, 10, 200
    rng = np.random.default_rng(5)
    if options.get("no_trade_band"):
        actions = torch.as_tensor(np.stack([action_sequence(n, 6), rng.uniform(0, 0.5, n)], axis=1))
    else:
        actions = torch.as_tensor(rng.integers(0, 4, n))
    traces = []
    for prices in (PRICES, perturb_after(PRICES, cut, seed=2)):
        env = VectorTradingEnv(prices, 1, window=window, device="cpu", dtype=torch.float64, **options)
        obs, _ = env.set_tasks([0], [window], [n])
        rows, held, rewards = [obs], [], []
        for t in range(n):
            obs, reward, _, _, info = env.step(actions[t : t + 1])
            rows.append(obs)
            held.append(info["position"])
            rewards.append(reward)
        traces.append([torch.cat(v) for v in (rows, held, rewards)])
    known = cut - window  # decision bar window + k is row k
    assert torch.equal(traces[0][0][: known + 1], traces[1][0][: known + 1])
    assert torch.equal(traces[0][1][: known + 1], traces[1][1][: known + 1])
    assert torch.equal(traces[0][2][:known], traces[1][2][:known])
    assert not torch.equal(traces[0][1][known + 1 :], traces[1][1][known + 1 :])


def test_spaces_and_errors():
    band = TradingEnv(PRICES, no_trade_band=True, max_position=0.5)
    assert band.action_space.shape == (2,) and band.action_space.high.tolist() == [0.5, 0.5]
    assert band.action_space.low.tolist() == [-0.5, 0.0]
    assert TradingEnv(PRICES, action="discrete_hold").action_space.n == 4
    venv = VectorTradingEnv(PRICES, 2, no_trade_band=True, device="cpu")
    assert venv.single_action_space.shape == (2,)
    venv.reset()
    with pytest.raises(FinMetaError, match="2 numbers per action"):
        venv.step(torch.zeros(2))
    with pytest.raises(FinMetaError, match="finite"):
        venv.step(torch.tensor([[0.0, 0.1], [float("nan"), 0.1]]))
    band.reset()
    with pytest.raises(FinMetaError, match="target, half-width"):
        band.step(np.array([0.5], np.float32))
    hold = VectorTradingEnv(PRICES, 2, action="discrete_hold", device="cpu")
    hold.reset()
    with pytest.raises(FinMetaError, match="3 \\(hold\\)"):
        hold.step(torch.tensor([4, 0]))
    for bad, match in (({"no_trade_band": True, "action": "discrete"}, "no_trade_band"), ({"adjust": 0.0}, "adjust"),
                       ({"adjust": 1.5}, "adjust"), ({"train_cost_multiplier": 0.5}, "train_cost_multiplier"),
                       ({"turnover_penalty": -1.0}, "turnover_penalty")):
        with pytest.raises(ConfigError, match=match):
            TradingEnv(PRICES, **bad)
