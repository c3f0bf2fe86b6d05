"""Adaptation curves of the meta-test: mean per-bar net log return against k (adaptation steps
or context episodes), one line and confidence band per agent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fin_meta.errors import DataError
from fin_meta.fileio import atomic_path

__all__ = ["plot_adaptation"]

_COLUMNS = ("agent", "k", "mean", "ci_low", "ci_high")
"""The columns of `fin_meta.metatest.summarise_curves` this chart reads."""


def plot_adaptation(summary: pd.DataFrame, path: str | Path, *, title: str | None = None) -> Path:
    """Write a PNG at `path` (atomically) of the adaptation curves in `summary` (from
    `fin_meta.metatest.summarise_curves`): mean per-bar net log return in basis points against k,
    with its CI band, per agent; return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    missing = set(_COLUMNS) - set(summary.columns)
    if missing:
        raise DataError(f"summary frame lacks columns {sorted(missing)}; use summarise_curves()")
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for agent, group in summary.groupby("agent", sort=True):
        group = group.sort_values("k")
        k = group["k"].to_numpy()
        ax.plot(k, group["mean"] * 1e4, marker="o", label=str(agent))
        ax.fill_between(k, group["ci_low"] * 1e4, group["ci_high"] * 1e4, alpha=0.2)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("k (adaptation steps / context episodes)")
    ax.set_ylabel("mean net log return per bar (bp)")
    ax.set_title(title or "Adaptation on held-out segments (95% bootstrap CI)")
    ax.legend()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
