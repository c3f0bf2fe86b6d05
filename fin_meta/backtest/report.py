"""Terminal results tables: one row per backtested column with Sharpe and its 95% bootstrap CI,
return, max drawdown and turnover. Used by `fin-meta backtest` and `fin-meta run`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fin_meta.frequency import bars_per_year as infer_bars_per_year
from fin_meta.metrics import annualised_sharpe, block_length_for, bootstrap_ci

__all__ = ["results_table", "format_results_table"]


def results_table(
    returns: pd.DataFrame,
    stats: pd.DataFrame,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    bars_per_year: float | None = None,
    ruined_at: pd.Series | None = None,
) -> pd.DataFrame:
    """Headline metrics per column, sorted by Sharpe.

    `returns`: per-bar strategy returns (bars × columns); `stats`: `BacktestResult.stats` as a
    DataFrame (index = columns). Sharpe is annualised with `bars_per_year` (None: inferred from
    the returns' dates, 252 for daily bars); its CI comes from a stationary block bootstrap of
    the bars (blocks of about a month, `metrics.block_length_for`: returns cluster in volatility,
    an iid bootstrap would make the interval too narrow), seeded so reruns print the same
    interval. `ruined_at` (`BacktestResult.ruined_at`) adds the date each ruined column hit zero."""
    per_year = float(bars_per_year) if bars_per_year is not None else infer_bars_per_year(returns.index)
    block = block_length_for(len(returns), per_year)
    rng = np.random.default_rng(seed)
    rows = []
    for column in stats.index:
        low, high = bootstrap_ci(
            returns[column].to_numpy(),
            statistic=lambda r: annualised_sharpe(r, per_year),
            n_resamples=n_resamples,
            confidence=confidence,
            rng=rng,
            block_length=block,
        )
        row = stats.loc[column]
        rows.append(
            {
                "strategy": column,
                "sharpe": float(row["sharpe"]),
                "sharpe_ci_low": float(low),
                "sharpe_ci_high": float(high),
                "total_return": float(row["total_return"]),
                "cagr": float(row["cagr"]),
                "max_drawdown": float(row["max_drawdown"]),
                "turnover": float(row["turnover"]),
                "ruined_at": ruined_at.get(column, pd.NaT) if ruined_at is not None else pd.NaT,
            }
        )
    return pd.DataFrame(rows).sort_values("sharpe", ascending=False, ignore_index=True)


def format_results_table(table: pd.DataFrame) -> str:
    """Render `results_table` output for a terminal: percentages and a `[low, high]` CI column."""
    shown = pd.DataFrame(
        {
            "strategy": table["strategy"],
            "sharpe": table["sharpe"].map("{:.2f}".format),
            "95% CI": [f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(table["sharpe_ci_low"], table["sharpe_ci_high"], strict=True)],
            "return": table["total_return"].map("{:+.1%}".format),
            "CAGR": table["cagr"].map("{:+.1%}".format),
            "max DD": table["max_drawdown"].map("{:.1%}".format),
            "turnover/yr": table["turnover"].map("{:.1f}".format),
        }
    )
    if "ruined_at" in table and table["ruined_at"].notna().any():
        shown["ruined"] = [f"{pd.Timestamp(d).date()}" if pd.notna(d) else "" for d in table["ruined_at"]]
    return shown.to_string(index=False)
