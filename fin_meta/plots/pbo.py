"""The logit histogram of a PBO (CSCV): where the in-sample winners rank out of sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fin_meta.fileio import atomic_path

__all__ = ["plot_pbo_logits"]


def plot_pbo_logits(logits: np.ndarray, pbo: float, path: str | Path, *, title: str | None = None) -> Path:
    """Write a PNG at `path` (atomically) of the histogram of the splits' `logits` (log(w / (1 - w)),
    w: the in-sample winner's out-of-sample relative rank), the area left of 0 shaded as the
    `pbo`; return the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = np.asarray(logits, dtype=np.float64)
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    edges = np.histogram_bin_edges(values, bins=min(40, max(5, len(np.unique(values)))))
    ax.hist(values[values > 0], bins=edges, color="tab:blue", label="winner in the top half out of sample")
    ax.hist(values[values <= 0], bins=edges, color="tab:red", label=f"overfit (logit <= 0): PBO = {pbo:.2f}")
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("logit of the in-sample winner's out-of-sample relative rank")
    ax.set_ylabel("splits")
    ax.set_title(title or f"Probability of backtest overfitting (CSCV, {len(values):,} splits)")
    ax.legend()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path
