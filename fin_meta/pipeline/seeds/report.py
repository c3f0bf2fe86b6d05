"""The results of a seed set: `summarise` (one table of every source and strategy: mean ± sd
over seeds, and the agent's paired Sharpe difference with its CI pooled over seeds), its
terminal and markdown renderings, the parent run's description, and `SeedSetOutcome`, what
`run_seeds` returns (with `print_report`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fin_meta.config import ExperimentConfig
from fin_meta.pipeline.seeds.child import SeedResult
from fin_meta.pipeline.seeds.parse import seed_label
from fin_meta.pipeline.seeds.pooled import SEED_METRICS, paired_sharpe_diff, seed_table
from fin_meta.tracking import resolve_tracking_uri

__all__ = ["SeedSetOutcome", "diff_metrics", "describe_set", "format_seed_table", "markdown_seed_table", "summarise"]

DIFF_COLUMNS = ["sharpe_diff", "sharpe_diff_ci_low", "sharpe_diff_ci_high"]
_FORMATS = {"sharpe": "{:.2f}", "gross_sharpe": "{:.2f}", "total_return": "{:+.1%}", "max_drawdown": "{:.1%}",
            "turnover": "{:.1f}", "cost_drag": "{:.2%}"}
_HEADERS = {"sharpe": "net Sharpe", "gross_sharpe": "gross Sharpe", "total_return": "return",
            "max_drawdown": "max DD", "turnover": "turnover/yr", "cost_drag": "cost drag/yr"}


def summarise(children: Sequence[SeedResult], *, n_resamples: int, seed: int) -> pd.DataFrame:
    """Per source (`source`) and strategy: `seeds.pooled.seed_table`'s `<metric>_mean` /
    `<metric>_sd`, and for every strategy but the agent its `sharpe_diff` (agent minus it, mean
    over seeds) with `sharpe_diff_ci_low` / `_high`, the paired 95% CI pooled over seeds
    (`seeds.pooled.paired_sharpe_diff`, `n_resamples` draws seeded by `seed`)."""
    frames = []
    for i, first in enumerate(children[0].sources):
        per_seed = [child.sources[i] for child in children]
        table = seed_table([s.table for s in per_seed])
        diff = paired_sharpe_diff([s.returns for s in per_seed], children[0].agent,
                                  bars_per_year=first.bars_per_year, n_resamples=n_resamples, seed=seed)
        frames.append(table.merge(diff, on="strategy", how="left").assign(source=first.name))
    out = pd.concat(frames, ignore_index=True)
    return out[["source", "strategy", "seeds", *[c for c in out.columns if c not in ("source", "strategy", "seeds")]]]


def diff_metrics(summary: pd.DataFrame, prefix: str = "test.") -> dict[str, float]:
    """The paired differences as parent metrics: `test.sharpe_diff.<strategy>` and its
    `.ci_low` / `.ci_high` (`test.<source>.sharpe_diff...` with several sources)."""
    several = summary["source"].nunique() > 1
    out: dict[str, float] = {}
    for row in summary.dropna(subset=["sharpe_diff_ci_low"]).to_dict("records"):
        name = f"{prefix}{row['source']}.sharpe_diff.{row['strategy']}" if several else \
            f"{prefix}sharpe_diff.{row['strategy']}"
        out[name] = row["sharpe_diff"]
        out[f"{name}.ci_low"], out[f"{name}.ci_high"] = row["sharpe_diff_ci_low"], row["sharpe_diff_ci_high"]
    return out


def _mean_sd(row: Any, metric: str) -> str:
    fmt = _FORMATS[metric]
    mean, sd = row[f"{metric}_mean"], row[f"{metric}_sd"]
    text = "-" if pd.isna(mean) else fmt.format(mean)
    return text if pd.isna(sd) else f"{text} ± {fmt.format(sd).lstrip('+')}"


def _cells(row: Any) -> dict[str, str]:
    cells = {_HEADERS[m]: _mean_sd(row, m) for m in SEED_METRICS}
    low, high = row["sharpe_diff_ci_low"], row["sharpe_diff_ci_high"]
    cells["Δ Sharpe"] = "" if pd.isna(row["sharpe_diff"]) else f"{row['sharpe_diff']:+.2f}"
    cells["paired 95% CI"] = "" if pd.isna(low) else f"[{low:+.2f}, {high:+.2f}]"
    return cells


def format_seed_table(summary: pd.DataFrame) -> str:
    """One source's rows of `summarise` for a terminal: mean ± sd cells, then Δ Sharpe and its CI."""
    rows = [{"strategy": row["strategy"], **_cells(row)} for row in summary.to_dict("records")]
    return pd.DataFrame(rows).to_string(index=False)


def markdown_seed_table(summary: pd.DataFrame) -> str:
    """`summarise` as a markdown table (every source)."""
    headers = ["source", "strategy", *_HEADERS.values(), "Δ Sharpe", "paired 95% CI"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in summary.to_dict("records"):
        lines.append(f"| {row['source']} | {row['strategy']} | " + " | ".join(_cells(row).values()) + " |")
    return "\n".join(lines) + "\n"


def _legend(agent: str, n_seeds: int) -> str:
    return (f"mean ± sd over {n_seeds} seeds, fees and slippage included; Δ Sharpe: {agent} minus the strategy "
            "(net, mean over seeds) with its paired 95% block-bootstrap CI pooled over seeds")


def describe_set(config: ExperimentConfig, seeds: Sequence[int], summary: pd.DataFrame | None,
                 children: Sequence[SeedResult] = (), agent: str | None = None) -> str:
    """The parent run's description (markdown): what ran, its children, the results table."""
    assets = ", ".join(f"`{s}`" for s in config.data.sources)
    lines = [f"**{config.agent.algo}** on {assets}, seeds {seed_label(seeds)} ({len(seeds)} runs, one per seed, "
             f"nested below), {config.agent.iterations} iterations each", ""]
    if summary is None:
        lines.append("_running: the results over seeds appear here when every seed has finished_")
    else:
        lines += [f"Test period, {_legend(agent or config.agent.algo, len(seeds))} (also in `seeds/summary.csv`):",
                  "", markdown_seed_table(summary)]
        lines += [f"- seed {c.seed}: run `{c.run_id}`" for c in children if c.run_id]
    return "\n".join(lines).rstrip() + "\n"


@dataclass
class SeedSetOutcome:
    """What `run_seeds` produced: the set's config and seeds, each seed's `SeedResult` (in seed
    order), the `summarise` table, the parent MLflow run (None untracked), its store, the wall
    seconds and how many seeds ran at a time."""

    config: ExperimentConfig
    seeds: list[int]
    children: list[SeedResult]
    summary: pd.DataFrame
    run_id: str | None = None
    tracking_uri: str | None = None
    wall_s: float = 0.0
    jobs: int = 1
    agent: str = ""
    notes: list[str] = field(default_factory=list)

    def print_report(self, echo: Callable[[str], Any] = print) -> None:
        """Print each seed's run, per source the table over seeds, the wall time and the parent run."""
        echo(f"\nseed set {seed_label(self.seeds)}: {len(self.seeds)} runs of {self.config.name}, "
             f"{self.jobs} at a time")
        for child in self.children:
            head = child.sources[0].table.set_index("strategy")["sharpe"].get(child.agent, np.nan) \
                if child.sources else np.nan
            run = f", MLflow run {child.run_id}" if child.run_id else ""
            where = f" on {child.sources[0].name}" if len(child.sources) > 1 else ""
            echo(f"  seed {child.seed}: {child.agent} net Sharpe {head:.2f}{where}{run}")
        bars_of = {source.name: source.returns.index for source in self.children[0].sources}
        for name, part in self.summary.groupby("source", sort=False):
            bars = bars_of[name]
            echo(f"\n{name} test period {bars[0].date()} .. {bars[-1].date()} ({len(bars):,} bars), "
                 f"{_legend(self.agent, len(self.seeds))}:")
            echo(format_seed_table(part))
        for note in self.notes:
            echo(f"\n{note}")
        echo(f"\nwall time {self.wall_s:.0f} s")
        if self.run_id:
            uri = resolve_tracking_uri(self.tracking_uri)
            echo(f"MLflow parent run {self.run_id} in {uri}, a child run per seed nested under it")
            echo(f"  open the UI:   fin-meta ui --tracking-uri {uri}")
