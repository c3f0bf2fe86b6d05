"""Tasks never see their future (DESIGN.md): training windows drawn by regime must carry no more
information about what follows their support window than windows drawn without labels.

On S&P 500 1999-2012 with hindsight `trend_vol` labels merged as the pipeline merges them, the
correlation of a task's support and query 63-bar log returns (4,000 windows, seed 0) is ~0.16
with the default start-conditioned sampler, ~0.58 with the legacy `windows="inside"` sampler,
against 0.146 over every unlabelled window; the sampling noise of one estimate (bootstrap SE) is
~0.02, so the legacy sampler fails this check by ~20 standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from fin_meta.data import load_prices
from fin_meta.regimes import detect_regimes
from fin_meta.regimes.segments import merged_labels
from fin_meta.tasks import TaskSampler

SUPPORT = QUERY = 63  # bars: a quarter each
WINDOW = 32  # bars of observation warm-up (the env's default window)
N_TASKS = 4000
MIN_LENGTH = 20  # bars: runs shorter than this are merged (the pipeline's default)


@pytest.fixture(scope="module")
def market() -> tuple[np.ndarray, TaskSampler, TaskSampler]:
    """Log closes of S&P 500 1999-2012 and two samplers on its merged hindsight labels:
    the default (`windows="start"`) and the legacy one (`windows="inside"`)."""
    prices = load_prices("sample:sp500", start="1999-01-01", end="2012-12-31")
    hindsight = detect_regimes(prices, method="trend_vol", causal=False, fit_end=prices.index[-1])
    labels = merged_labels(hindsight, MIN_LENGTH)
    made = [TaskSampler(prices, labels, episode_length=SUPPORT, window=WINDOW, min_segment=MIN_LENGTH,
                        windows=mode) for mode in ("start", "inside")]
    return np.log(prices["close"].to_numpy()), made[0], made[1]


def _support_query(log_close: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Support (bars start..start+63) and query (the next 63 bars) log returns of each window."""
    mid = start + SUPPORT
    return log_close[mid] - log_close[start], log_close[mid + QUERY] - log_close[mid]


def _corr_and_se(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """Pearson correlation of the pairs and its bootstrap standard error (200 resamples): the
    draws are i.i.d., the returns fat-tailed, so the normal-theory (1 - r^2)/sqrt(n) is too small."""
    idx = rng.integers(0, len(x), (200, len(x)))
    xs, ys = x[idx], y[idx]
    xs, ys = xs - xs.mean(1, keepdims=True), ys - ys.mean(1, keepdims=True)
    boot = (xs * ys).sum(1) / np.sqrt((xs**2).sum(1) * (ys**2).sum(1))
    return float(np.corrcoef(x, y)[0, 1]), float(boot.std())


def _unlabelled(log_close: np.ndarray) -> float:
    """Support / query correlation over every window that fits (uniform starts, no labels)."""
    start = np.arange(WINDOW, len(log_close) - 1 - SUPPORT - QUERY + 1)
    return float(np.corrcoef(*_support_query(log_close, start))[0, 1])


def _sampled(sampler: TaskSampler, log_close: np.ndarray, seed: int) -> tuple[float, float]:
    """Correlation (and its SE) of N_TASKS support + query windows drawn by `sampler`."""
    rng = np.random.default_rng(seed)
    _, start, _, _ = sampler.sample_task_arrays(N_TASKS, rng, length=SUPPORT + QUERY)
    return _corr_and_se(*_support_query(log_close, start), rng)


def test_default_tasks_are_no_more_predictable_than_unlabelled_windows(market):
    log_close, default, _ = market
    base = _unlabelled(log_close)
    corr, se = _sampled(default, log_close, seed=0)
    assert 0.01 < se < 0.05  # the noise the bound is made of
    assert abs(corr - base) < 3 * se, (corr, base, se)


def test_legacy_inside_windows_fail_the_check(market):
    """Windows kept inside one hindsight segment are conditioned on their own end: the support
    predicts the query far better than in the market itself (this check can fail)."""
    log_close, _, inside = market
    base = _unlabelled(log_close)
    corr, se = _sampled(inside, log_close, seed=0)
    assert corr - base > 10 * se and corr - base > 0.3, (corr, base, se)


def test_start_conditioned_tasks_still_balance_regimes(market):
    """Hindsight labels still group tasks: each regime (the label at the start) gets a quarter."""
    _, default, _ = market
    _, start, _, regime = default.sample_task_arrays(N_TASKS, np.random.default_rng(1),
                                                     length=SUPPORT + QUERY)
    np.testing.assert_array_equal(default.labels[0].to_numpy()[start], regime)
    counts = np.bincount(regime, minlength=4)
    assert counts.min() >= N_TASKS // 4 and counts.max() <= N_TASKS // 4 + 1
