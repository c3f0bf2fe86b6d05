"""Regimes: causality of every causal method, the forward filter, segments, summaries, the
chart, errors, and accuracy against the known regimes of synthetic:regimes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import fin_meta
from fin_meta.data import synthetic_regimes
from fin_meta.errors import ConfigError, DataError
from fin_meta.plots.regimes import plot_regimes
from fin_meta.regimes import (
    METHODS,
    TREND_VOL_NAMES,
    WARMUP,
    detect_regimes,
    label_accuracy,
    regime_names,
    regime_probabilities,
    regime_stats,
    regime_summary,
    segments,
)
from fin_meta.regimes.hmm import HMMParams, fit_hmm, forward_filter, hmm_features, hmm_probabilities

FAST_HMM = {"n_states": 3, "n_init": 2, "n_iter": 60}


def frame(close, start="2010-01-04") -> pd.DataFrame:
    close = np.asarray(close, dtype="float64")
    index = pd.bdate_range(start, periods=len(close), name="date")
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1e5},
        index=index,
    )


@pytest.fixture(scope="module")
def market() -> pd.DataFrame:
    """900 bars whose volatility switches between calm and wild stretches."""
    rng = np.random.default_rng(3)
    vol = np.repeat([0.006, 0.02, 0.008, 0.025, 0.007, 0.018], 150)
    drift = np.repeat([5e-4, -1e-3, 6e-4, -5e-4, 4e-4, 0.0], 150)
    return frame(100 * np.exp(np.cumsum(drift + vol * rng.standard_normal(900))))


def perturb_after(prices: pd.DataFrame, t: int, seed: int) -> pd.DataFrame:
    """Prices identical up to bar t, different afterwards."""
    rng = np.random.default_rng(seed)
    out = prices.copy()
    shock = np.exp(np.cumsum(rng.normal(0.0, 0.03, len(prices) - t - 1)))
    for col in ("open", "high", "low", "close"):
        out.iloc[t + 1 :, out.columns.get_loc(col)] *= shock
    return out


# causality --------------------------------------------------------------------------------
CAUSAL_CASES = [
    ("trend_vol", None, {}),
    ("trend_vol", "2011-06-30", {"trend_window": 21, "vol_window": 10}),
    ("hmm", "2011-06-30", FAST_HMM),
    ("hmm", None, FAST_HMM),  # fit on the first half: causal after it
]


@pytest.mark.parametrize(("method", "fit_end", "params"), CAUSAL_CASES)
def test_causal_labels_ignore_the_future(market, method, fit_end, params):
    base = detect_regimes(market, method=method, fit_end=fit_end, **params)
    assert base.attrs["causal"] is True
    first_causal = len(market) // 2 if fit_end is None and method == "hmm" else 0
    if fit_end is not None:
        first_causal = int(np.searchsorted(market.index, pd.Timestamp(fit_end), side="right"))
    changed = False
    for k, t in enumerate((first_causal + 40, first_causal + 200, len(market) - 60)):
        moved = detect_regimes(perturb_after(market, t, seed=k), method=method, fit_end=fit_end, **params)
        pd.testing.assert_series_equal(moved.iloc[: t + 1], base.iloc[: t + 1])
        changed |= not moved.iloc[t + 1 :].equals(base.iloc[t + 1 :])
    assert changed  # the perturbation was strong enough to matter after t


def test_filtered_probabilities_ignore_the_future(market):
    base = regime_probabilities(market, fit_end="2011-06-30", **FAST_HMM)
    t = 700
    moved = regime_probabilities(perturb_after(market, t, seed=9), fit_end="2011-06-30", **FAST_HMM)
    np.testing.assert_array_equal(moved.iloc[: t + 1].to_numpy(), base.iloc[: t + 1].to_numpy())
    assert not np.allclose(moved.iloc[t + 1 :].to_numpy(), base.iloc[t + 1 :].to_numpy())
    valid = base.dropna()
    np.testing.assert_allclose(valid.sum(axis=1), 1.0, atol=1e-12)
    assert base.iloc[:20].isna().all().all()  # warm-up of the 21-bar volatility feature


def test_hindsight_labels_are_marked_and_documented(market):
    labels = detect_regimes(market, causal=False)
    assert labels.attrs["causal"] is False
    assert (labels != WARMUP).all()  # centred windows shrink at the edges: every bar labelled
    smoothed = detect_regimes(market, "hmm", causal=False, **FAST_HMM)
    filtered = detect_regimes(market, "hmm", causal=True, fit_end=market.index[-1], **FAST_HMM)
    assert smoothed.attrs["causal"] is False and filtered.attrs["causal"] is True
    assert (smoothed.iloc[21:] != WARMUP).all() and (smoothed != filtered).any()
    doc = fin_meta.regimes.__doc__
    assert "HINDSIGHT" in doc and "only for grouping training tasks and for reports" in doc


# the forward filter ---------------------------------------------------------------------
def test_forward_filter_matches_a_plain_recursion():
    rng = np.random.default_rng(0)
    k, n = 3, 257
    trans = rng.dirichlet(np.ones(k) * 2, size=k)
    start = rng.dirichlet(np.ones(k))
    log_emit = rng.normal(0, 3, size=(n, k))
    expected = np.empty((n, k))
    alpha = start * np.exp(log_emit[0])
    expected[0] = alpha / alpha.sum()
    for t in range(1, n):
        alpha = (expected[t - 1] @ trans) * np.exp(log_emit[t])
        expected[t] = alpha / alpha.sum()
    got = forward_filter(np.log(start), np.log(trans), log_emit)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13)


def test_filtered_equals_hmmlearn_posterior_of_the_last_bar(market):
    """P(state_t | data up to t) is hmmlearn's smoothed posterior of the last bar of x[:t+1]."""
    params = HMMParams(**FAST_HMM)
    x = hmm_features(market["close"], params)
    x = x[np.isfinite(x).all(axis=1)]
    fitted = fit_hmm(x[:400], params)
    filtered = hmm_probabilities(fitted, x, causal=True)
    z = fitted.standardise(x)
    for t in (0, 1, 57, 399, 640, len(x) - 1):
        last = fitted.model.predict_proba(z[: t + 1])[-1][fitted.order]
        np.testing.assert_allclose(filtered[t], last, atol=1e-10)
    assert np.all(np.diff(fitted.model.means_[fitted.order, 0]) > 0)  # ordered by mean return


def test_hmm_is_seeded_and_stable_across_seeds(market):
    a = detect_regimes(market, "hmm", fit_end="2011-06-30", n_states=2, seed=0, n_init=3)
    again = detect_regimes(market, "hmm", fit_end="2011-06-30", n_states=2, seed=0, n_init=3)
    other = detect_regimes(market, "hmm", fit_end="2011-06-30", n_states=2, seed=10, n_init=3)
    pd.testing.assert_series_equal(a, again)
    assert (a == other).mean() > 0.98
    assert a.attrs["names"] == other.attrs["names"]
    assert set(a.attrs["names"]) == {0, 1}


# trend_vol against an independent implementation -----------------------------------------
def test_trend_vol_matches_a_reference(market):
    tw, vw, q = 30, 15, 0.4
    labels = detect_regimes(market, trend_window=tw, vol_window=vw, vol_quantile=q, fit_end="2011-01-31")
    log_close = np.log(market["close"].to_numpy())
    ret = np.diff(log_close)
    vol = np.full(len(log_close), np.nan)
    vol[vw:] = sliding_window_view(ret, vw).std(axis=1, ddof=1)
    trend = np.full(len(log_close), np.nan)
    trend[tw:] = log_close[tw:] - log_close[:-tw]
    fit = (market.index <= "2011-01-31") & np.isfinite(vol)
    threshold = np.quantile(vol[fit], q)
    expected = np.where(
        np.isfinite(trend) & np.isfinite(vol), 2 * (trend > 0) + (vol <= threshold), WARMUP
    )
    np.testing.assert_array_equal(labels.to_numpy(), expected)
    assert labels.name == "regime" and labels.dtype == np.int64
    assert labels.attrs["names"] == TREND_VOL_NAMES


def test_trend_vol_on_a_hand_made_path():
    """60 bars rising calmly, then 60 falling wildly: bull-calm, then bear-volatile."""
    wiggle = np.tile([1.0, -1.0], 30)
    up = 0.002 + 0.001 * wiggle
    down = -0.004 + 0.03 * wiggle
    close = 100 * np.exp(np.cumsum(np.r_[0.0, up, down][:-1]))
    prices = frame(close)
    labels = detect_regimes(prices, trend_window=10, vol_window=10, fit_end=prices.index[-1])
    names = regime_names(labels)
    assert (labels.iloc[:10] == WARMUP).all()
    assert {names[k] for k in labels.iloc[10:60]} == {"bull-calm"}
    assert {names[k] for k in labels.iloc[80:]} == {"bear-volatile"}


def test_expanding_threshold_waits_for_history(market):
    labels = detect_regimes(market, min_history=100)
    # 21-bar volatility exists from bar 21; 100 of them are needed, so bar 120 is the first
    assert (labels.iloc[:120] == WARMUP).all() and (labels.iloc[120:] != WARMUP).all()


# segments --------------------------------------------------------------------------------
def label_series(runs: list[tuple[int, int]]) -> pd.Series:
    values = np.concatenate([[label] * n for label, n in runs])
    return pd.Series(values, index=pd.bdate_range("2020-01-01", periods=len(values), name="date"))


def as_runs(seg: pd.DataFrame) -> list[tuple[int, int]]:
    return list(zip(seg["label"].tolist(), seg["n_bars"].tolist(), strict=True))


def test_segments_merge_short_runs_exactly():
    labels = label_series([(-1, 3), (0, 5), (1, 2), (0, 4), (2, 6), (1, 1), (2, 3)])
    seg = segments(labels, min_length=3)
    # (1,1) is shortest: its longer neighbour (2,6) absorbs it -> (2,10);
    # then (1,2) goes to its longer neighbour (0,5) -> (0,11)
    idx = labels.index
    expected = pd.DataFrame(
        {
            "start": [idx[0], idx[3], idx[14]],
            "end": [idx[2], idx[13], idx[23]],
            "label": [-1, 0, 2],
            "n_bars": [3, 11, 10],
        }
    )
    pd.testing.assert_frame_equal(seg, expected)
    assert as_runs(segments(labels, min_length=1)) == [(-1, 3), (0, 5), (1, 2), (0, 4), (2, 6), (1, 1), (2, 3)]


@pytest.mark.parametrize(
    ("runs", "min_length", "expected"),
    [
        ([(0, 3), (1, 1), (2, 3)], 2, [(0, 4), (2, 3)]),  # tie: the earlier neighbour wins
        ([(-1, 2), (1, 1), (0, 4)], 2, [(-1, 2), (0, 5)]),  # warm-up never absorbs
        ([(-1, 3), (2, 1)], 3, [(-1, 3), (2, 1)]),  # nothing to merge into: kept
        ([(0, 2), (1, 2), (0, 2), (1, 9)], 3, [(1, 15)]),  # cascades until all are long
        ([(3, 1)], 5, [(3, 1)]),
    ],
)
def test_segments_edge_cases(runs, min_length, expected):
    seg = segments(label_series(runs), min_length=min_length)
    assert as_runs(seg) == expected
    assert seg["n_bars"].sum() == sum(n for _, n in runs)


def test_segments_errors():
    with pytest.raises(ConfigError, match="min_length"):
        segments(label_series([(0, 3)]), min_length=0)
    with pytest.raises(DataError, match="integers without NaN"):
        segments(pd.Series([0.0, np.nan, 1.0]))


# summaries -------------------------------------------------------------------------------
def test_summary_and_stats_hand_computed():
    prices = frame([100.0, 110.0, 99.0, 99.0, 108.9])  # returns: -, .1, -.1, 0, .1
    labels = pd.Series([-1, 0, 0, 1, 1], index=prices.index, name="regime")
    labels.attrs["names"] = {0: "down", 1: "up"}
    summary = regime_summary(prices, labels, min_length=1)
    assert summary["name"].tolist() == ["warm-up", "down", "up"]
    assert summary["bars"].tolist() == [1, 2, 2]
    np.testing.assert_allclose(summary["total_return"], [0.0, 1.1 * 0.9 - 1, 0.1], atol=1e-12)
    ann = np.sqrt(252)
    np.testing.assert_allclose(
        summary["annual_volatility"].iloc[1:], [np.std([0.1, -0.1], ddof=1) * ann, np.std([0, 0.1], ddof=1) * ann]
    )
    stats = regime_stats(prices, labels)
    assert stats.index.tolist() == [0, 1] and stats["name"].tolist() == ["down", "up"]
    np.testing.assert_allclose(stats["share"], [0.5, 0.5])
    np.testing.assert_allclose(stats["annual_return"], [0.0, 0.05 * 252], atol=1e-12)
    with pytest.raises(DataError, match="same index"):
        regime_stats(prices, labels.iloc[1:])


# names, errors ---------------------------------------------------------------------------
def test_regime_names():
    assert regime_names("trend_vol") == TREND_VOL_NAMES
    assert regime_names("hmm", n_states=2) == {0: "state-0", 1: "state-1"}
    plain = pd.Series([-1, 2, 5])
    assert regime_names(plain) == {2: "regime-2", 5: "regime-5"}
    assert set(METHODS) == {"trend_vol", "hmm"}


def test_hmm_names_come_from_the_fit(market):
    labels = detect_regimes(market, "hmm", fit_end="2011-06-30", **FAST_HMM)
    names = regime_names(labels)
    assert sorted(names) == [0, 1, 2] and len(set(names.values())) == 3
    assert sum("calm" in n for n in names.values()) == 1
    assert sum("volatile" in n for n in names.values()) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"method": "kmeans"}, ConfigError, "unknown regime method 'kmeans'; valid: trend_vol, hmm"),
        ({"window": 5}, ConfigError, "no parameter.*'window'.*valid: trend_window, vol_window"),
        ({"trend_window": 1}, ConfigError, "'trend_window' must be an integer >= 2"),
        ({"vol_quantile": 1.5}, ConfigError, "'vol_quantile' must be in \\(0, 1\\)"),
        ({"method": "hmm", "n_states": 1}, ConfigError, "'n_states' must be an integer >= 2"),
        ({"fit_end": "1990-01-01"}, DataError, "fit_end 1990-01-01 is before the first bar"),
        ({"fit_end": "someday"}, DataError, "regimes: cannot read fit_end='someday' as a date"),
        ({"method": "hmm", "fit_end": "someday"}, DataError, "cannot read fit_end='someday' as a date"),
        ({"fit_end": "2010-02-01"}, DataError, "needs 63"),
        ({"method": "hmm", "fit_end": "2010-03-01"}, DataError, "hmm fit period has .* usable bars"),
    ],
)
def test_bad_input(market, kwargs, error, message):
    with pytest.raises(error, match=message):
        detect_regimes(market, **kwargs)


def test_bad_prices():
    with pytest.raises(DataError, match="'close'"):
        detect_regimes(pd.DataFrame({"price": [1.0, 2.0]}))
    broken = frame([1.0, 2.0, -3.0])
    with pytest.raises(DataError, match="non-positive at 2010-01-06"):
        detect_regimes(broken)


# chart -----------------------------------------------------------------------------------
def test_plot_regimes_writes_a_png(market, tmp_path):
    labels = detect_regimes(market)
    path = plot_regimes(market, labels, tmp_path / "out" / "regimes.png", title="test")
    data = path.read_bytes()
    assert path.exists() and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in path.parent.iterdir()] == ["regimes.png"]  # no temp file left
    with pytest.raises(DataError, match="prices index"):
        plot_regimes(market, labels.iloc[5:], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


# accuracy on known regimes ---------------------------------------------------------------
def test_label_accuracy_uses_the_best_matching():
    truth = label_series([(0, 4), (1, 4), (-1, 2)])
    detected = pd.Series([5, 5, 5, 7, 7, 7, 7, 7, 5, 5], index=truth.index)
    assert label_accuracy(truth, detected) == pytest.approx(7 / 8)  # 5->0, 7->1; warm-up left out


def test_accuracy_against_synthetic_ground_truth():
    """Fit on the first half of each path, label the second half causally, compare with the
    true regimes (4 of them: uniform chance 0.25; a constant label scores the majority share)."""
    scores: dict[str, list[float]] = {"trend_vol": [], "hmm": [], "majority": []}
    for seed in (0, 1, 2):
        prices, truth = synthetic_regimes(4000, seed, preset="easy")
        fit_end = prices.index[1999]
        test = slice(2000, None)
        scores["majority"].append(truth.iloc[test].value_counts(normalize=True).max())
        for method, params in (("trend_vol", {}), ("hmm", {"n_states": 4})):
            labels = detect_regimes(prices, method=method, fit_end=fit_end, **params)
            scores[method].append(label_accuracy(truth.iloc[test], labels.iloc[test]))
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    print(f"causal accuracy on synthetic:regimes (3 paths, test halves): {mean}")
    assert mean["hmm"] > 0.6 and mean["hmm"] > mean["majority"] + 0.1
    assert mean["trend_vol"] > 0.45 and mean["trend_vol"] > 0.25 + 0.2
