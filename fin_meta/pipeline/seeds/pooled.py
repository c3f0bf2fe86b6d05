"""Figures over the seeds of a set: each strategy's mean and standard deviation across seeds
(`seed_table`), and the agent's test Sharpe minus each other strategy's with its paired CI
pooled over seeds (`paired_sharpe_diff`, by `fin_meta.comparison.paired_difference_ci`: within
each seed the same stationary-block-bootstrap bars for agent and strategy, the seeds resampled
too, the mean over seeds of the per-seed differences per draw).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fin_meta.comparison import paired_difference_ci

__all__ = ["SEED_METRICS", "paired_sharpe_diff", "seed_table"]

SEED_METRICS = ("sharpe", "gross_sharpe", "total_return", "max_drawdown", "turnover", "cost_drag")
"""The `results_table` columns averaged over seeds (net and gross Sharpe, total return and max
drawdown as fractions, turnover and cost drag per year)."""


def seed_table(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One row per strategy of the seeds' `results_table`s: `<metric>_mean` and `<metric>_sd`
    (sample sd, ddof=1; NaN for one seed) of every `SEED_METRICS` over seeds, and `seeds` (how
    many); a strategy whose figure is undefined (NaN) in any seed gets NaN, not the mean of the
    rest. Sorted by mean net Sharpe, best first."""
    long = pd.concat([t.assign(_seed=i) for i, t in enumerate(tables)], ignore_index=True)
    out = pd.DataFrame(index=pd.Index(long["strategy"].drop_duplicates().tolist(), name="strategy"))
    for metric in SEED_METRICS:
        wide = long.pivot(index="strategy", columns="_seed", values=metric).reindex(out.index)
        out[f"{metric}_mean"] = wide.mean(axis=1, skipna=False)
        out[f"{metric}_sd"] = wide.std(axis=1, ddof=1, skipna=False) if wide.shape[1] > 1 else np.nan
    out["seeds"] = long.groupby("strategy").size().reindex(out.index).astype(int)
    return out.sort_values("sharpe_mean", ascending=False, na_position="last").reset_index()


def paired_sharpe_diff(returns: Sequence[pd.DataFrame], agent: str, *, bars_per_year: float, n_resamples: int = 1000,
                       confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Agent minus each other strategy, net test Sharpe, over seeds: one row per strategy
    (`strategy`; `sharpe_diff`, the mean over seeds of the per-seed difference; `sharpe_diff_ci_low`
    / `_high`, its paired `confidence` CI from `n_resamples` draws, see the module docstring).
    `returns`: per seed, per-bar net returns (bars x strategies, the same columns), annualised
    with `bars_per_year`. Every strategy's CI uses the same draws (a generator seeded by `seed`)."""
    rows = []
    for column in [c for c in returns[0].columns if c != agent]:
        diff = paired_difference_ci([r[agent].to_numpy() for r in returns], [r[column].to_numpy() for r in returns],
                                    np.random.default_rng(seed), periods_per_year=bars_per_year,
                                    n_resamples=n_resamples, confidence=confidence)
        rows.append({"strategy": column, "sharpe_diff": diff.diff, "sharpe_diff_ci_low": diff.ci_low,
                     "sharpe_diff_ci_high": diff.ci_high})
    return pd.DataFrame(rows, columns=["strategy", "sharpe_diff", "sharpe_diff_ci_low", "sharpe_diff_ci_high"])
