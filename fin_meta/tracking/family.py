"""A family's figures: the metrics of the member runs of a parent run (the seeds of a seed set,
the trials of a sweep; `fin_meta.tracking.nesting`) side by side, and their mean and standard
deviation, which the parent logs as `<metric>.mean` and `<metric>.sd` (`test.sharpe.mean`,
`test.sharpe.buy_and_hold.sd`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fin_meta.tracking.run import Tracker

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["log_family_metrics", "mean_sd", "member_metrics"]


def member_metrics(client: MlflowClient, run_ids: Sequence[str], prefix: str = "test.") -> pd.DataFrame:
    """The latest value of every metric whose name starts with `prefix` of each run: one row per
    run (index: run id, in the order given), one column per metric name; NaN where a run lacks
    the metric (it logged it as non-finite: a `nonfinite.<metric>` tag, or never)."""
    rows = {run_id: {k: v for k, v in client.get_run(run_id).data.metrics.items() if k.startswith(prefix)}
            for run_id in run_ids}
    frame = pd.DataFrame.from_dict(rows, orient="index", dtype=np.float64).reindex(list(run_ids))
    return frame.reindex(columns=sorted(frame.columns))


def mean_sd(frame: pd.DataFrame) -> dict[str, float]:
    """`{<column>.mean: mean, <column>.sd: sample sd (ddof=1)}` over the rows of `frame`; a
    column with a NaN gives NaN (undefined in one member: undefined over the family); the sd of
    one row is NaN."""
    mean = frame.mean(axis=0, skipna=False)
    sd = frame.std(axis=0, ddof=1, skipna=False) if len(frame) > 1 else pd.Series(np.nan, index=frame.columns)
    out: dict[str, float] = {}
    for name in frame.columns:
        out[f"{name}.mean"], out[f"{name}.sd"] = float(mean[name]), float(sd[name])
    return out


def log_family_metrics(tracker: Tracker, run_ids: Sequence[str], prefix: str = "test.",
                       extra: Mapping[str, float] | None = None) -> dict[str, float]:
    """Log on `tracker`'s run (the parent) the `mean_sd` of the `member_metrics` of `run_ids`
    read back from the same store, plus `extra` metrics; returns what was logged (nothing when
    tracking is off)."""
    if not tracker.enabled or not run_ids:
        return {}
    metrics = {**mean_sd(member_metrics(tracker.client, run_ids, prefix)), **(extra or {})}
    tracker.log_metrics(metrics)
    return metrics
