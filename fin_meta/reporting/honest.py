"""The honest adaptation curve of a logged run, recomputed from what it logged: the per-bar net
test returns (`test/returns.csv`: what each strategy really traded) grouped by the bars since
the causal regime label changed (`test/regimes.csv`), as `benchmarks/adaptation.py` computes it
(`fin_meta.metatest.curve_by_time_since_change`). Left out: the warm-up bars, and the bars before
the first change of label in the test period (how long that regime had lasted is not in the
run's labels). Seeded: the same run gives the same page."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fin_meta.metatest import curve_by_time_since_change
from fin_meta.regimes import WARMUP
from fin_meta.regimes.segments import bars_since_change

__all__ = ["HONEST_RESAMPLES", "HONEST_SEED", "honest_curve"]

HONEST_RESAMPLES = 1000
"""Stationary-block-bootstrap resamples of each bucket's CI."""
HONEST_SEED = 0
"""Seed of the bootstrap (a fixed one: the page is a function of the run)."""


def honest_curve(returns: pd.DataFrame, regimes: pd.DataFrame) -> pd.DataFrame | None:
    """`curve_by_time_since_change` of `returns` (bars x strategies) with the bars since the
    `regimes['regime']` label changed (module docstring: which bars count); None when fewer
    than two bars count."""
    labels = regimes["regime"].reindex(returns.index)
    values = labels.fillna(WARMUP).astype(np.int64).to_numpy()
    since = bars_since_change(values)
    changed = np.flatnonzero(values[1:] != values[:-1])
    keep = (values != WARMUP) & (np.arange(len(values)) > (changed[0] if len(changed) else len(values)))
    if keep.sum() < 2:
        return None
    rng = np.random.default_rng(HONEST_SEED)
    curve = curve_by_time_since_change(returns.loc[keep].fillna(0.0), since[keep], rng, n_resamples=HONEST_RESAMPLES)
    return curve if not curve.empty else None
