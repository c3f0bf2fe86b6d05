"""Tasks: time splits with an embargo, label runs, held-out tasks, the regime-balanced task sampler
(start-conditioned windows by default; the legacy `windows="inside"` where a test checks it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fin_meta.errors import ConfigError, DataError
from fin_meta.regimes.segments import held_out_segments, label_runs
from fin_meta.splits import split_periods
from fin_meta.tasks import (
    Task,
    TaskSampler,
    held_out_tasks,
    tasks_from_segments,
    tasks_to_arrays,
)


def _prices(n: int, start: str = "2000-01-03") -> pd.DataFrame:
    idx = pd.bdate_range(start, periods=n, name="date")
    close = 100 * np.exp(np.cumsum(np.full(n, 1e-3)))
    return pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, index=idx
    )


def _labels(frame: pd.DataFrame, pattern: list[tuple[int, int]]) -> pd.Series:
    values = np.concatenate([np.full(n, lab) for lab, n in pattern])
    assert len(values) == len(frame)
    return pd.Series(values, index=frame.index, name="regime")


# ----------------------------------------------------------------------------- splits


def test_split_with_embargo_gap_and_validation():
    prices = _prices(300)
    idx = prices.index
    parts = split_periods(
        prices, train_end=idx[99], val_start=idx[130], test_start=idx[200], embargo=10
    )
    assert list(parts) == ["train", "val", "test"]
    assert parts["train"].index[-1] == idx[99] and parts["train"].index[0] == idx[0]
    assert parts["val"].index[0] == idx[130]
    assert parts["val"].index[-1] == idx[189]  # 10 bars (190..199) before the first test bar
    assert parts["test"].index[0] == idx[200] and parts["test"].index[-1] == idx[-1]


def test_split_exact_embargo_boundary():
    prices = _prices(100)
    idx = prices.index
    ok = split_periods(prices, train_end=idx[49], test_start=idx[55], embargo=5)
    assert len(ok["train"]) == 50 and len(ok["test"]) == 45
    with pytest.raises(ConfigError, match="embargo needs 6"):
        split_periods(prices, train_end=idx[49], test_start=idx[55], embargo=6)


def test_split_rejects_overlap_and_empty_periods():
    prices = _prices(100)
    idx = prices.index
    with pytest.raises(ConfigError, match="must be before test_start"):
        split_periods(prices, train_end=idx[60], test_start=idx[50])
    with pytest.raises(DataError, match="test period is empty"):
        split_periods(prices, train_end=idx[10], test_start="2030-01-01", embargo=0)
    with pytest.raises(DataError, match="not a date"):
        split_periods(prices, train_end="yesterday-ish", test_start=idx[50])


# ----------------------------------------------------------------------------- runs and segments


def test_label_runs_exact():
    first, last, lab = label_runs(np.array([-1, -1, 0, 0, 0, 2, 2, 0]))
    assert first.tolist() == [0, 2, 5, 7]
    assert last.tolist() == [1, 4, 6, 7]
    assert lab.tolist() == [-1, 0, 2, 0]


def test_tasks_from_segments_maps_dates_and_window():
    prices = _prices(60)
    idx = prices.index
    seg = pd.DataFrame(
        {"start": [idx[0], idx[20], idx[50]], "end": [idx[19], idx[49], idx[59]], "label": [1, 0, 1]}
    )
    tasks = tasks_from_segments(seg, asset=3, index=idx, min_length=15, window=8)
    assert tasks == [Task(3, 8, 11, 1), Task(3, 20, 29, 0)]
    with pytest.raises(DataError, match="lacks columns"):
        tasks_from_segments(seg.drop(columns="label"), 0, idx)


def test_held_out_tasks_are_whole_segments():
    prices = _prices(120)
    labels = _labels(prices, [(-1, 10), (0, 50), (1, 5), (2, 55)])
    tasks = held_out_tasks(prices, labels, window=16, min_length=20)
    # the held-out segments of `fin-meta run`: the 5-bar run of 1 is merged into its longer
    # neighbour (2, bars 60..119), so that segment starts at bar 60, not 65
    assert tasks == [Task(0, 16, 43, 0), Task(0, 60, 59, 2)]
    # one definition: the same bars as `fin-meta run`'s held-out segments
    bounds = held_out_segments(labels, 20, start=16)
    assert bounds == [(t.start, t.start + t.length + 1) for t in tasks]


# ----------------------------------------------------------------------------- sampler


def _two_assets(windows: str = "start") -> TaskSampler:
    a, b = _prices(400), _prices(300, start="2005-01-03")
    la = _labels(a, [(-1, 20), (0, 120), (1, 8), (2, 100), (0, 152)])
    lb = _labels(b, [(1, 150), (3, 10), (2, 140)])
    return TaskSampler({"A": a, "B": b}, {"A": la, "B": lb}, episode_length=30, window=16, min_segment=20,
                       windows=windows)


@pytest.fixture
def sampler() -> TaskSampler:
    return _two_assets()


@pytest.fixture
def inside() -> TaskSampler:
    """The legacy sampler (`windows="inside"`: every window inside one segment; leaks the future)."""
    return _two_assets("inside")


def test_sampler_windows_start_in_their_regime_and_run_on(sampler):
    """Default: conditioned only on the label at the start; the window's end is not chosen by
    the labels (windows that start near a segment's end cross into the next regime)."""
    rng = np.random.default_rng(0)
    asset, start, length, regime = sampler.sample_task_arrays(4000, rng)
    assert sampler.windows == "start" and (length == 30).all()
    assert (start >= sampler.window).all()
    n_bars = np.array([len(p) for p in sampler.prices])
    assert (start + length <= n_bars[asset] - 1).all()  # decisions and the settling bar fit the asset
    crosses = 0
    for a, s, n, r in zip(asset, start, length, regime, strict=True):
        lab = sampler.labels[a].to_numpy()
        assert lab[s] == r
        crosses += (lab[s : s + n + 1] != r).any()
    assert 0.1 < crosses / len(start) < 0.5  # ~30-bar windows from 100-150-bar segments
    # regime 0 on A: bars 20..139 and 248..399; starts up to the segment's last bar (not 30 bars
    # before it, as inside windows) and up to bar 369 (399 - 30, where the window fits A)
    reg0 = start[(asset == 0) & (regime == 0)]
    assert set(reg0.tolist()) <= set(range(20, 140)) | set(range(248, 370))
    assert reg0.min() == 20 and reg0.max() == 369 and ((reg0 > 109) & (reg0 <= 139)).sum() > 50


def test_sampler_task_windows_equal_stream_windows(sampler, inside):
    """`sample_task_arrays` draws what `sample_stream_arrays` draws (RL²'s `consecutive` trials
    are `stream` trials), whatever the sampler's `windows`, for the same generator state."""
    one = sampler.sample_task_arrays(500, np.random.default_rng(4), length=90)
    for other in (sampler, inside):
        two = other.sample_stream_arrays(500, np.random.default_rng(4), length=90)
        for x, y in zip(one, two, strict=True):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(ConfigError, match="windows='future'"):
        _two_assets("future")


def test_legacy_inside_windows_stay_inside_segments(inside):
    rng = np.random.default_rng(0)
    asset, start, length, regime = inside.sample_task_arrays(2000, rng)
    assert (length == 30).all()
    assert (start >= inside.window).all()
    for a, s, n, r in zip(asset, start, length, regime, strict=True):
        lab = inside.labels[a].to_numpy()
        window_labels = lab[s : s + n + 1]  # decision bars and the settling bar
        assert len(window_labels) == n + 1
        assert (window_labels == r).all()


def test_sampler_balances_regimes_and_pools_assets(sampler):
    assert sampler.regimes.tolist() == [0, 1, 2]  # label 3 (10 bars) is below min_segment
    rng = np.random.default_rng(1)
    _, _, _, regime = sampler.sample_task_arrays(10, rng)
    counts = np.bincount(regime, minlength=3)
    assert counts.min() >= 3 and counts.max() <= 4
    asset, _, _, regime = sampler.sample_task_arrays(3000, rng)
    assert set(asset.tolist()) == {0, 1}
    # regime 1 lives only on asset B (the 8-bar run on A is too short)
    assert (asset[regime == 1] == 1).all()


def test_sampler_is_deterministic_given_rng(sampler):
    one = sampler.sample_task_arrays(64, np.random.default_rng(7))
    two = sampler.sample_task_arrays(64, np.random.default_rng(7))
    other = sampler.sample_task_arrays(64, np.random.default_rng(8))
    for x, y in zip(one, two, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(one[1], other[1])
    tasks = sampler.sample_tasks(64, np.random.default_rng(7))
    for x, y in zip(tasks_to_arrays(tasks), one, strict=True):
        np.testing.assert_array_equal(x, y)


def test_sampler_longer_windows_and_errors(sampler, inside):
    # legacy: a 4-episode trial needs 121 bars inside a segment: only the 140/150/152-bar ones fit
    _, start, length, regime = inside.sample_task_arrays(200, np.random.default_rng(2), length=120)
    assert (length == 120).all() and set(regime.tolist()) == {0, 1, 2}
    with pytest.raises(DataError, match="no segment can hold a window of 200"):
        inside.sample_task_arrays(4, np.random.default_rng(0), length=200)
    # start-conditioned: 290 decisions fit only asset A (400 bars), from bars 20..109 (regime 0)
    asset, start, _, regime = sampler.sample_task_arrays(200, np.random.default_rng(2), length=290)
    assert (asset == 0).all() and (regime == 0).all() and start.min() == 20 and start.max() == 109
    assert sampler.regimes_for(290).tolist() == [0] and sampler.regimes_for(200).tolist() == [0, 1, 2]
    with pytest.raises(DataError, match="no asset holds a window of 500"):
        sampler.sample_task_arrays(4, np.random.default_rng(0), length=500)
    with pytest.raises(DataError, match="no labelled regime segment"):
        prices = _prices(50)
        TaskSampler(prices, _labels(prices, [(0, 10), (1, 10), (0, 30)]), episode_length=5, window=4,
                    min_segment=40)
    with pytest.raises(DataError, match="do not share the prices' index"):
        prices = _prices(50)
        TaskSampler(prices, _labels(prices, [(0, 50)]).iloc[1:], episode_length=5, window=4)


def test_sampler_draws_the_regimes_asked_for(sampler, inside):
    wanted = np.array([2, 2, 0, 1, 0] * 20)
    asset, start, _, regime = sampler.sample_task_arrays(100, np.random.default_rng(3), regimes=wanted)
    np.testing.assert_array_equal(regime, wanted)
    for a, s, r in zip(asset, start, regime, strict=True):
        assert sampler.labels[a].to_numpy()[s] == r  # starts in the regime asked for
    asset, start, _, regime = inside.sample_task_arrays(100, np.random.default_rng(3), regimes=wanted)
    np.testing.assert_array_equal(regime, wanted)
    for a, s, r in zip(asset, start, regime, strict=True):
        assert (inside.labels[a].to_numpy()[s : s + 31] == r).all()  # legacy: all inside
    for smp in (sampler, inside):
        with pytest.raises(DataError, match="available: \\[0, 1, 2\\]"):
            smp.sample_task_arrays(2, np.random.default_rng(3), regimes=np.array([0, 3]))


def test_stream_windows_start_in_a_regime_and_may_cross_into_the_next() -> None:
    labels = pd.Series(np.repeat([0, 1, 0, 2, 1], 50))
    prices = pd.DataFrame({"close": np.linspace(100, 120, 250)})
    sampler = TaskSampler(prices, labels, episode_length=10, window=5, min_segment=20)
    rng = np.random.default_rng(0)
    asset, start, length, regime = sampler.sample_stream_arrays(4000, rng, length=60)
    assert (asset == 0).all() and (length == 60).all()
    assert (start >= 5).all() and (start + 60 <= 249).all()  # fits the asset with a settling bar
    np.testing.assert_array_equal(labels.to_numpy()[start], regime)  # starts inside its regime
    counts = np.bincount(regime, minlength=3)
    assert counts.min() >= 1300  # regimes balanced
    crosses = labels.to_numpy()[start + 59] != regime
    assert crosses.mean() > 0.5  # 60-bar windows from 50-bar segments mostly end in another regime
    with pytest.raises(DataError, match="no asset holds"):
        sampler.sample_stream_arrays(4, rng, length=245)
