"""synthetic:regimes: seeded, and its presets have the properties they promise: `easy` (the
original regimes, told apart by volatility) and `context` (the default: equal volatility, the
regime readable from the whole past but hardly from a short window)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fin_meta.data import RegimeSpec, synthetic_regimes
from fin_meta.errors import DataError
from fin_meta.regimes.bayes import filtered_labels, regime_posterior
from fin_meta.sources.synthetic import CONTEXT_REGIMES, EASY_REGIMES, SYNTHETIC_REGIMES

N_LONG = 40_000


@pytest.fixture(scope="module")
def long_path() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    prices, labels = synthetic_regimes(N_LONG, seed=11, preset="easy")
    log_ret = np.log(prices["close"]).diff()
    return prices, labels, log_ret


def _within(labels: pd.Series, log_ret: pd.Series, label: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (r[t-1], r[t]) with both bars in `label`."""
    same = ((labels == label) & (labels.shift() == label)).to_numpy().copy()
    same[:2] = False
    return log_ret.shift().to_numpy()[same], log_ret.to_numpy()[same]


def test_same_seed_same_path_other_seed_other_path():
    a, la = synthetic_regimes(600, seed=5)
    b, lb = synthetic_regimes(600, seed=5)
    c, lc = synthetic_regimes(600, seed=6)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_series_equal(la, lb)
    assert not np.allclose(a["close"], c["close"])
    assert not la.equals(lc)


def test_shapes_names_and_index():
    prices, labels = synthetic_regimes(300, seed=0, start="2010-01-04")
    assert prices.shape == (300, 5) and len(labels) == 300
    assert labels.name == "regime" and labels.dtype == np.int64
    assert prices.index.equals(labels.index) and prices.index[0] == pd.Timestamp("2010-01-04")
    assert (prices.index.day_of_week < 5).all()
    assert (prices["high"] >= prices[["open", "close"]].max(axis=1)).all()
    assert (prices["low"] <= prices[["open", "close"]].min(axis=1)).all()
    np.testing.assert_allclose(prices["open"].iloc[1:], prices["close"].iloc[:-1])


def test_labels_cover_every_regime(long_path):
    _, labels, _ = long_path
    assert set(labels.unique()) == set(EASY_REGIMES)


def test_autocorrelation_sign_per_regime(long_path):
    _, labels, log_ret = long_path
    for label, spec in EASY_REGIMES.items():
        prev, cur = _within(labels, log_ret, label)
        rho = np.corrcoef(prev, cur)[0, 1]
        assert abs(rho - spec.phi) < 0.06, (spec.name, rho)
    trending = [s for s in EASY_REGIMES.values() if s.name == "trending"][0]
    reverting = [s for s in EASY_REGIMES.values() if s.name == "mean_reverting"][0]
    assert trending.phi > 0.2 and reverting.phi < -0.2


def test_volatility_levels_are_distinct_and_as_promised(long_path):
    _, labels, log_ret = long_path
    vols = {k: log_ret[labels == k].std() for k in EASY_REGIMES}
    for k, spec in EASY_REGIMES.items():
        assert vols[k] == pytest.approx(spec.vol, rel=0.1)
    ordered = sorted(vols, key=vols.get)
    assert all(vols[b] > 1.3 * vols[a] for a, b in zip(ordered, ordered[1:], strict=False))


def test_mean_durations_match(long_path):
    _, labels, _ = long_path
    run = (labels != labels.shift()).cumsum()
    visits = labels.groupby(run).agg(["first", "size"]).iloc[1:-1]
    for k, spec in EASY_REGIMES.items():
        mean = visits.loc[visits["first"] == k, "size"].mean()
        assert 100 <= spec.mean_duration <= 250
        assert mean == pytest.approx(spec.mean_duration, rel=0.25), (spec.name, mean)


def test_best_policies_differ_between_regimes(long_path):
    """Following the last return's sign earns in trending and loses in mean-reverting bars;
    fading it does the opposite. Neither has an edge in the phi = 0 regimes."""
    _, labels, log_ret = long_path
    for label, spec in EASY_REGIMES.items():
        prev, cur = _within(labels, log_ret, label)
        follow = np.sign(prev) * cur
        t_stat = follow.mean() / follow.std() * np.sqrt(follow.size)
        if spec.best_policy == "follow":
            assert t_stat > 10
        elif spec.best_policy == "fade":
            assert t_stat < -10
        else:
            assert abs(t_stat) < 4


def test_custom_regimes_and_bad_parameters():
    one = [
        RegimeSpec(7, "only", drift=0.0, vol=0.01, phi=0.5, mean_duration=50, best_policy="follow")
    ]
    _, labels = synthetic_regimes(200, seed=1, regimes=one)
    assert set(labels) == {7}
    with pytest.raises(DataError, match="n_bars must be an integer >= 2"):
        synthetic_regimes(1)
    with pytest.raises(DataError, match=r"-1 < phi < 1"):
        synthetic_regimes(100, regimes=[RegimeSpec(0, "x", 0.0, 0.01, 1.0, 10, "follow")])
    with pytest.raises(DataError, match="cannot read start"):
        synthetic_regimes(100, start="someday")


def test_no_global_random_state_is_used():
    np.random.seed(0)
    a, _ = synthetic_regimes(300, seed=2)
    np.random.seed(1)
    b, _ = synthetic_regimes(300, seed=2)
    pd.testing.assert_frame_equal(a, b)


def test_default_preset_is_context():
    assert SYNTHETIC_REGIMES is CONTEXT_REGIMES
    a, la = synthetic_regimes(400, seed=3)
    b, lb = synthetic_regimes(400, seed=3, preset="context")
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(DataError, match="unknown preset 'hard'.*context.*easy"):
        synthetic_regimes(100, preset="hard")
    with pytest.raises(DataError, match="either preset or regimes"):
        synthetic_regimes(100, preset="easy", regimes=EASY_REGIMES)


def test_context_preset_regimes_differ_only_in_drift_or_autocorrelation_sign():
    prices, labels = synthetic_regimes(N_LONG, seed=12)
    log_ret = np.log(prices["close"]).diff()
    specs = list(CONTEXT_REGIMES.values())
    assert len({s.vol for s in specs}) == 1 and len({s.mean_duration for s in specs}) == 1
    for label, spec in CONTEXT_REGIMES.items():
        prev, cur = _within(labels, log_ret, label)
        assert cur.std() == pytest.approx(spec.vol, rel=0.05), spec.name
        assert np.corrcoef(prev, cur)[0, 1] == pytest.approx(spec.phi, abs=0.06), spec.name
        assert cur.mean() == pytest.approx(spec.drift, abs=3 * spec.vol / np.sqrt(cur.size)), spec.name


def test_context_preset_needs_memory_and_easy_does_not():
    """The Bayes filter with the true parameters: on `context` the whole past identifies the
    regime >= 20 accuracy points better than the last 32 bars; on `easy` the window suffices."""
    gaps = {}
    for preset in ("context", "easy"):
        acc = {"window": [], "full": []}
        for seed in range(3):
            prices, labels = synthetic_regimes(5040, seed=seed, preset=preset)
            for key, window in (("window", 32), ("full", None)):
                guess = filtered_labels(regime_posterior(prices, preset, window=window))
                acc[key].append(float((guess == labels).mean()))
        gaps[preset] = np.mean(acc["full"]) - np.mean(acc["window"])
    assert gaps["context"] >= 0.20, gaps
    assert abs(gaps["easy"]) < 0.05, gaps
