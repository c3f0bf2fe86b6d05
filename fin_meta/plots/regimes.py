"""Price chart shaded by regime: the close on a log scale over coloured background bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fin_meta.errors import DataError
from fin_meta.fileio import atomic_path
from fin_meta.regimes import WARMUP, WARMUP_NAME, regime_names, segments
from fin_meta.regimes.base import close_series

__all__ = ["plot_regimes", "regime_colors"]


def regime_colors(labels: list[int]) -> dict[int, tuple[float, float, float, float]]:
    """An RGBA colour per label: red (label 0, lowest mean return / bear) through yellow to
    green (highest label); warm-up in light grey."""
    from matplotlib import colormaps

    cmap = colormaps["RdYlGn"]
    ranked = sorted(k for k in labels if k != WARMUP)
    colors = {k: cmap(0.1 + 0.8 * i / max(len(ranked) - 1, 1)) for i, k in enumerate(ranked)}
    colors[WARMUP] = (0.85, 0.85, 0.85, 1.0)
    return colors


def plot_regimes(
    prices: pd.DataFrame, labels: pd.Series, path: str | Path, title: str | None = None
) -> Path:
    """Write a PNG at `path` (atomically) of the close price (log scale) with each regime run
    shaded in its colour and a legend of regime names; return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import date2num
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    close = close_series(prices)
    if not isinstance(labels, pd.Series) or not labels.index.equals(close.index):
        raise DataError("plot_regimes: labels must be a Series on the prices index (use detect_regimes)")
    runs = segments(labels, min_length=1)
    x = date2num(close.index.to_numpy())
    # each run spans from its first bar to the first bar of the next run (last: to the end)
    starts = np.searchsorted(close.index, runs["start"].to_numpy())
    left = x[starts]
    right = np.r_[left[1:], x[-1]]
    names = {WARMUP: WARMUP_NAME, **regime_names(labels)}
    colors = regime_colors(list(runs["label"].unique()))

    fig = Figure(figsize=(11, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    handles = []
    for label in sorted(colors):
        mine = runs["label"].to_numpy() == label
        ranges = list(zip(left[mine], right[mine] - left[mine], strict=True))
        ax.broken_barh(ranges, (0, 1), transform=ax.get_xaxis_transform(), color=colors[label],
                       alpha=0.45, linewidth=0)
        handles.append(Patch(color=colors[label], alpha=0.45, label=names.get(label, f"regime-{label}")))
    ax.plot(close.index, close.to_numpy(), color="black", lw=0.9)
    handles.append(ax.lines[0])
    ax.lines[0].set_label("close")
    ax.set_yscale("log")
    ax.set_xlim(x[0], x[-1])
    ax.set_ylabel("close (log scale)")
    ax.set_title(title or "Price and regimes")
    ax.legend(handles=handles, loc="upper left", fontsize="small", framealpha=0.9)
    ax.grid(alpha=0.3, which="both")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
