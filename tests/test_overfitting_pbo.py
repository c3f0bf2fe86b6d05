"""The probability of backtest overfitting by CSCV (`fin_meta.overfitting.pbo`): the vectorised
version against a split-by-split reference, noise strategies (PBO near 0.5), one real edge
among noise (PBO near 0), and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from fin_meta.errors import ConfigError, DataError
from fin_meta.metrics import annualised_sharpe
from fin_meta.overfitting import probability_of_backtest_overfitting


def _reference_logits(returns: np.ndarray, n_blocks: int) -> np.ndarray:
    """CSCV written out split by split, as in the paper (ranks with scipy, ties averaged)."""
    from scipy.stats import rankdata

    length = returns.shape[0] // n_blocks
    used = returns[returns.shape[0] - n_blocks * length:]
    blocks = np.split(used, n_blocks)
    logits = []
    for chosen in itertools.combinations(range(n_blocks), n_blocks // 2):
        rest = [b for b in range(n_blocks) if b not in chosen]
        in_sample = np.concatenate([blocks[b] for b in chosen])
        out_sample = np.concatenate([blocks[b] for b in rest])
        best = int(np.argmax(annualised_sharpe(in_sample, 1.0)))
        rank = rankdata(annualised_sharpe(out_sample, 1.0))[best]
        omega = rank / (returns.shape[1] + 1)
        logits.append(np.log(omega / (1 - omega)))
    return np.array(logits)


def test_vectorised_cscv_equals_the_split_by_split_reference():
    rng = np.random.default_rng(7)
    returns = rng.normal(0.0, 0.01, (125, 5)) + np.array([0.0, 0.0005, 0.001, -0.0005, 0.0])  # 5 bars dropped
    result = probability_of_backtest_overfitting(returns, n_blocks=8)
    expected = _reference_logits(returns, 8)
    np.testing.assert_allclose(result.logits, expected, rtol=1e-9)
    assert result.pbo == pytest.approx(np.mean(expected <= 0))
    assert (result.n_splits, result.n_blocks, result.n_strategies, result.bars_used) == (70, 8, 5, 120)
    # a DataFrame gives the same; the same input gives the same result
    again = probability_of_backtest_overfitting(pd.DataFrame(returns), n_blocks=8)
    np.testing.assert_array_equal(again.logits, result.logits)


def test_noise_strategies_have_pbo_near_one_half():
    """N = 10 strategies of i.i.d. normal noise: in- and out-of-sample halves are independent,
    so the in-sample winner's out-of-sample rank is uniform and E[PBO] = 1/2 exactly. One data
    set's PBO varies a lot (sd about 0.2: its splits share the data), so the test averages 200
    data sets (seeds 0..199; sd of the mean about 0.015) and allows 0.5 +- 0.06 (4 sd)."""
    pbos = [probability_of_backtest_overfitting(np.random.default_rng(seed).normal(0.0, 0.01, (500, 10)),
                                                n_blocks=10).pbo for seed in range(200)]
    assert abs(np.mean(pbos) - 0.5) < 0.06
    assert np.std(pbos) > 0.05  # the data sets do differ (the test can see a constant answer)


def test_a_real_edge_among_noise_has_pbo_near_zero():
    """Nine noise strategies and one with a per-bar Sharpe of 0.2 (3.2 a year), T = 1000,
    S = 16, seed 0: the edge wins in sample and stays on top out of sample in nearly every
    split. PBO <= 0.05 (over seeds 0..49 the largest is 0.037)."""
    returns = np.random.default_rng(0).normal(0.0, 0.01, (1000, 10))
    returns[:, 3] += 0.002
    result = probability_of_backtest_overfitting(returns)
    assert result.n_splits == 12_870
    assert result.pbo <= 0.05
    assert np.median(result.logits) == pytest.approx(np.log(10 / 1))  # rank 10 of 10: w = 10/11
    assert result.prob_oos_loss < 0.05  # the in-sample winner rarely loses money out of sample


def test_identical_strategies_tie_at_the_median():
    """Ties share their mean rank: two identical columns always rank 1.5 of 2 -> w = 1/2,
    logit 0, which counts as overfit (logit <= 0)."""
    column = np.random.default_rng(1).normal(0.0, 0.01, (40, 1))
    result = probability_of_backtest_overfitting(np.hstack([column, column]), n_blocks=4)
    np.testing.assert_allclose(result.logits, 0.0, atol=1e-12)
    assert result.pbo == 1.0


@pytest.mark.parametrize(
    ("shape", "blocks", "error", "needle"),
    [((100, 4), 7, ConfigError, "even"), ((100, 4), 0, ConfigError, "even"), ((100, 4), 22, ConfigError, "at most"),
     ((100, 1), 4, DataError, "at least 2 strategies"), ((15, 4), 8, DataError, "too few"),
     ((100,), 4, DataError, "2-D")],
    ids=["odd", "zero", "too-many-blocks", "one-strategy", "too-few-bars", "1-d"],
)
def test_bad_input_is_one_clear_error(shape, blocks, error, needle):
    with pytest.raises(error, match=needle):
        probability_of_backtest_overfitting(np.zeros(shape) + 0.01, n_blocks=blocks)


def test_non_finite_returns_are_refused():
    returns = np.random.default_rng(2).normal(0.0, 0.01, (40, 3))
    returns[5, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        probability_of_backtest_overfitting(returns, n_blocks=4)
