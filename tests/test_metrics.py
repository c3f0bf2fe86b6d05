"""Metrics (fin_meta.metrics): hand formulas, vectorisation across columns, bootstrap CIs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fin_meta.bootstrap import AnnualisedSharpe, bootstrap_ci, draw_blocks, resample_indices
from fin_meta.errors import ConfigError, DataError
from fin_meta.metrics import (
    STAT_KEYS,
    annual_volatility,
    annualised_sharpe,
    cagr,
    calmar,
    drawdown,
    max_drawdown,
    sortino,
    summary_stats,
    total_return,
)

R4 = np.array([0.01, -0.02, 0.03, 0.0])


def test_sharpe_is_annualised_with_252_bars() -> None:
    # mean = 0.005; deviations .005 -.025 .025 -.005 -> sum of squares 0.0013; ddof 1 -> var 0.0013/3
    expected = 0.005 / math.sqrt(0.0013 / 3) * math.sqrt(252)
    assert annualised_sharpe(R4) == pytest.approx(expected, rel=1e-12)
    assert annualised_sharpe(R4, periods_per_year=12) == pytest.approx(expected * math.sqrt(12 / 252), rel=1e-12)
    assert annual_volatility(R4) == pytest.approx(math.sqrt(0.0013 / 3 * 252), rel=1e-12)


def test_sortino_drawdown_cagr_calmar_by_hand() -> None:
    # downside: only -0.02 is negative -> sqrt(0.0004 / 4) = 0.01
    assert sortino(R4) == pytest.approx(0.005 / 0.01 * math.sqrt(252), rel=1e-12)
    # equity 1.1, 0.55, 0.66 -> worst fall 0.55 / 1.1 - 1 = -0.5
    assert max_drawdown([0.1, -0.5, 0.2]) == pytest.approx(-0.5, rel=1e-12)
    # the starting equity 1.0 is a peak: a first-bar loss is a drawdown
    assert max_drawdown([-0.1, 0.05]) == pytest.approx(-0.1, rel=1e-12)
    assert max_drawdown([0.01, 0.02]) == 0.0
    # 504 bars (two years) growing 1.21 in total -> 10% a year
    two_years = np.full(504, 1.21 ** (1 / 504) - 1)
    assert cagr(two_years) == pytest.approx(0.1, rel=1e-10)
    assert total_return(two_years) == pytest.approx(0.21, rel=1e-10)
    assert calmar([0.1, -0.5, 0.2]) == pytest.approx(cagr([0.1, -0.5, 0.2]) / 0.5, rel=1e-12)
    np.testing.assert_allclose(drawdown([1.1, 0.55, 0.66]), [0.0, -0.5, -0.4], atol=1e-15)


def test_undefined_ratios_are_nan_and_wipe_out_is_minus_one() -> None:
    flat = np.full(10, 0.001)
    assert math.isnan(annualised_sharpe(flat))
    assert math.isnan(sortino(flat))
    assert math.isnan(calmar(flat))
    assert cagr([0.5, -1.0]) == -1.0


def test_functions_vectorise_across_columns() -> None:
    rng = np.random.default_rng(0)
    r2 = rng.normal(0.0005, 0.01, (300, 5))
    for fn in (annualised_sharpe, sortino, max_drawdown, cagr, calmar, total_return, annual_volatility):
        column_wise = np.array([fn(r2[:, j]) for j in range(5)])
        np.testing.assert_allclose(fn(r2), column_wise, rtol=1e-12, err_msg=fn.__name__)


def test_summary_stats_dict_frame_and_definitions() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0.0004, 0.01, (250, 3))
    pos = rng.uniform(-1, 1, (250, 3))
    traded = np.abs(rng.normal(0, 0.1, (250, 3)))
    traded[::2] = 0.0
    frame = summary_stats(pd.DataFrame(r, columns=["a", "b", "c"]), pos, traded)
    assert list(frame.index) == ["a", "b", "c"]
    assert list(frame.columns) == list(STAT_KEYS)
    one = summary_stats(r[:, 1], pos[:, 1], traded[:, 1])
    assert set(one) == set(STAT_KEYS) and isinstance(one["n_trades"], int)
    assert one["sharpe"] == pytest.approx(frame.loc["b", "sharpe"], rel=1e-12)
    assert one["turnover"] == pytest.approx(traded[:, 1].mean() * 252, rel=1e-12)
    assert one["exposure"] == pytest.approx(np.abs(pos[:, 1]).mean(), rel=1e-12)
    assert one["n_trades"] == 125
    assert one["max_drawdown"] == pytest.approx(max_drawdown(r[:, 1]), rel=1e-12)
    with_equity = summary_stats(r, pos, traded, equity=np.cumprod(1 + r, axis=0))
    np.testing.assert_allclose(with_equity.to_numpy(), frame.to_numpy(), rtol=1e-12)


def test_bad_inputs_raise() -> None:
    with pytest.raises(DataError, match="NaN"):
        annualised_sharpe([0.01, np.nan])
    with pytest.raises(DataError, match="empty"):
        max_drawdown([])
    with pytest.raises(DataError, match="shape"):
        summary_stats(np.zeros(5), np.zeros(4), np.zeros(5))
    with pytest.raises(ConfigError, match="Generator"):
        bootstrap_ci(R4, rng=None)
    with pytest.raises(ConfigError, match="confidence"):
        bootstrap_ci(R4, confidence=1.5, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="block_length"):
        bootstrap_ci(R4, block_length=10, rng=np.random.default_rng(0))


def _mean(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=0)


def test_bootstrap_ci_is_seeded_and_has_the_right_width() -> None:
    rng = np.random.default_rng(7)
    r = rng.normal(0.001, 0.01, 2000)
    low, high = bootstrap_ci(r, _mean, n_resamples=2000, rng=np.random.default_rng(11))
    assert (low, high) == bootstrap_ci(r, _mean, n_resamples=2000, rng=np.random.default_rng(11))
    assert low < r.mean() < high
    # iid mean: the 95% interval is about 2 * 1.96 * sd / sqrt(n) wide
    assert (high - low) == pytest.approx(2 * 1.96 * r.std(ddof=1) / math.sqrt(len(r)), rel=0.15)
    s_low, s_high = bootstrap_ci(r, rng=np.random.default_rng(11))  # default statistic: Sharpe
    assert s_low < annualised_sharpe(r) < s_high


def test_block_bootstrap_widens_the_interval_for_autocorrelated_returns() -> None:
    rng = np.random.default_rng(5)
    shocks = rng.normal(0, 0.01, 3000)
    ar = np.convolve(shocks, 0.8 ** np.arange(3000))[:3000]  # AR(1), phi = 0.8
    iid = bootstrap_ci(ar, _mean, n_resamples=1000, rng=np.random.default_rng(1))
    block = bootstrap_ci(ar, _mean, n_resamples=1000, rng=np.random.default_rng(1), block_length=50)
    circ = bootstrap_ci(ar, _mean, n_resamples=1000, rng=np.random.default_rng(1), block_length=50, block="circular")
    # the long-run variance of an AR(1) mean is (1 + phi) / (1 - phi) = 9 times the iid one: width x3
    assert (block[1] - block[0]) > 2.0 * (iid[1] - iid[0])
    assert (circ[1] - circ[0]) > 2.0 * (iid[1] - iid[0])


def testresample_indices_form_blocks() -> None:
    idx = resample_indices(100, 7, np.random.default_rng(2), 10, "circular")
    steps = (np.diff(idx, axis=0) % 100)[np.arange(1, 100) % 10 != 0]
    assert idx.shape == (100, 7) and np.all(steps == 1)
    idx = resample_indices(20000, 3, np.random.default_rng(2), 25.0, "stationary")
    new_blocks = np.count_nonzero((np.diff(idx, axis=0) % 20000) != 1)
    assert 20000 * 3 / new_blocks == pytest.approx(25.0, rel=0.1)  # mean block length


@pytest.mark.parametrize(("block_length", "block"), [(None, "stationary"), (21.0, "stationary"), (5.0, "circular")])
def test_block_sums_equal_the_sums_of_the_resampled_bars(block_length, block) -> None:
    values = np.random.default_rng(3).normal(0.0, 0.01, (300, 3))
    values[100:160, 1] = 0.0  # a flat stretch: its blocks sum to exactly zero
    blocks = draw_blocks(300, 400, np.random.default_rng(9), block_length, block)
    idx = blocks.indices()
    expected = np.stack([values[idx, c].sum(axis=0) for c in range(3)], axis=1)
    np.testing.assert_allclose(blocks.sums(values), expected, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(blocks.sums(values[:, 2]), expected[:, 2], rtol=1e-9, atol=1e-15)


def test_stationary_blocks_are_geometric_from_uniform_bars() -> None:
    blocks = draw_blocks(1000, 300, np.random.default_rng(4), 20.0, "stationary")
    interior = np.diff(blocks.starts)[np.diff(blocks.starts // 1000) == 0]  # blocks no resample cut
    assert interior.mean() == pytest.approx(20.0, rel=0.05)
    assert np.mean(interior == 1) == pytest.approx(1 / 20, rel=0.15)  # P(length 1) = p: geometric
    counts = np.bincount(blocks.sources // 100, minlength=10)
    assert counts.min() > 0.9 * counts.mean()  # sources spread evenly over the bars


def test_sharpe_from_sums_matches_the_sharpe_of_the_resampled_bars() -> None:
    rng = np.random.default_rng(8)
    r = np.column_stack([rng.normal(5e-4, 0.01, 800), np.zeros(800), np.where(rng.random(800) < 0.05, 0.01, 0.0)])
    fast = bootstrap_ci(r, AnnualisedSharpe(52), n_resamples=500, rng=np.random.default_rng(2), block_length=21)
    plain = bootstrap_ci(r, lambda x: annualised_sharpe(x, 52), n_resamples=500, rng=np.random.default_rng(2),
                         block_length=21)
    assert np.isnan(fast[1]).all() and np.isnan(plain[1]).all()  # a flat strategy has no Sharpe
    np.testing.assert_allclose([fast[0], fast[2]], [plain[0], plain[2]], rtol=1e-9)
    assert bootstrap_ci(r[:, 0], rng=np.random.default_rng(2)) == pytest.approx(  # the default takes sums too
        bootstrap_ci(r[:, 0], lambda x: annualised_sharpe(x), rng=np.random.default_rng(2)), rel=1e-9)


def test_block_sums_in_column_chunks_and_steady_returns_keep_their_sharpe(monkeypatch) -> None:
    import fin_meta.bootstrap as bootstrap

    values = np.random.default_rng(6).normal(0.0, 0.01, (200, 5))
    whole = draw_blocks(200, 50, np.random.default_rng(1), 10.0).sums(values)
    monkeypatch.setattr(bootstrap, "_CELLS", 1)  # one column at a time
    np.testing.assert_allclose(draw_blocks(200, 50, np.random.default_rng(1), 10.0).sums(values), whole, rtol=1e-12)
    steady = 0.001 + np.random.default_rng(2).normal(0.0, 1e-8, 252)  # std / mean = 1e-5: a Sharpe, not rounding
    fast = bootstrap_ci(steady, rng=np.random.default_rng(1), block_length=21)
    plain = bootstrap_ci(steady, lambda x: annualised_sharpe(x), rng=np.random.default_rng(1), block_length=21)
    assert np.isfinite(fast).all() and fast == pytest.approx(plain, rel=1e-4)  # moments lose ~6 digits here
    with pytest.raises(ConfigError, match="block_length"):
        draw_blocks(200, 5, np.random.default_rng(1), 0.5)


def test_block_length_is_about_a_month_of_bars():
    from fin_meta.bootstrap import block_length_for

    assert block_length_for(1500) == 21.0
    assert block_length_for(300, periods_per_year=52) == 4.0
    assert block_length_for(120, periods_per_year=12) == 1.0
    assert block_length_for(10) == 10.0  # never longer than the series


def test_summary_stats_gross_sharpe_and_cost_drag() -> None:
    rng = np.random.default_rng(2)
    gross = rng.normal(0.0005, 0.01, (250, 2))
    costs = np.abs(rng.normal(0, 2e-4, (250, 2)))
    net = (1 + gross) * (1 - costs) - 1
    pos, traded = np.full((250, 2), 0.5), costs / 1e-3
    frame = summary_stats(net, pos, traded, gross_returns=gross, costs=costs)
    np.testing.assert_allclose(frame["gross_sharpe"], annualised_sharpe(gross), rtol=1e-12)
    np.testing.assert_allclose(frame["sharpe"], annualised_sharpe(net), rtol=1e-12)
    np.testing.assert_allclose(frame["cost_drag"], costs.mean(axis=0) * 252, rtol=1e-12)
    np.testing.assert_allclose(frame["cost_drag"], 1e-3 * frame["turnover"], rtol=1e-12)  # a flat cost rate
    np.testing.assert_allclose(frame["cost_drag"], (gross.mean(axis=0) - net.mean(axis=0)) * 252, rtol=0.01)
    assert (frame["gross_sharpe"] > frame["sharpe"]).all()
    one = net[:, 0]
    same = summary_stats(one, pos[:, 0], traded[:, 0], gross_returns=one, costs=np.zeros(250))
    assert same["gross_sharpe"] == same["sharpe"] and same["cost_drag"] == 0.0
    unknown = summary_stats(net[:, 0], pos[:, 0], traded[:, 0])  # not given: unknown, not zero
    assert np.isnan(unknown["gross_sharpe"]) and np.isnan(unknown["cost_drag"])
    with pytest.raises(DataError, match="gross_returns: shape"):
        summary_stats(net, pos, traded, gross_returns=gross[:10])
