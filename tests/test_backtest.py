"""backtest() on vectorbt: hand-computed fills, agreement with the numpy reference accounting,
stats, per-regime breakdown, validation errors and plots."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fin_meta.accounting import bar_returns, drifted_weights, simulate
from fin_meta.backtest import BacktestResult, backtest
from fin_meta.errors import ConfigError, DataError, StrategyError
from fin_meta.metrics import STAT_KEYS

DATES5 = pd.bdate_range("2020-01-06", periods=5, name="date")
CLOSE5 = pd.Series([100.0, 110.0, 99.0, 99.0, 108.9], DATES5, name="close")
W5 = pd.Series([0.5, -0.5, -0.5, 0.0, 1.0], DATES5, name="hand")


def _prices(close: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "volume": 1e6})


def _vectorbt_fill_model(close: np.ndarray, w: np.ndarray, fees: float, slippage: float) -> np.ndarray:
    """Equity (start 1.0) under vectorbt's fill rules for a target percent at the close:
    shares = w * value_before / close; buys pay close * (1 + slippage) * (1 + fees) and are cut to
    the available cash; sells receive close * (1 - slippage) * (1 - fees). A plain loop: it is the
    independent statement of those rules, not a hot path."""
    cash, shares, out = 1.0, 0.0, np.empty(len(close))
    for t, p in enumerate(close):
        delta = w[t] * (cash + shares * p) / p - shares
        if delta > 0:
            unit_cost = p * (1 + slippage) * (1 + fees)
            if delta * unit_cost > cash * (1 + 1e-9):
                delta = cash / unit_cost
            cash -= delta * unit_cost
        elif delta < 0:
            cash -= delta * p * (1 - slippage) * (1 - fees)
        shares += delta
        out[t] = cash + shares * p
    return out


@pytest.fixture(scope="module")
def random_case() -> tuple[pd.Series, pd.DataFrame]:
    """1,000 bars, three strategies with shorts, full flips between -1 and +1, and flat bars."""
    rng = np.random.default_rng(42)
    n = 1000
    dates = pd.bdate_range("2001-01-01", periods=n, name="date")
    close = pd.Series(100.0 * np.cumprod(1 + rng.normal(2e-4, 0.012, n)), dates, name="close")
    w = rng.uniform(-1, 1, (n, 3))
    w[rng.random((n, 3)) < 0.2] = 1.0
    w[rng.random((n, 3)) < 0.2] = -1.0
    w[rng.random((n, 3)) < 0.1] = 0.0
    return close, pd.DataFrame(w, index=dates, columns=["x", "y", "z"])


def test_hand_computed_five_bars_without_costs() -> None:
    # r = [0, .1, -.1, 0, .1]; E[t] = E[t-1] * (1 + w[t-1] r[t])
    # E = 1, 1 * (1 + 0.5 * 0.1) = 1.05, 1.05 * (1 - 0.5 * -0.1) = 1.1025, 1.1025 * 1, 1.1025 * (1 + 0 * 0.1)
    res = backtest(_prices(CLOSE5), W5, init_cash=1000.0)
    np.testing.assert_allclose(res.equity.to_numpy(), [1.0, 1.05, 1.1025, 1.1025, 1.1025], rtol=1e-12)
    np.testing.assert_allclose(res.returns.to_numpy(), [0.0, 0.05, 0.05, 0.0, 0.0], atol=1e-12)
    assert isinstance(res, BacktestResult) and isinstance(res.stats, dict)
    assert res.stats["total_return"] == pytest.approx(0.1025, rel=1e-12)
    assert res.stats["n_trades"] == 5 and res.stats["exposure"] == pytest.approx(0.5, rel=1e-12)


def test_hand_computed_five_bars_with_fees_and_slippage() -> None:
    # init_cash 1000, fees 1%, slippage 2%: buys fill at close * 1.02 plus 1% fee, sells at close * 0.98 less 1%.
    # bar 0, p=100:   target 0.5 * 1000 / 100 = 5 shares; pay 5 * 102 * 1.01 = 515.1 -> cash 484.9
    cash0, sh0 = 1000 - 5 * 102 * 1.01, 5.0
    # bar 1, p=110:   value 484.9 + 5 * 110 = 1034.9; target -0.5 * 1034.9 / 110; sell the difference at 107.8
    sh1 = -0.5 * (cash0 + sh0 * 110) / 110
    cash1 = cash0 + (sh0 - sh1) * 107.8 * 0.99
    # bar 2, p=99:    target -0.5 * value / 99; sell the difference at 97.02
    sh2 = -0.5 * (cash1 + sh1 * 99) / 99
    cash2 = cash1 + (sh1 - sh2) * 97.02 * 0.99
    # bar 3, p=99:    target 0: buy back -sh2 shares at 100.98 plus 1% fee
    cash3 = cash2 + sh2 * 100.98 * 1.01
    # bar 4, p=108.9: target 1.0 needs more cash than there is (costs on top): vectorbt buys what the
    #                 cash pays for, cash3 / (108.9 * 1.02 * 1.01) shares, and ends fully invested
    v4 = cash3 / (108.9 * 1.02 * 1.01) * 108.9
    expected = np.array([cash0 + sh0 * 100, cash1 + sh1 * 110, cash2 + sh2 * 99, cash3, v4]) / 1000
    res = backtest(_prices(CLOSE5), W5, fees=0.01, slippage=0.02, init_cash=1000.0)
    np.testing.assert_allclose(res.equity.to_numpy(), expected, rtol=1e-12)


def test_matches_reference_accounting_without_costs(random_case) -> None:
    close, w = random_case
    res = backtest(close, w)
    ref = simulate(close.to_numpy(), w.to_numpy(), cost=0.0)
    np.testing.assert_allclose(res.equity.to_numpy(), ref.equity, rtol=1e-10)
    np.testing.assert_allclose(res.returns.to_numpy(), ref.returns, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.traded.to_numpy(), ref.traded, rtol=0, atol=1e-10)
    # the stats come from the same arrays as vectorbt's own value/returns and order count
    np.testing.assert_allclose(res.equity.to_numpy() * 1e6, res.portfolio.value().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(res.returns.to_numpy(), res.portfolio.returns().to_numpy(), atol=1e-12)
    np.testing.assert_array_equal(res.stats["n_trades"].to_numpy(), res.portfolio.orders.count().to_numpy())


def test_costs_residual_is_exactly_vectorbts_fill_rules(random_case) -> None:
    close, w = random_case
    fees, slippage = 5e-4, 5e-4
    res = backtest(close, w, fees=fees, slippage=slippage)
    c, wv, rv = close.to_numpy(), w.to_numpy(), res.returns.to_numpy()
    for j in range(wv.shape[1]):  # vectorbt == an exact model of its fill rules
        model = _vectorbt_fill_model(c, wv[:, j], fees, slippage)
        np.testing.assert_allclose(res.equity.to_numpy()[:, j], model, rtol=1e-10)

    ref = simulate(c, wv, cost=fees + slippage)
    diff = rv - ref.returns
    assert np.abs(diff).max() < 1e-4  # per-bar returns agree to 1e-4 even with a flip on most bars
    assert np.abs(diff).max() > 1e-7  # (and the difference is real, not rounding)
    # first-order cause: vectorbt sizes the target on the value before costs, so after paying
    # cost * traded[t] it holds w[t] / (1 - cost * traded[t]); bar t+1 gains cost * traded[t] * w[t] * r[t+1].
    # Except where the long target was cut to the cash (w = 1 bought with costs): fully invested, as in the model.
    r = bar_returns(c)[:, None]
    d = drifted_weights(r, wv)
    cost_frac = (fees + slippage) * np.abs(wv - d)
    cash_cut = (wv >= 1.0) & (d < 1.0)
    extra = np.where(cash_cut, 0.0, cost_frac * wv / (1 - cost_frac))
    predicted = np.zeros_like(rv)
    predicted[1:] = extra[:-1] * r[1:] / (1 + wv[:-1] * r[1:])
    explained = (1 + rv) / (1 + ref.returns) - 1 - predicted
    assert np.abs(explained).max() < 0.1 * np.abs(diff).max()  # what remains is second order
    rel_equity = np.abs(res.equity.to_numpy() / ref.equity - 1).max()
    assert rel_equity < 1e-3


def test_per_column_closes_and_no_look_ahead(random_case) -> None:
    close, w = random_case
    t = 600
    later = close.copy()
    later.iloc[t + 1:] *= 1.3
    closes = pd.DataFrame({"x": close, "y": later}, index=close.index)
    same = pd.DataFrame({"x": w["x"], "y": w["x"]})
    res = backtest(closes, same, fees=1e-3)
    # column y trades the same targets on prices that differ only after bar t
    np.testing.assert_array_equal(res.returns["x"].to_numpy()[: t + 1], res.returns["y"].to_numpy()[: t + 1])
    assert not np.allclose(res.returns["x"].to_numpy()[t + 1:], res.returns["y"].to_numpy()[t + 1:])
    ref = simulate(later.to_numpy(), w["x"].to_numpy(), cost=0.0)
    assert res.stats.loc["y", "exposure"] == pytest.approx(np.abs(w["x"]).mean(), rel=1e-12)
    assert res.equity["y"].iloc[-1] < ref.equity[-1]  # costs only take away here (positions unchanged)


def test_stats_sharpe_annualised_with_252_and_many_column_frame(random_case) -> None:
    close, w = random_case
    res = backtest(close, w, fees=2e-4)
    assert isinstance(res.stats, pd.DataFrame)
    assert list(res.stats.index) == ["x", "y", "z"] and list(res.stats.columns) == list(STAT_KEYS)
    r = res.returns["y"].to_numpy()
    by_hand = r.mean() / r.std(ddof=1) * math.sqrt(252)
    assert res.stats.loc["y", "sharpe"] == pytest.approx(by_hand, rel=1e-10)
    # vectorbt's own figure agrees once year_freq is 252 days (its default of 365 would not)
    vbt_sharpe = res.returns_acc.sharpe_ratio()
    np.testing.assert_allclose(vbt_sharpe.to_numpy(), res.stats["sharpe"].to_numpy(), rtol=1e-10)
    eq = res.equity["z"].to_numpy()
    assert res.stats.loc["z", "total_return"] == pytest.approx(eq[-1] - 1, rel=1e-12)
    assert res.stats.loc["z", "turnover"] == pytest.approx(res.traded["z"].mean() * 252, rel=1e-12)


def test_by_regime_exact_numbers() -> None:
    dates = pd.bdate_range("2021-03-01", periods=6, name="date")
    close = pd.Series([100.0, 110.0, 121.0, 108.9, 98.01, 107.811], dates)  # r = 0, +.1, +.1, -.1, -.1, +.1
    hold = pd.Series(1.0, dates, name="hold")
    labels = pd.Series([0, 0, 0, 1, 1, 0], dates)
    table = backtest(close, hold).by_regime(labels)
    assert list(table.index) == [0, 1]
    # regime 0: returns 0, .1, .1, .1 -> 1.1^3 - 1; mean .075, std .05 -> Sharpe 1.5 sqrt(252)
    assert table.loc[0, "total_return"] == pytest.approx(0.331, rel=1e-12)
    assert table.loc[0, "sharpe"] == pytest.approx(1.5 * math.sqrt(252), rel=1e-10)
    assert table.loc[0, "turnover"] == pytest.approx(1.0 / 4 * 252, rel=1e-12)  # the buy on bar 0
    assert table.loc[0, "n_trades"] == 1 and table.loc[0, "n_bars"] == 4
    # regime 1: returns -.1, -.1 -> 0.81 - 1; constant returns -> Sharpe undefined
    assert table.loc[1, "total_return"] == pytest.approx(-0.19, rel=1e-12)
    assert table.loc[1, "max_drawdown"] == pytest.approx(-0.19, rel=1e-12)
    assert math.isnan(table.loc[1, "sharpe"]) and table.loc[1, "n_trades"] == 0

    both = backtest(close, pd.DataFrame({"hold": hold, "half": 0.5})).by_regime(
        labels.where(labels.index != dates[1])  # an unlabelled bar is left out
    )
    assert both.index.names == ["column", "regime"]
    assert list(both.index) == [("hold", 0), ("hold", 1), ("half", 0), ("half", 1)]
    assert both.loc[("hold", 0), "n_bars"] == 3
    assert both.loc[("hold", 0), "total_return"] == pytest.approx(0.21, rel=1e-12)
    with pytest.raises(DataError, match="no label"):
        backtest(close, hold).by_regime(pd.Series([1], [pd.Timestamp("1990-01-01")]))


def _check_raises(error: type[Exception], fragments: list[str], *args, **kwargs) -> None:
    with pytest.raises(error) as info:
        backtest(*args, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_clear_errors_for_bad_positions_and_inputs() -> None:
    prices = _prices(CLOSE5)
    too_big = W5.copy()
    too_big.iloc[2] = 1.5
    _check_raises(StrategyError, ["'hand'", "2020-01-08", "1.5", "[-1.0, 1.0]"], prices, too_big)
    frame = pd.DataFrame({"a": W5, "b": W5.where(W5.index != DATES5[3])})
    _check_raises(StrategyError, ["'b'", "2020-01-09", "nan", "0 for flat"], prices, frame)
    shifted = W5.copy()
    shifted.index = shifted.index.where(shifted.index != DATES5[2], pd.Timestamp("2020-01-18"))
    _check_raises(StrategyError, ["bar 2", "2020-01-18", "2020-01-08"], prices, shifted)
    _check_raises(StrategyError, ["4 vs 5 bars", "bar 4"], prices, W5.iloc[:4])
    _check_raises(StrategyError, ["duplicate"], prices, pd.DataFrame([[0.1, 0.2]] * 5, DATES5, ["a", "a"]))
    _check_raises(ConfigError, ["fees"], prices, W5, fees=-0.01)
    _check_raises(ConfigError, ["init_cash"], prices, W5, init_cash=0.0)
    _check_raises(DataError, ["'close'"], prices.drop(columns="close"), W5)
    bad_close = CLOSE5.copy()
    bad_close.iloc[1] = -3.0
    _check_raises(DataError, ["positive", "2020-01-07"], bad_close, W5)
    # a larger max_position admits leverage
    assert backtest(prices, too_big, max_position=2.0).stats["exposure"] == pytest.approx(0.7, rel=1e-12)


def test_plots_write_valid_files(tmp_path, random_case) -> None:
    close, w = random_case
    many = backtest(close, w)
    png = many.plot(tmp_path / "equity.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    html = many.plot_html(tmp_path / "many.html", include_plotlyjs="cdn")
    text = html.read_text(encoding="utf-8")
    assert "plotly" in text and '"name":"z"' in text.replace(" ", "")
    one = backtest(close, w["x"]).plot_html(tmp_path / "one.html", include_plotlyjs="cdn")
    assert "<html" in one.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["equity.png", "many.html", "one.html"]


def test_public_backtest_is_callable_whatever_the_import_order() -> None:
    """`fin_meta.backtest` is also a subpackage: importing `fin_meta.backtest.engine` first binds the
    package to that attribute, and `fin_meta.backtest(prices, positions)` must still backtest."""
    script = (
        "import fin_meta.backtest.engine, fin_meta, pandas as pd\n"
        "close = pd.Series([100.0, 110.0, 99.0], pd.bdate_range('2020-01-06', periods=3))\n"
        "res = fin_meta.backtest(close, pd.Series(1.0, close.index))\n"
        "from fin_meta import backtest, BacktestResult\n"
        "assert isinstance(backtest(close, pd.Series(1.0, close.index)), BacktestResult)\n"
        "print(round(res.stats['total_return'], 12))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout) == pytest.approx(99.0 / 100.0 - 1, rel=1e-12)


def _closes(values) -> pd.DataFrame:
    close = np.asarray(values, dtype=np.float64)
    return pd.DataFrame({"close": close}, index=pd.bdate_range("2020-01-01", periods=len(close), name="date"))


def test_ruin_stops_equity_at_zero_and_says_when():
    """A short through a price that triples loses everything: equity 0 from then on (was:
    negative equity that 'recovered', max drawdown -233%), the date in ruined_at, a warning."""
    from fin_meta.backtest.engine import RuinWarning
    from fin_meta.backtest.report import format_results_table, results_table

    prices = _closes([100.0, 100.0, 300.0, 150.0, 100.0, 120.0, 130.0, 125.0])
    pos = pd.DataFrame({"short": [-1.0] * 4 + [1.0] * 4, "long": 1.0}, index=prices.index)
    with pytest.warns(RuinWarning, match="short was ruined on 2020-01-03"):
        res = backtest(prices, pos)
    assert res.ruined_at["short"] == prices.index[2] and pd.isna(res.ruined_at["long"])
    np.testing.assert_array_equal(res.equity["short"].to_numpy()[2:], 0.0)
    assert res.returns["short"].iloc[2] == -1.0 and (res.returns["short"].iloc[3:] == 0.0).all()
    assert res.stats.loc["short", "max_drawdown"] == -1.0 and res.stats.loc["short", "total_return"] == -1.0
    table = results_table(res.returns, res.stats, n_resamples=20, ruined_at=res.ruined_at)
    assert "2020-01-03" in format_results_table(table)


def test_annualisation_follows_the_bars_per_year():
    """Monthly closes: Sharpe and volatility annualise with 12 bars a year, not 252 (a monthly
    file printed Sharpe 3.95 for an honest ~0.9); vectorbt's accessor agrees."""
    rng = np.random.default_rng(3)
    monthly = pd.DataFrame({"close": 100 * np.exp(np.cumsum(rng.normal(0.01, 0.05, 120)))},
                           index=pd.date_range("2005-01-31", periods=120, freq="ME", name="date"))
    res = backtest(monthly, pd.Series(1.0, index=monthly.index, name="hold"))
    r = res.returns.to_numpy()
    assert res.bars_per_year == 12.0
    assert res.stats["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(12))
    assert res.returns_acc.sharpe_ratio() == pytest.approx(res.stats["sharpe"], rel=1e-6)
    assert backtest(monthly, pd.Series(1.0, index=monthly.index), bars_per_year=252).stats["sharpe"] == \
        pytest.approx(res.stats["sharpe"] * np.sqrt(21))


def test_results_table_uses_the_stationary_block_bootstrap():
    from fin_meta.backtest.report import results_table
    from fin_meta.bootstrap import bootstrap_ci
    from fin_meta.metrics import annualised_sharpe

    prices = _closes(100 * np.exp(np.cumsum(np.random.default_rng(5).normal(3e-4, 0.01, 600))))
    res = backtest(prices, pd.DataFrame({"hold": 1.0}, index=prices.index))
    table = results_table(res.returns, res.stats, n_resamples=300, seed=4)
    expected = bootstrap_ci(res.returns["hold"].to_numpy(), lambda r: annualised_sharpe(r), n_resamples=300,
                            rng=np.random.default_rng(4), block_length=21)
    assert (table.loc[0, "sharpe_ci_low"], table.loc[0, "sharpe_ci_high"]) == pytest.approx(expected)


def test_html_of_a_one_column_frame_and_the_cdn_default(tmp_path, random_case) -> None:
    """A tracked backtest of one strategy column crashed in vectorbt's orders subplot ("Only one
    column is allowed"); the HTML loads plotly.js from the CDN unless asked to embed it."""
    close, w = random_case
    one_column = backtest(close, w[["x"]])
    small = one_column.plot_html(tmp_path / "one_column.html")
    text = small.read_text(encoding="utf-8")
    assert "<html" in text and "cdn.plot.ly" in text and small.stat().st_size < 500_000
    embedded = one_column.plot_html(tmp_path / "offline.html", include_plotlyjs=True)
    assert embedded.stat().st_size > 2_000_000
