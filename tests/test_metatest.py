"""Meta-test protocol (curves, bootstrap summary, plot) and the regime oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fin_meta.accounting import simulate
from fin_meta.agents.maml.agent import MAMLAgent
from fin_meta.agents.normalization import observation_stats
from fin_meta.data import synthetic_regimes
from fin_meta.errors import ConfigError, DataError, StrategyError
from fin_meta.metatest import adaptation_curves, segment_bounds, summarise_curves
from fin_meta.metrics import annualised_sharpe
from fin_meta.plots.adaptation import plot_adaptation
from fin_meta.regimes import segments
from fin_meta.sources.oracle import oracle_positions
from fin_meta.sources.synthetic import EASY_REGIMES, RegimeSpec
from fin_meta.tasks import held_out_tasks

COST = 1e-3


@pytest.fixture(scope="module")
def path() -> tuple[pd.DataFrame, pd.Series]:
    return synthetic_regimes(3000, seed=5, preset="easy")  # every regime visits often


# ----------------------------------------------------------------------------- oracle


def test_oracle_plays_each_regimes_policy_on_a_tiny_case() -> None:
    specs = [RegimeSpec(0, "up", 0.0, 0.01, 0.3, 10, "follow"),
             RegimeSpec(1, "down", 0.0, 0.01, -0.3, 10, "fade"),
             RegimeSpec(2, "calm", 0.001, 0.01, 0.0, 10, "long"),
             RegimeSpec(3, "wild", 0.0, 0.03, 0.0, 10, "flat"),
             RegimeSpec(4, "bear", -0.001, 0.01, 0.0, 10, "short")]
    close = [100.0, 101.0, 100.0, 102.0, 101.0, 103.0, 102.0, 104.0, 103.0]
    idx = pd.bdate_range("2020-01-01", periods=len(close), name="date")
    prices = pd.DataFrame({"close": close}, index=idx)
    labels = pd.Series([0, 0, 1, 1, 2, 3, -1, 0, 4], index=idx, name="regime")
    pos = oracle_positions(prices, labels, specs, long_position=0.5)
    # bar: 0 (no return)  1 up,follow  2 down,fade  3 up,fade  4 long  5 flat  6 unknown  7 up,follow  8 short
    assert pos.tolist() == [0.0, 1.0, 1.0, -1.0, 0.5, 0.0, 0.0, 1.0, -0.5]


def test_oracle_is_causal(path) -> None:
    prices, labels = path
    pos = oracle_positions(prices, labels, "easy")
    t = 1700
    future = prices.copy()
    future.iloc[t + 1 :, :4] *= np.exp(np.random.default_rng(0).normal(0, 0.02, len(prices) - t - 1))[:, None]
    pert = oracle_positions(future, labels, "easy")
    np.testing.assert_array_equal(pos.iloc[: t + 1].to_numpy(), pert.iloc[: t + 1].to_numpy())
    assert not pos.iloc[t + 1 :].equals(pert.iloc[t + 1 :])


def test_oracle_beats_buy_and_hold_net_of_costs(path) -> None:
    prices, labels = path
    close = prices["close"].to_numpy()
    oracle = simulate(close, oracle_positions(prices, labels, "easy").to_numpy(), COST).returns
    hold = simulate(close, np.ones(len(close)), COST).returns
    s_oracle, s_hold = annualised_sharpe(oracle), annualised_sharpe(hold)
    assert s_oracle > s_hold + 0.5 and s_oracle > 1.0


def test_oracle_rejects_bad_input(path) -> None:
    prices, labels = path
    with pytest.raises(DataError, match="index"):
        oracle_positions(prices, labels.iloc[1:])
    odd = [RegimeSpec(0, "x", 0.0, 0.01, 0.0, 10, "martingale")]
    with pytest.raises(StrategyError, match="martingale"):
        oracle_positions(prices, labels, odd)
    assert set(EASY_REGIMES) == set(labels.unique())


# ----------------------------------------------------------------------------- meta-test


def _curves(n_segments: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [("maml", s, 0, 0, 10, -1, k, 1e-4 * k + rng.normal(0, 5e-4))
            for s in range(n_segments) for k in (0, 1, 2)]
    return pd.DataFrame(rows, columns=["agent", "segment", "asset", "start", "end", "regime", "k",
                                       "mean_log_return"])


def test_summary_ci_contains_the_mean_and_narrows_with_more_segments() -> None:
    few = summarise_curves(_curves(8, 0), np.random.default_rng(1))
    many = summarise_curves(_curves(400, 0), np.random.default_rng(1))
    for summary in (few, many):
        assert ((summary["ci_low"] <= summary["mean"]) & (summary["mean"] <= summary["ci_high"])).all()
    width = lambda s: (s["ci_high"] - s["ci_low"]).to_numpy()  # noqa: E731
    assert (width(many) < 0.5 * width(few)).all()
    assert many["n_segments"].tolist() == [400, 400, 400] and many["k"].tolist() == [0, 1, 2]
    expected = _curves(400, 0).groupby("k")["mean_log_return"].mean().to_numpy()
    np.testing.assert_allclose(many["mean"].to_numpy(), expected)


def test_adaptation_curves_runs_every_agent_on_every_segment(path, tmp_path) -> None:
    prices, labels = path
    test = prices.iloc[2000:2600]
    tasks = held_out_tasks(test, labels.iloc[2000:2600], window=8, min_length=60)
    assert len(tasks) >= 2
    agents = {name: MAMLAgent(env_config={"window": 8},
                              hparams={"hidden_sizes": [8], "support_length": 20, "seed": seed})
              for name, seed in (("maml-a", 0), ("maml-b", 1))}
    stats = observation_stats([prices.iloc[:2000]], agents["maml-a"].env_config)
    for agent in agents.values():
        agent.policy.norm.set(*(torch.as_tensor(v) for v in stats))
    curves = adaptation_curves(agents, test, tasks, steps=[0, 1, 2])
    assert len(curves) == 2 * len(tasks) * 3
    assert set(curves["agent"]) == set(agents) and set(curves["k"]) == {0, 1, 2}
    assert curves["mean_log_return"].notna().all()
    assert curves["regime"].isin(list(EASY_REGIMES)).all()
    summary = summarise_curves(curves, np.random.default_rng(0), n_resamples=200)
    assert len(summary) == 6
    png = plot_adaptation(summary, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_adaptation_curves_score_every_agent_on_the_same_bars(path) -> None:
    """MAML adapts on its support window, RL² on k episodes: the meta-test still evaluates both
    from one shared bar per segment (the longest context), so their curves are comparable."""
    from fin_meta.agents import make_agent
    from fin_meta.metatest import adaptation_context

    prices, labels = path
    test = prices.iloc[2000:2600]
    tasks = held_out_tasks(test, labels.iloc[2000:2600], window=8, min_length=80)
    maml = MAMLAgent(env_config={"window": 8, "episode_length": 15},
                     hparams={"hidden_sizes": [8], "support_length": 20, "seed": 0})
    rl2 = make_agent("rl2", {"window": 8, "episode_length": 15}, {"hidden_size": 8, "encoder_size": 8, "device": "cpu"})
    agents = {"maml": maml, "rl2": rl2}
    assert maml.context_bars([0, 2]) == 20 and rl2.context_bars([0, 2]) == 30
    assert adaptation_context(agents, [0, 2]) == 30
    assert make_agent("ppo", {"window": 8}, {"device": "cpu"}).context_bars([0, 2]) == 0  # memoryless
    curves = adaptation_curves(agents, test, tasks, steps=[0, 2])
    per_segment = curves.groupby("segment")
    assert (per_segment["eval_start"].nunique() == 1).all()
    first = per_segment.first()
    np.testing.assert_array_equal(first["eval_start"], np.maximum(first["start"], 7) + 30)
    seg = first.iloc[0]
    for name, agent in agents.items():
        alone = agent.adaptation_curve(test, int(seg.start), int(seg.end), [0, 2], eval_start=int(seg.eval_start))
        got = curves[(curves["agent"] == name) & (curves["segment"] == seg.name)]
        assert got.set_index("k")["mean_log_return"].to_dict() == alone
    with pytest.raises(DataError, match="longer segments"):
        adaptation_curves(agents, test, [(100, 131)], steps=[0, 2])


def test_segment_bounds_forms_and_errors(path) -> None:
    prices, labels = path
    frame = segments(labels.iloc[:500], min_length=20)
    by_frame = segment_bounds(frame, [prices])
    assert by_frame["start"].iloc[0] == 0 and by_frame["end"].iloc[-1] == 500
    assert (by_frame["end"].to_numpy()[:-1] == by_frame["start"].to_numpy()[1:]).all()
    pairs = segment_bounds([(10, 50), (60, 90)], [prices])
    assert pairs[["start", "end"]].to_numpy().tolist() == [[10, 50], [60, 90]]
    with pytest.raises(DataError, match="inside"):
        segment_bounds([(10, 5000)], [prices])
    with pytest.raises(ConfigError, match="segment"):
        segment_bounds([3], [prices])
    with pytest.raises(ConfigError, match="steps"):
        adaptation_curves({"x": None}, prices, [(10, 50)], steps=[])
