"""The report's interactive charts (plotly figures, not yet written anywhere): equity and
drawdown against the baselines with the regimes shaded behind (`fin_meta.plots.equity.
equity_figure` and `fin_meta.plots.regimes.regime_colors`), the adaptation curves, the per-fold
Sharpes of a walk-forward and the PBO's logit histogram. Plotly is imported inside the functions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fin_meta.plots.equity import equity_figure
from fin_meta.plots.regimes import regime_colors
from fin_meta.regimes import segments

__all__ = ["adaptation_figure", "equity_regimes_figure", "folds_figure", "honest_figure", "pbo_figure"]

_SHADE_ALPHA = 0.25
"""Opacity of the regime bands behind the equity chart."""


def _rgba(color: tuple[float, float, float, float], alpha: float) -> str:
    r, g, b = (int(round(255 * c)) for c in color[:3])
    return f"rgba({r},{g},{b},{alpha})"


def equity_regimes_figure(returns: pd.DataFrame, regimes: pd.DataFrame | None, title: str) -> Any:
    """Equity (start = 1, compounded from the per-bar net `returns`, bars x strategies) on top and
    drawdown (%) below; with `regimes` (per-bar `regime`, `name`), each regime run is shaded in
    its colour behind both panels and named in the legend."""
    equity = (1.0 + returns.fillna(0.0)).cumprod()
    fig = equity_figure(equity)
    fig.update_layout(title=title, height=620, legend={"groupclick": "togglegroup"})
    if regimes is None:
        return fig
    labels = regimes["regime"].reindex(returns.index).ffill().bfill().astype(np.int64)
    runs = segments(labels, min_length=1)
    present = sorted(runs["label"].unique().tolist())
    colors = regime_colors(present)
    names = regimes.drop_duplicates("regime").set_index("regime")["name"].to_dict()
    ends = list(runs["start"].iloc[1:]) + [returns.index[-1]]  # a band reaches the next run's first bar
    # one band per run over both panels (shared x axis), set at once: add_vrect is quadratic in shapes
    fig.update_layout(shapes=[{"type": "rect", "xref": "x", "yref": "paper", "x0": start, "x1": end, "y0": 0, "y1": 1,
                               "fillcolor": _rgba(colors[label], _SHADE_ALPHA), "line": {"width": 0}, "layer": "below"}
                              for start, end, label in zip(runs["start"], ends, runs["label"], strict=True)])
    for label in present:  # legend entries for the bands (markers only, no data drawn)
        fig.add_scatter(x=[None], y=[None], mode="markers", name=f"regime: {names.get(label, label)}",
                        marker={"symbol": "square", "size": 12, "color": _rgba(colors[label], 0.6)},
                        legendgroup="regimes", row=1, col=1)
    return fig


def adaptation_figure(summary: pd.DataFrame) -> Any:
    """The meta-test curve (`meta_test/adaptation_curve.csv`): mean per-bar net log return (bp)
    against k (adaptation steps / context episodes) with its 95% CI, one line per agent."""
    lines = [(agent, g.sort_values("k")) for agent, g in summary.groupby("agent", sort=True)]
    return _ci_lines([(a, g["k"], g) for a, g in lines],
                     "Meta-test: adaptation on held-out regime segments (95% bootstrap CI)",
                     "k (adaptation steps / context episodes)", "mean net log return per bar (bp)")


def honest_figure(curve: pd.DataFrame) -> Any:
    """The honest curve (`fin_meta.metatest.curve_by_time_since_change`): mean per-bar net return
    (bp) of what each strategy traded, by bars since the regime changed, with 95% CIs."""
    order = list(dict.fromkeys(curve["bucket"]))
    lines = [(a, order, g.set_index("bucket").reindex(order)) for a, g in curve.groupby("agent", sort=False)]
    return _ci_lines(lines, "Honest adaptation curve: test returns by time since the regime changed (95% CI)",
                     "bars since the (causal) regime label changed", "mean net return per bar (bp)")


def _ci_lines(lines: list[tuple[Any, Any, pd.DataFrame]], title: str, xaxis: str, yaxis: str) -> Any:
    """One line per (name, x, frame with mean/ci_low/ci_high per bar return) in bp, asymmetric
    95% CI error bars, and a zero line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, x, group in lines:
        mean = group["mean"].to_numpy() * 1e4
        fig.add_scatter(x=x, y=mean, mode="lines+markers", name=str(name),
                        error_y={"type": "data", "symmetric": False,
                                 "array": group["ci_high"].to_numpy() * 1e4 - mean,
                                 "arrayminus": mean - group["ci_low"].to_numpy() * 1e4})
    fig.add_hline(y=0.0, line_color="grey", line_width=1)
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, height=420)
    return fig


def folds_figure(folds: pd.DataFrame) -> Any:
    """Net Sharpe of every strategy in each walk-forward fold (`walk_forward/folds.csv`), grouped
    by fold (and source when there are several)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    several = folds["source"].nunique() > 1
    x = folds["fold"].astype(str) + (" " + folds["source"].astype(str) if several else "")
    frame = folds.assign(x=x)
    for strategy, group in frame.groupby("strategy", sort=False):
        fig.add_bar(x=group["x"], y=group["sharpe"], name=str(strategy))
    fig.update_layout(title="Walk-forward: net Sharpe per fold (each fold trades with its own refit agent)",
                      xaxis_title="fold", yaxis_title="net Sharpe (annualised)", barmode="group", height=420)
    return fig


def pbo_figure(logits: pd.Series, pbo: float) -> Any:
    """Histogram of the CSCV splits' logits; the splits at or left of 0 (the in-sample winner in
    the bottom half out of sample) in red: their share is the PBO."""
    import plotly.graph_objects as go

    values = logits.to_numpy(np.float64)
    edges = np.histogram_bin_edges(values, bins=min(40, max(5, len(np.unique(values)))))
    size = float(edges[1] - edges[0]) or 1.0
    bins = {"start": float(edges[0]) - size / 2, "end": float(edges[-1]) + size, "size": size}  # the max included
    fig = go.Figure()
    fig.add_histogram(x=values[values > 0], name="winner in the top half out of sample", marker_color="#1f77b4",
                      xbins=bins)
    fig.add_histogram(x=values[values <= 0], name=f"overfit (logit <= 0): PBO = {pbo:.2f}", marker_color="#d62728",
                      xbins=bins)
    fig.add_vline(x=0.0, line_color="grey", line_width=1)
    fig.update_layout(title=f"Probability of backtest overfitting: {len(values):,} CSCV splits", barmode="overlay",
                      xaxis_title="logit of the in-sample winner's out-of-sample relative rank",
                      yaxis_title="splits", height=380)
    return fig
