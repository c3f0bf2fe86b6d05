"""What a user sees first in the MLflow UI, computed from the run's own config and results: the
run name (`rl2-sp500-s0-20240101-120000`), the summary table of the test period (one row per
source and strategy, with the in-sample and validation figures beside: `test/summary.csv`) and
the run description (markdown: what ran, the actual periods, the results tables).
`fin_meta.tracking.records` logs them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pandas as pd

from fin_meta.backtest import Evaluation
from fin_meta.backtest.report import PERIOD_METRICS, period_cells
from fin_meta.pipeline.stages import asset_name

__all__ = ["SUMMARY_COLUMNS", "describe_run", "markdown_table", "run_name", "summary_table"]

SUMMARY_COLUMNS = ["source", "strategy", "sharpe", "sharpe_ci_low", "sharpe_ci_high", "gross_sharpe", "total_return",
                   "cagr", "max_drawdown", "turnover", "cost_drag", "ruined_at"]
"""Columns of `test/summary.csv` (the test period): net Sharpe with its CI, gross Sharpe (the same
positions without costs), returns, CAGR and drawdown as fractions, turnover per year, cost drag
(fraction of equity per year), the date a ruined strategy's equity reached zero (empty
otherwise); then `<period>_<metric>` for the in-sample (`train`) and validation (`val`) periods
when scored, for each of `fin_meta.backtest.report.PERIOD_METRICS`."""
_MAX_ASSETS = 3  # assets named in a run name; more are counted


def run_name(algo: str, sources: Sequence[str], seed: int, when: dt.datetime | None = None) -> str:
    """`<algo>-<asset>[+<asset>...]-s<seed>-<YYYYmmdd-HHMMSS>`, e.g. `rl2-sp500-s0-20240101-120000`
    (`when`: now by default; more than three assets end in `+N`)."""
    assets = [asset_name(s) for s in sources]
    named = "+".join(assets[:_MAX_ASSETS]) + (f"+{len(assets) - _MAX_ASSETS}" if len(assets) > _MAX_ASSETS else "")
    return f"{algo}-{named}-s{seed}-{(when or dt.datetime.now()):%Y%m%d-%H%M%S}"


def summary_table(evaluations: Sequence[Evaluation],
                  periods: Mapping[str, Sequence[Evaluation]] | None = None) -> pd.DataFrame:
    """The key test-period figures of every strategy column of every evaluation (`SUMMARY_COLUMNS`),
    each source's rows sorted by Sharpe (its results table's order); `periods` (`{"train": [...],
    "val": [...]}`, one evaluation per source in the same order) adds each period's figures."""
    periods = {name: evs for name, evs in (periods or {}).items() if evs}
    extra = [f"{name}_{metric}" for name in periods for metric in PERIOD_METRICS]
    frames = []
    for i, ev in enumerate(evaluations):
        frame = ev.table.assign(source=ev.name).set_index("strategy", drop=False)
        for name, evs in periods.items():
            other = evs[i].table.set_index("strategy")
            for metric in PERIOD_METRICS:
                frame[f"{name}_{metric}"] = other[metric].reindex(frame.index)
        frames.append(frame.reset_index(drop=True))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SUMMARY_COLUMNS)
    return table.reindex(columns=SUMMARY_COLUMNS + extra)


def markdown_table(summary: pd.DataFrame) -> str:
    """`summary_table` as markdown: the test period (net Sharpe with its 95% CI, gross Sharpe,
    percentages for the rest), then, when other periods were scored, every strategy's figures
    period by period (`train / val / test` in each cell)."""
    header = "| source | strategy | Sharpe | 95% CI | gross Sharpe | return | CAGR | max DD | turnover/yr | cost drag/yr |"
    rows = [header, "|" + "---|" * 10]
    for r in summary.itertuples(index=False):
        ruined = "" if pd.isna(r.ruined_at) else f" (ruined {pd.Timestamp(r.ruined_at).date()})"
        rows.append(f"| {r.source} | {r.strategy}{ruined} | {r.sharpe:.2f} | [{r.sharpe_ci_low:.2f}, {r.sharpe_ci_high:.2f}] "
                    f"| {r.gross_sharpe:.2f} | {r.total_return:+.1%} | {r.cagr:+.1%} | {r.max_drawdown:.1%} "
                    f"| {r.turnover:.1f} | {r.cost_drag:.2%} |")
    periods = [p for p in ("train", "val") if f"{p}_sharpe" in summary.columns]
    if periods:
        names = [*periods, "test"]
        rows += ["", f"By period ({' / '.join(names)}; train is in-sample), net of costs unless gross:", "",
                 "| source | strategy | " + " | ".join(PERIOD_METRICS.values()) + " |",
                 "|" + "---|" * (2 + len(PERIOD_METRICS))]
        for r in summary.to_dict("records"):
            cells = period_cells({**r, **{f"test_{m}": r[m] for m in PERIOD_METRICS}}, names)
            rows.append(f"| {r['source']} | {r['strategy']} | " + " | ".join(cells.values()) + " |")
    return "\n".join(rows) + "\n"


def describe_run(algo: str, sources: Sequence[str], seed: int, iterations: int, periods: Sequence[str],
                 summary: pd.DataFrame | None = None, notes: Sequence[str] = ()) -> str:
    """The run description (markdown, MLflow's `mlflow.note.content`): the algorithm, assets,
    seed and budget, each source's actual periods (`SourceData.describe`), the results table when
    there is one (else a line saying it is still running) and `notes` (e.g. the meta-test's)."""
    assets = ", ".join(f"{asset_name(s)} (`{s}`)" for s in sources)
    lines = [f"**{algo}** on {assets}, seed {seed}, {iterations} iterations", ""]
    lines += [f"- {line}" for line in periods]
    lines.append("")
    if summary is None:
        lines.append("_running: the test-period results appear here when the run finishes_")
    else:
        lines += ["Test period, fees and slippage included (also in `test/summary.csv`):", "", markdown_table(summary)]
    lines += [f"_{note}_" for note in notes]
    return "\n".join(lines).rstrip() + "\n"
