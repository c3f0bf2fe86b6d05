"""The probabilistic and deflated Sharpe ratios of a job's test evaluations, logged at the end of
`fin-meta run` and `fin-meta backtest` once the test metrics are in MLflow.

Metrics follow the test metrics' names (`fin_meta.tracking.records`): `test.psr`, `test.dsr`
for the headline column, `test.dsr.<column>` for the others (`test.<name>.dsr` per source when
a run has several). Every column is deflated by the same trials: the runs of the experiment on
the same data and test period (`fin_meta.tracking.trials`), their number N in the tag
`dsr.trials` and the variance of their per-bar Sharpes in `dsr.sharpe_var`. A run counts the
trials finished before it: an earlier run's DSR accounts for fewer.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from fin_meta.backtest import Evaluation
from fin_meta.overfitting import deflated_sharpe_ratio, probabilistic_sharpe_ratio, sharpe_moments
from fin_meta.tracking.background import call_with_client
from fin_meta.tracking.run import Tracker
from fin_meta.tracking.trials import TRIALS_TAG, Trials, count_trials

__all__ = ["deflated_table", "log_deflated_sharpe"]


def deflated_table(evaluation: Evaluation, n_trials: int, sharpe_variance: float) -> pd.DataFrame:
    """`psr` (against a Sharpe of 0) and `dsr` (against the expected best of `n_trials` with
    per-bar Sharpe variance `sharpe_variance`) of every strategy column of `evaluation`, from
    its per-bar net returns; index = the columns in the order of `evaluation.stats`."""
    returns = pd.DataFrame(evaluation.result.returns)
    m = sharpe_moments(returns.to_numpy())
    table = pd.DataFrame(
        {"psr": probabilistic_sharpe_ratio(m.sharpe, m.n_bars, m.skew, m.kurtosis),
         "dsr": deflated_sharpe_ratio(m.sharpe, m.n_bars, m.skew, m.kurtosis, n_trials, sharpe_variance)},
        index=returns.columns,
    )
    return table.reindex(evaluation.stats.index)


def log_deflated_sharpe(tracker: Tracker, evaluations: Sequence[Evaluation], period: str = "test") -> list[Trials]:
    """Log the PSR and DSR of each evaluation of `period` (module docstring) after its Sharpe
    metrics were logged; returns the trials counted per evaluation (none when not tracked: the
    trials live in MLflow)."""
    if not tracker.enabled:
        return []
    counted = []
    for ev in evaluations:
        several = len(evaluations) > 1
        prefix = f"{period}.{ev.name}." if several else f"{period}."
        # where the tracker's MLflow client lives (fin-meta backtest: a background process)
        trials = call_with_client(tracker, count_trials, tracker.run_id, metric=f"{prefix}sharpe")
        tracker.log_stats(deflated_table(ev, trials.n, trials.sharpe_variance), prefix=prefix)
        suffix = f".{ev.name}" if several else ""
        tracker.set_tags({f"{TRIALS_TAG}{suffix}": trials.n, f"dsr.sharpe_var{suffix}": f"{trials.sharpe_variance:.6g}"})
        counted.append(trials)
    return counted
