"""Gross and net (issue 12, item 4): `backtest()` gives the same positions' returns without costs
(`gross_returns`, `stats["gross_sharpe"]`) and what each bar's fill paid (`costs`,
`stats["cost_drag"]`), on a hand-computed case, against vectorbt run with zero costs, per
regime, through ruin, and in the results tables; `--offline-html` embeds plotly.js in the
logged chart.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from fin_meta.backtest import backtest
from fin_meta.backtest.report import (
    by_period,
    format_by_period,
    format_results_table,
    results_table,
)
from fin_meta.metrics import annualised_sharpe
from tests.pipeline_data import only_run
from tests.test_cli import cli

DATES4 = pd.bdate_range("2020-01-06", periods=4, name="date")
CLOSE4 = pd.Series([100.0, 110.0, 121.0, 121.0], DATES4, name="close")


def test_hand_computed_gross_net_and_cost_drag() -> None:
    # fees 0.1%, init_cash 1e6. bar 0: buy 0.5 * 1e6 / 100 = 5000 shares, fee 5000 * 100 * 0.001 = 500.
    # bar 1 (p=110): value before 499_500 + 550_000 = 1_049_500; sell 5000 shares, fee 550. Flat after.
    w = pd.Series([0.5, 0.0, 0.0, 0.0], DATES4, name="w")
    res = backtest(CLOSE4, w, fees=1e-3, init_cash=1e6)
    costs = np.array([500 / 1e6, 550 / 1_049_500, 0.0, 0.0])
    np.testing.assert_allclose(res.costs.to_numpy(), costs, rtol=1e-12, atol=0)
    gross = np.array([0.0, 0.5 * 0.1, 0.0, 0.0])  # w[t-1] r[t]
    np.testing.assert_allclose(res.gross_returns.to_numpy(), gross, rtol=1e-12, atol=1e-15)
    net = np.array([-5e-4, (1_048_950 / 999_500) - 1, 0.0, 0.0])
    np.testing.assert_allclose(res.returns.to_numpy(), net, rtol=1e-12, atol=1e-15)
    by_hand = gross.mean() / gross.std(ddof=1) * math.sqrt(252)
    assert res.stats["gross_sharpe"] == pytest.approx(by_hand, rel=1e-12)
    assert res.stats["sharpe"] == pytest.approx(net.mean() / net.std(ddof=1) * math.sqrt(252), rel=1e-12)
    assert res.stats["cost_drag"] == pytest.approx(costs.mean() * 252, rel=1e-12)
    assert res.stats["gross_sharpe"] > res.stats["sharpe"]
    # net = (1 + gross)(1 - cost) - 1 to first order (the gross-net gap is the cost drag); exactly, with
    # the weight vectorbt holds (bar 0's target sized on the equity before its fee: 5e5 / 999_500)
    assert np.abs((1 + gross) * (1 - costs) - 1 - net).max() < 3e-5
    held = np.array([0.0, 0.1 * 5e5 / 999_500, 0.0, 0.0])
    np.testing.assert_allclose((1 + held) * (1 - costs) - 1, net, rtol=0, atol=1e-15)

    free = backtest(CLOSE4, w, init_cash=1e6)
    assert free.stats["gross_sharpe"] == free.stats["sharpe"] == pytest.approx(by_hand, rel=1e-12)
    assert free.stats["cost_drag"] == 0.0


def test_gross_is_vectorbt_without_costs_and_at_least_net(flips) -> None:
    close, w = flips
    costly = backtest(close, w, fees=5e-4, slippage=5e-4)
    free = backtest(close, w)
    np.testing.assert_allclose(costly.gross_returns.to_numpy(), free.returns.to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(costly.stats["gross_sharpe"], free.stats["sharpe"], rtol=1e-10)
    assert (costly.stats["gross_sharpe"] > costly.stats["sharpe"]).all()
    pd.testing.assert_series_equal(free.stats["gross_sharpe"], free.stats["sharpe"], check_names=False)
    assert (free.stats["cost_drag"] == 0.0).all() and (costly.stats["cost_drag"] > 0).all()
    # the fees and slippage in vectorbt's order records over the equity just before each trade
    rec = costly.portfolio.order_records
    paid = rec["fees"] + rec["size"] * np.abs(rec["price"] - close.to_numpy()[rec["idx"]])
    value, shares = costly.portfolio.value().to_numpy(), costly.portfolio.assets().to_numpy()
    before = np.full_like(value, 1e6)  # init_cash
    before[1:] = value[:-1] + shares[:-1] * np.diff(close.to_numpy())[:, None]
    expected = np.zeros_like(value)
    expected[rec["idx"], rec["col"]] = paid / before[rec["idx"], rec["col"]]
    np.testing.assert_allclose(costly.costs.to_numpy(), expected, rtol=1e-9, atol=1e-15)
    # first order: the annualised gap between the gross and net mean returns
    gap = (costly.gross_returns.mean() - costly.returns.mean()) * 252
    np.testing.assert_allclose(costly.stats["cost_drag"], gap, rtol=0.02)
    # a flat cost rate c: cost drag ~ c x turnover
    np.testing.assert_allclose(costly.stats["cost_drag"], 1e-3 * costly.stats["turnover"], rtol=0.01)


def test_gross_and_costs_per_regime_and_through_ruin() -> None:
    dates = pd.bdate_range("2020-01-01", periods=6, name="date")
    close = pd.Series([100.0, 100.0, 300.0, 150.0, 100.0, 120.0], dates)
    pos = pd.DataFrame({"short": -1.0, "long": 1.0}, index=dates)
    with pytest.warns(UserWarning, match="short was ruined"):
        res = backtest(close, pos, fees=1e-3)
    gross = res.gross_returns["short"].to_numpy()
    assert gross[2] == -1.0 and (gross[3:] == 0.0).all()  # -1 x +200%: ruined without costs too
    assert (res.costs["short"].to_numpy()[3:] == 0.0).all()
    table = res.by_regime(pd.Series([0, 0, 0, 1, 1, 1], dates))
    assert {"gross_sharpe", "cost_drag"} <= set(table.columns)
    long_0 = res.gross_returns["long"].to_numpy()[:3]
    assert table.loc[("long", 0), "gross_sharpe"] == pytest.approx(annualised_sharpe(long_0), rel=1e-12)
    assert table.loc[("long", 0), "cost_drag"] == pytest.approx(res.costs["long"].to_numpy()[:3].mean() * 252)


def test_results_tables_show_net_gross_turnover_and_cost_drag(flips) -> None:
    close, w = flips
    res = backtest(close, w, fees=5e-4, slippage=5e-4)
    table = results_table(res.returns, res.stats, n_resamples=50)
    np.testing.assert_allclose(table.set_index("strategy").loc[["x", "y", "z"], "gross_sharpe"],
                               res.stats["gross_sharpe"], rtol=1e-12)
    text = format_results_table(table)
    for header in ("sharpe", "gross sharpe", "turnover/yr", "cost drag/yr"):
        assert header in text
    half = results_table(res.returns.iloc[:500], backtest(close.iloc[:500], w.iloc[:500]).stats, n_resamples=50)
    side = by_period({"train": half, "test": table})
    assert side["strategy"].tolist() == table["strategy"].tolist()
    assert side.loc[0, "train_sharpe"] == half.set_index("strategy").loc[table.loc[0, "strategy"], "sharpe"]
    shown = format_by_period(side, ["train", "test"])
    first = shown.splitlines()[1]
    assert f"{side.loc[0, 'train_sharpe']:.2f} / {side.loc[0, 'test_sharpe']:.2f}" in first


def test_backtest_offline_html_embeds_plotly(capsys, tmp_path, monkeypatch, tracking_uri) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["backtest", "-s", "sma_cross", "--start", "2015-01-01", "--end", "2015-12-31", "--tracking-uri",
            tracking_uri]
    sizes = {}
    for experiment, extra in (("cdn", []), ("offline", ["--offline-html"])):
        code, _, err = cli(capsys, *args, "--experiment", experiment, *extra)
        assert code == 0, err
        client = MlflowClient(tracking_uri)
        run_id = only_run(client, experiment).info.run_id
        html = client.download_artifacts(run_id, "plots/equity_sp500.html", str(tmp_path / experiment))
        text = open(html, encoding="utf-8").read()
        sizes[experiment] = len(text)
        assert ('src="https://cdn.plot.ly' in text) == (experiment == "cdn")
    assert sizes["offline"] > 2_000_000 > 500_000 > sizes["cdn"]


@pytest.fixture(scope="module")
def flips() -> tuple[pd.Series, pd.DataFrame]:
    """500 bars; three strategies jumping between short, half short, flat, half long and long."""
    rng = np.random.default_rng(7)
    dates = pd.bdate_range("2001-01-01", periods=500, name="date")
    close = pd.Series(100.0 * np.cumprod(1 + rng.normal(2e-4, 0.012, 500)), dates, name="close")
    return close, pd.DataFrame(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], (500, 3)), dates, columns=["x", "y", "z"])
