"""What the jobs write to MLflow, in one place (compute, then log): an `Evaluation`
(`log_evaluation`, shared by `fin-meta run` and `fin-meta backtest`), the validation scores
during training (`log_validation`), the meta-test's adaptation curves (`log_meta_test`), the
mean over several sources (`log_mean_over_sources`), the summary table (`log_summary`) and the
run's description (`set_description`).

One artifact naming for both jobs (`<folder>` is `<period>`, or `<period>/<name>` with several
sources; `<period>` is `test`, or for `fin-meta run` also `train` (in-sample) and `val`;
`<name>` is the evaluation's asset name, e.g. `sp500`):

    <folder>/stats.csv  <folder>/results.csv  <folder>/by_regime.csv  <folder>/positions.csv
    <folder>/returns.csv   (per-bar net returns of every column: what `fin-meta compare --pbo` reads)
    <folder>/regimes.csv   (the causal regime label and its name per bar, when the evaluation has labels)
    plots/equity_<name>.png  plots/equity_<name>.html  plots/regimes_<name>.png   (test only)
    meta_test/adaptation_segments.csv  meta_test/adaptation_curve.csv  plots/adaptation_curve.png
    test/summary.csv  test/summary.md   (every source and strategy: what a user came for)

Metrics: `<folder with dots>.<stat>` for the headline (first) column, `....<stat>.<column>` for
the others (`test.sharpe`, `test.gross_sharpe.buy_and_hold`, `test.SPY.sharpe`, `train.sharpe`,
`val.cost_drag.ppo`), logged after the evaluation's files. During training, each validation
evaluation logs `val.<metric>` (`ppo.val.<metric>` for the pooled baseline) at step = iterations
trained; the selected agents' `val.*` figures are then logged at the last training step, so
that a run's latest `val.sharpe` is that of the agent tested. The tracker decides whether
anything is written or drawn (nothing when tracking is off).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import pandas as pd

from fin_meta.backtest import Evaluation
from fin_meta.plots.adaptation import plot_adaptation
from fin_meta.plots.equity import plot_equity_png
from fin_meta.plots.regimes import plot_regimes
from fin_meta.regimes import WARMUP, WARMUP_NAME, regime_names
from fin_meta.tracking.run import Tracker

__all__ = ["DESCRIPTION_TAG", "log_evaluation", "log_meta_test", "log_mean_over_sources", "log_summary",
           "log_validation", "set_description"]

DESCRIPTION_TAG = "mlflow.note.content"
"""The tag the MLflow UI shows (and edits) as the run's description, in markdown."""


def log_evaluation(tracker: Tracker, evaluation: Evaluation, folder: str = "test", *, plots: bool = True,
                   offline_html: bool = False, step: int | None = None) -> None:
    """Log `evaluation`: its tables under `folder`, its charts under `plots/` unless `plots` is
    False (names in the module docstring), then its stats as metrics (at `step`). The HTML chart
    loads plotly.js from its CDN, or embeds it with `offline_html` (about 4.5 MB, opens offline)."""
    name, result = evaluation.name, evaluation.result
    tracker.log_table(evaluation.stats.reset_index(names="strategy"), f"{folder}/stats.csv")
    tracker.log_table(evaluation.table, f"{folder}/results.csv")
    if evaluation.by_regime is not None:
        tracker.log_table(evaluation.by_regime.reset_index(), f"{folder}/by_regime.csv")
    if evaluation.labels is not None:  # what `fin-meta report` shades its charts with
        names = {WARMUP: WARMUP_NAME, **regime_names(evaluation.labels)}
        regimes = pd.DataFrame({"regime": evaluation.labels, "name": evaluation.labels.map(names)})
        tracker.log_table(regimes.rename_axis("date").reset_index(), f"{folder}/regimes.csv")
    tracker.log_table(evaluation.positions.reset_index(), f"{folder}/positions.csv")
    tracker.log_table(pd.DataFrame(result.returns).reset_index(), f"{folder}/returns.csv")
    if plots:
        tracker.log_figure(partial(plot_equity_png, result.equity), f"plots/equity_{name}.png")  # = result.plot
        tracker.log_figure(partial(result.plot_html, include_plotlyjs=True if offline_html else "cdn"),
                           f"plots/equity_{name}.html")
        if evaluation.labels is not None:
            draw = partial(plot_regimes, evaluation.prices, evaluation.labels, title=f"{name}: regimes (causal)")
            tracker.log_figure(draw, f"plots/regimes_{name}.png")
    tracker.log_stats(evaluation.stats, prefix=folder.replace("/", ".") + ".", step=step)


def log_validation(tracker: Tracker, scores: Mapping[str, float], step: int, prefix: str = "val.") -> None:
    """Log one validation evaluation during training: `<prefix><metric>` at `step` (iterations trained)."""
    tracker.log_metrics({f"{prefix}{k}": v for k, v in scores.items()}, step=step)


def log_meta_test(tracker: Tracker, curves: pd.DataFrame, summary: pd.DataFrame) -> None:
    """Log the meta-test: per-segment `curves` and their `summary` as tables, and its chart."""
    tracker.log_table(curves, "meta_test/adaptation_segments.csv")
    tracker.log_table(summary, "meta_test/adaptation_curve.csv")
    tracker.log_figure(partial(plot_adaptation, summary), "plots/adaptation_curve.png")


def log_mean_over_sources(tracker: Tracker, evaluations: Sequence[Evaluation], prefix: str = "test.",
                          step: int | None = None) -> None:
    """With several evaluations (sources), log the mean of their stats as `<prefix><stat>[.<column>]`
    (the headline metrics to compare runs by) at `step`; nothing for one."""
    if len(evaluations) < 2:
        return
    mean = sum(ev.stats for ev in evaluations) / len(evaluations)
    tracker.log_stats(mean, prefix=prefix, step=step)


def log_summary(tracker: Tracker, summary: pd.DataFrame, markdown: str, folder: str = "test") -> None:
    """Log the summary table of the test period as `<folder>/summary.csv` and its markdown
    rendering as `<folder>/summary.md`."""
    tracker.log_table(summary, f"{folder}/summary.csv")
    tracker.log_text(markdown, f"{folder}/summary.md")


def set_description(tracker: Tracker, markdown: str) -> None:
    """Set the run's description (`DESCRIPTION_TAG`), replacing the previous one."""
    tracker.set_tags({DESCRIPTION_TAG: markdown})
