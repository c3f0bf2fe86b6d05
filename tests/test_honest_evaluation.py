"""Paired comparisons over seeds (fin_meta.comparison) and the honest adaptation curve
(fin_meta.metatest.curve_by_time_since_change / curve_rise, regimes.segments.bars_since_change),
on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fin_meta.comparison import paired_difference_ci
from fin_meta.errors import ConfigError, DataError
from fin_meta.metatest import curve_by_time_since_change, curve_rise
from fin_meta.regimes.segments import bars_since_change


def test_bars_since_change_counts_from_each_run_start():
    labels = pd.Series([2, 2, 2, 0, 0, 1, 1, 1, 1, 2])
    assert bars_since_change(labels).tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 3, 0]
    assert bars_since_change(np.array([], dtype=np.int64)).tolist() == []


def test_identical_strategies_differ_by_nothing():
    rng = np.random.default_rng(0)
    seeds = [rng.normal(0, 0.01, 500) for _ in range(3)]
    res = paired_difference_ci(seeds, seeds, np.random.default_rng(1), n_resamples=300)
    assert res.diff == 0.0 and res.ci_low == 0.0 and res.ci_high == 0.0 and not res.excludes_zero


def test_a_real_edge_is_detected_and_noise_is_not():
    rng = np.random.default_rng(3)
    base = [rng.normal(0.0, 0.01, 1500) for _ in range(5)]
    edge = [b + 0.002 for b in base]  # +0.2 % a bar on the same bars: Sharpe up by ~3 a year
    res = paired_difference_ci(edge, base, np.random.default_rng(4), n_resamples=500)
    assert res.excludes_zero and res.ci_low > 0 and len(res.per_seed) == 5
    other = [rng.normal(0.0, 0.01, 1500) for _ in range(5)]  # unrelated noise: no claim
    res = paired_difference_ci(other, base, np.random.default_rng(4), n_resamples=500)
    assert res.ci_low < res.diff < res.ci_high and res.ci_low < 0 < res.ci_high


def test_resampling_seeds_widens_the_interval_when_seeds_disagree():
    rng = np.random.default_rng(5)
    base = [rng.normal(0.0, 0.01, 1000) for _ in range(5)]
    shifts = [0.004, -0.003, 0.003, -0.002, 0.0005]  # the training seed decides the sign
    a = [b + s for b, s in zip(base, shifts, strict=True)]
    pooled = paired_difference_ci(a, base, np.random.default_rng(6), n_resamples=800, resample_seeds=False)
    hier = paired_difference_ci(a, base, np.random.default_rng(6), n_resamples=800)
    assert (hier.ci_high - hier.ci_low) > 3 * (pooled.ci_high - pooled.ci_low)
    assert not hier.excludes_zero


def test_paired_difference_rejects_mismatched_input():
    with pytest.raises(DataError, match="same number of seeds"):
        paired_difference_ci([np.zeros(10)], [np.zeros(10), np.zeros(10)], np.random.default_rng(0))
    with pytest.raises(ConfigError, match="numpy Generator"):
        paired_difference_ci(np.zeros(10), np.zeros(10), None)  # type: ignore[arg-type]


def _adapting_returns(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """An agent that loses right after a change and earns later, and one that does not care."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n // 200) % 2, 200)
    since = bars_since_change(labels)
    learner = np.where(since < 30, -0.002, 0.002) + rng.normal(0, 0.005, since.size)
    flat = rng.normal(0.0005, 0.005, since.size)
    return pd.DataFrame({"learner": learner, "flat": flat}), since


def test_honest_curve_buckets_and_cis():
    returns, since = _adapting_returns(8000, 0)
    curve = curve_by_time_since_change(returns, since, np.random.default_rng(1), n_resamples=400)
    assert curve["bucket"].unique().tolist() == ["0-9", "10-29", "30-99", "100+"]
    n = curve[curve.agent == "learner"].set_index("bucket")["n_bars"]
    assert n.to_dict() == {"0-9": 400, "10-29": 800, "30-99": 2800, "100+": 4000}
    learner = curve[curve.agent == "learner"].set_index("bucket")
    assert (learner["ci_low"] <= learner["mean"]).all() and (learner["mean"] <= learner["ci_high"]).all()
    assert learner.loc["0-9", "ci_high"] < 0 < learner.loc["100+", "ci_low"]
    expected = returns["flat"].to_numpy()[since >= 100].mean()
    assert curve.set_index(["agent", "bucket"]).loc[("flat", "100+"), "mean"] == pytest.approx(expected)


def test_curve_rise_sees_adaptation_only_where_it_happens():
    returns, since = _adapting_returns(8000, 2)
    rise, low, high = curve_rise(returns["learner"].to_numpy(), since, np.random.default_rng(3), n_resamples=400)
    assert rise == pytest.approx(0.004, abs=0.0008) and low > 0
    rise, low, high = curve_rise(returns["flat"].to_numpy(), since, np.random.default_rng(3), n_resamples=400)
    assert low < 0 < high


def test_curve_rise_of_several_agents_is_paired():
    returns, since = _adapting_returns(8000, 2)
    table = returns[["learner", "flat", "learner"]].to_numpy()
    rises = curve_rise(table, since, np.random.default_rng(3), n_resamples=400)
    assert len(rises) == 3 and rises[0] == rises[2]  # the same resampled bars for every column
    assert rises[0][0] == pytest.approx(curve_rise(table[:, 0], since, np.random.default_rng(3))[0])
    assert rises[0][1] > 0 and rises[1][1] < 0 < rises[1][2]


def test_honest_curve_rejects_bad_input():
    returns, since = _adapting_returns(400, 0)
    with pytest.raises(DataError, match="one value per bar"):
        curve_by_time_since_change(returns, since[:-1], np.random.default_rng(0))
    with pytest.raises(ConfigError, match="starting at 0"):
        curve_by_time_since_change(returns, since, np.random.default_rng(0), buckets=[5, 10])
