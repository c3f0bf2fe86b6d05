"""The report's parts on constructed data with known answers: the honest adaptation curve
recomputed from logged returns and labels, the equity chart's regime bands, and the tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fin_meta.regimes import WARMUP
from fin_meta.reporting.figures import equity_regimes_figure
from fin_meta.reporting.honest import honest_curve
from fin_meta.reporting.tables import folds_table, results_table


def _labels(runs: list[tuple[int, int]]) -> pd.DataFrame:
    """Per-bar `regime` and `name` from (label, length) runs, on business days."""
    values = np.concatenate([np.full(n, label) for label, n in runs])
    index = pd.bdate_range("2020-01-01", periods=len(values), name="date")
    return pd.DataFrame({"regime": values, "name": [f"r{v}" for v in values]}, index=index)


def test_honest_curve_groups_returns_by_bars_since_the_change():
    regimes = _labels([(WARMUP, 5), (0, 40), (1, 120), (0, 60)])
    since = np.concatenate([np.arange(5), np.arange(40), np.arange(120), np.arange(60)])
    fresh = np.where(since < 10, 2e-3, -1e-3)  # earns early in a regime, loses later
    returns = pd.DataFrame({"agent": fresh, "flat": 1e-4}, index=regimes.index)
    curve = honest_curve(returns, regimes).set_index(["agent", "bucket"])
    # counted: the bars from the first change of label (bar 5, warm-up -> 0 is a change), warm-up left out
    kept = since[5:]
    for bucket, lo, hi in (("0-9", 0, 10), ("10-29", 10, 30), ("30-99", 30, 100), ("100+", 100, 10**6)):
        inside = (kept >= lo) & (kept < hi)
        assert curve.loc[("agent", bucket), "n_bars"] == inside.sum()
        assert curve.loc[("agent", bucket), "mean"] == pytest.approx(np.where(kept < 10, 2e-3, -1e-3)[inside].mean())
        assert curve.loc[("flat", bucket), "mean"] == pytest.approx(1e-4)
        assert curve.loc[("agent", bucket), "ci_low"] <= curve.loc[("agent", bucket), "mean"]
    # the bars before the first change (whose regime age is unknown) do not count
    late = _labels([(0, 45), (1, 120), (0, 60)])
    moved = returns.set_axis(late.index).copy()
    base = honest_curve(moved, late)
    moved.iloc[:45] = 0.05
    pd.testing.assert_frame_equal(honest_curve(moved, late), base)
    assert honest_curve(returns, _labels([(0, 225)])) is None  # no change: nothing is known


def test_equity_chart_compounds_returns_and_shades_each_regime_run():
    regimes = _labels([(0, 30), (1, 20), (0, 25), (2, 25)])
    rng = np.random.default_rng(0)
    returns = pd.DataFrame({"agent": rng.normal(0, 0.01, 100), "buy_and_hold": rng.normal(0, 0.01, 100)},
                           index=regimes.index)
    fig = equity_regimes_figure(returns, regimes, "t")
    agent, agent_dd = [t for t in fig.data if t.name == "agent"]
    np.testing.assert_allclose(agent.y, (1 + returns["agent"]).cumprod().to_numpy())
    equity = (1 + returns["agent"]).cumprod()
    np.testing.assert_allclose(agent_dd.y, np.round((equity / equity.cummax() - 1).to_numpy() * 100, 4))
    colors = {t.name: t.line.color for t in fig.data if t.legendgroup != "regimes" and t.showlegend is not False}
    assert agent_dd.line.color == agent.line.color and len(set(colors.values())) == 2  # one colour per column
    shapes = fig.layout.shapes
    assert len(shapes) == 4  # one band per run
    assert [pd.Timestamp(s.x0) for s in shapes] == [regimes.index[i] for i in (0, 30, 50, 75)]
    assert pd.Timestamp(shapes[-1].x1) == regimes.index[-1]
    assert shapes[0].fillcolor == shapes[2].fillcolor != shapes[1].fillcolor  # a colour per label
    assert {t.name for t in fig.data if t.legendgroup == "regimes"} == {"regime: r0", "regime: r1", "regime: r2"}
    assert not equity_regimes_figure(returns, None, "t").layout.shapes


def test_results_table_puts_psr_and_dsr_beside_each_sharpe():
    results = pd.DataFrame({"sharpe": [1.234, -0.5], "sharpe_ci_low": [0.1, -1.5], "sharpe_ci_high": [2.2, 0.4],
                            "gross_sharpe": [1.3, -0.4], "total_return": [0.25, -0.05], "cagr": [0.12, -0.02],
                            "max_drawdown": [-0.1, -0.2], "turnover": [2.0, 30.0], "cost_drag": [0.002, 0.03]},
                           index=pd.Index(["agent", "rule"], name="strategy"))
    deflated = pd.DataFrame({"psr": [0.91, 0.2], "dsr": [0.55, np.nan]}, index=["agent", "rule"])
    table = results_table(results, deflated)
    assert table.loc["agent", ["net Sharpe", "95% CI", "PSR", "DSR", "return"]].tolist() == [
        "1.23", "[0.10, 2.20]", "0.910", "0.550", "+25.0%"]
    assert table.loc["rule", "DSR"] == "–"  # not finite: a dash, not "nan"
    assert (results_table(results, None)["DSR"] == "–").all()


def test_folds_table_has_a_row_per_fold_and_a_column_per_strategy():
    rows = [{"fold": f, "source": "x", "train_start": "2020-01-01", "train_end": f"2020-0{f + 2}-01", "train_bars": 100,
             "trade_start": f"2021-0{f + 1}-01", "trade_end": f"2021-0{f + 1}-28", "trade_bars": 20, "seed": 0,
             "strategy": s, "sharpe": f + i / 10, "total_return": 0.01 * f} for f in (0, 1) for i, s in enumerate("ab")]
    table = folds_table(pd.DataFrame(rows))
    assert list(table.columns) == ["trained on", "traded", "a", "b"] and len(table) == 2
    assert table.loc[(1, "x"), "b"] == "1.10 (+1.0%)"
    assert table.loc[(1, "x"), "traded"] == "2021-02-01 .. 2021-02-28 (20 bars)"
