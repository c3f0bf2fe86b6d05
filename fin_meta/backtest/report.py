"""Terminal results tables: one row per backtested column with net Sharpe and its 95% bootstrap
CI, gross Sharpe, return, max drawdown, turnover and cost drag (`results_table`); and the same
strategies period by period, in-sample / validation / test side by side (`by_period`). Used by
`fin-meta backtest` and `fin-meta run`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from fin_meta.bootstrap import AnnualisedSharpe, block_length_for, bootstrap_ci
from fin_meta.frequency import bars_per_year as infer_bars_per_year

__all__ = ["PERIOD_METRICS", "by_period", "format_by_period", "format_results_table", "period_cells",
           "results_table"]

PERIOD_METRICS: dict[str, str] = {"sharpe": "net Sharpe", "gross_sharpe": "gross Sharpe",
                                  "turnover": "turnover/yr", "cost_drag": "cost drag/yr"}
"""The figures `by_period` puts side by side (results_table columns -> their headers)."""


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
    """Headline metrics per column, sorted by (net) Sharpe: Sharpe, its CI, gross_sharpe (the
    same positions without costs), total_return, cagr, max_drawdown, turnover (per year),
    cost_drag (fraction of equity per year), ruined_at.

    `returns`: per-bar strategy returns (bars × columns); `stats`: `BacktestResult.stats` as a
    DataFrame (index = columns). Sharpe is annualised with `bars_per_year` (None: inferred from
    the returns' dates, 252 for daily bars); its CI comes from a stationary block bootstrap of
    the bars (blocks of about a month, `metrics.block_length_for`: returns cluster in volatility,
    an iid bootstrap would make the interval too narrow), seeded so reruns print the same
    interval; every column's interval comes from the same resampled bars. `ruined_at` (`BacktestResult.ruined_at`) adds the date each ruined column hit zero."""
    per_year = float(bars_per_year) if bars_per_year is not None else infer_bars_per_year(returns.index)
    block = block_length_for(len(returns), per_year)
    columns = list(stats.index)
    cis = bootstrap_ci(  # one draw of resampled bars shared by every column (paired intervals)
        returns[columns].to_numpy().reshape(len(returns), -1),
        AnnualisedSharpe(per_year),
        n_resamples=n_resamples,
        confidence=confidence,
        rng=np.random.default_rng(seed),
        block_length=block,
    )
    rows = []
    for column, (low, high) in zip(columns, cis, strict=True):
        row = stats.loc[column]
        rows.append(
            {
                "strategy": column,
                "sharpe": float(row["sharpe"]),
                "sharpe_ci_low": float(low),
                "sharpe_ci_high": float(high),
                "gross_sharpe": float(row["gross_sharpe"]),
                "total_return": float(row["total_return"]),
                "cagr": float(row["cagr"]),
                "max_drawdown": float(row["max_drawdown"]),
                "turnover": float(row["turnover"]),
                "cost_drag": float(row["cost_drag"]),
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
            "gross sharpe": table["gross_sharpe"].map("{:.2f}".format),
            "return": table["total_return"].map("{:+.1%}".format),
            "CAGR": table["cagr"].map("{:+.1%}".format),
            "max DD": table["max_drawdown"].map("{:.1%}".format),
            "turnover/yr": table["turnover"].map("{:.1f}".format),
            "cost drag/yr": table["cost_drag"].map("{:.2%}".format),
        }
    )
    if "ruined_at" in table and table["ruined_at"].notna().any():
        shown["ruined"] = [f"{pd.Timestamp(d).date()}" if pd.notna(d) else "" for d in table["ruined_at"]]
    return shown.to_string(index=False)


def by_period(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """`results_table`s of the same strategies over several periods (`{"train": ..., "val": ...,
    "test": ...}`, in that order) side by side: one row per strategy, in the order of the last
    table, columns `strategy` and `<period>_<metric>` for each of `PERIOD_METRICS` (NaN where a
    period lacks the strategy)."""
    names = list(tables)
    order = tables[names[-1]]["strategy"].tolist()
    out = pd.DataFrame({"strategy": order})
    for period, table in tables.items():
        part = table.set_index("strategy").reindex(order)
        for metric in PERIOD_METRICS:
            out[f"{period}_{metric}"] = part[metric].to_numpy()
    return out


def period_cells(row: Mapping[str, float], periods: Sequence[str]) -> dict[str, str]:
    """A `by_period` row as one text cell per metric, the periods' figures joined by ` / `
    (`-` where missing): `{"net Sharpe": "2.10 / 0.31 / 0.12", ...}`."""
    formats = {"sharpe": "{:.2f}", "gross_sharpe": "{:.2f}", "turnover": "{:.1f}", "cost_drag": "{:.2%}"}
    cells = {}
    for metric, header in PERIOD_METRICS.items():
        values = [row.get(f"{p}_{metric}", np.nan) for p in periods]
        cells[header] = " / ".join("-" if pd.isna(v) else formats[metric].format(v) for v in values)
    return cells


def format_by_period(frame: pd.DataFrame, periods: Sequence[str]) -> str:
    """Render `by_period` output for a terminal: one column per metric, `train / val / test`."""
    rows = [{"strategy": row["strategy"], **period_cells(row, periods)} for row in frame.to_dict("records")]
    return pd.DataFrame(rows).to_string(index=False)
