"""What the jobs write to MLflow, in one place (compute, then log): an `Evaluation`
(`log_evaluation`, shared by `fin-meta run` and `fin-meta backtest`), the meta-test's adaptation
curves (`log_meta_test`) and the mean over several sources (`log_mean_over_sources`).

One artifact naming for both jobs (`<folder>` is `test`, or `test/<name>` with several sources;
`<name>` is the evaluation's asset name, e.g. `sp500`):

    <folder>/stats.csv  <folder>/results.csv  <folder>/by_regime.csv  <folder>/positions.csv
    plots/equity_<name>.png  plots/equity_<name>.html  plots/regimes_<name>.png
    meta_test/adaptation_segments.csv  meta_test/adaptation_curve.csv  plots/adaptation_curve.png

Metrics: `<folder with dots>.<stat>` for the headline (first) column, `....<stat>.<column>` for
the others (`test.sharpe`, `test.sharpe.buy_and_hold`, `test.SPY.sharpe`). The tracker decides
whether anything is written or drawn (nothing when tracking is off).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import pandas as pd

from fin_meta.backtest import Evaluation
from fin_meta.plots.adaptation import plot_adaptation
from fin_meta.plots.regimes import plot_regimes
from fin_meta.tracking.run import Tracker

__all__ = ["log_evaluation", "log_meta_test", "log_mean_over_sources"]


def log_evaluation(tracker: Tracker, evaluation: Evaluation, folder: str = "test") -> None:
    """Log `evaluation`: its stats as metrics, its tables under `folder`, its charts under
    `plots/` (names in the module docstring)."""
    name, result = evaluation.name, evaluation.result
    tracker.log_stats(evaluation.stats, prefix=folder.replace("/", ".") + ".")
    tracker.log_table(evaluation.stats.reset_index(names="strategy"), f"{folder}/stats.csv")
    tracker.log_table(evaluation.table, f"{folder}/results.csv")
    if evaluation.by_regime is not None:
        tracker.log_table(evaluation.by_regime.reset_index(), f"{folder}/by_regime.csv")
    tracker.log_table(evaluation.positions.reset_index(), f"{folder}/positions.csv")
    tracker.log_figure(result.plot, f"plots/equity_{name}.png")
    tracker.log_figure(result.plot_html, f"plots/equity_{name}.html")
    if evaluation.labels is not None:
        draw = partial(plot_regimes, evaluation.prices, evaluation.labels, title=f"{name}: regimes (causal)")
        tracker.log_figure(draw, f"plots/regimes_{name}.png")


def log_meta_test(tracker: Tracker, curves: pd.DataFrame, summary: pd.DataFrame) -> None:
    """Log the meta-test: per-segment `curves` and their `summary` as tables, and its chart."""
    tracker.log_table(curves, "meta_test/adaptation_segments.csv")
    tracker.log_table(summary, "meta_test/adaptation_curve.csv")
    tracker.log_figure(partial(plot_adaptation, summary), "plots/adaptation_curve.png")


def log_mean_over_sources(tracker: Tracker, evaluations: Sequence[Evaluation], prefix: str = "test.") -> None:
    """With several evaluations (sources), log the mean of their stats as `<prefix><stat>[.<column>]`
    (the headline metrics to compare runs by); nothing for one."""
    if len(evaluations) < 2:
        return
    mean = sum(ev.stats for ev in evaluations) / len(evaluations)
    tracker.log_stats(mean, prefix=prefix)
