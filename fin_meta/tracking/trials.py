"""How many trials a run's test Sharpe was picked from, read from MLflow: the N and the variance
of the trials' Sharpes that the deflated Sharpe ratio (`fin_meta.overfitting`) needs.

The trials of a run are the run itself and the FINISHED runs of its experiment tested on the
same data and test period (`trial_key`, from their params): `fin-meta run` and `fin-meta
backtest` jobs, and the seed and trial children of seed sets and sweeps. Parent runs
(`nesting.ROLE_TAG` = `parent`) only summarise their children and do not count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fin_meta.constants import BARS_PER_YEAR
from fin_meta.tracking.nesting import ROLE_TAG

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

__all__ = ["PBO_ROLE", "TRIALS_TAG", "Trials", "count_trials", "sharpe_variance", "trial_key"]

TRIALS_TAG = "dsr.trials"
"""The tag with the N trials a run's logged `test.dsr` accounts for (`dsr.trials.<name>` per
source when a run has several)."""
PBO_ROLE = "pbo"
"""`nesting.ROLE_TAG` of the run that `fin-meta compare --pbo` logs its result to: an analysis
of other runs, neither a trial nor a row of `fin-meta compare`."""
_NOT_TRIALS = {"parent", PBO_ROLE}
_UNSET = {"", "None"}


@dataclass(frozen=True)
class Trials:
    """n: the number of trials (the run included). sharpe_variance: the sample variance (ddof=1)
    of their per-bar Sharpes (the `metric` / sqrt(bars per year)), 0.0 with fewer than two
    finite ones. run_ids: the trials, the run first. metric: the Sharpe metric read."""

    n: int
    sharpe_variance: float
    run_ids: list[str]
    metric: str


def trial_key(params: Mapping[str, str]) -> tuple[object, ...] | None:
    """What makes two runs trials on the same test: the sources, the first and last test date
    as configured, the sources' loader params and the bars per year, from a run's params;
    None for a run that logged neither a `fin-meta run` nor a `fin-meta backtest` config.
    A `fin-meta backtest` job tests the whole range it loaded (`--start` .. `--end`)."""
    bars = params.get("data.bars_per_year")
    if "data.sources" in params:  # fin-meta run: the test period of the config
        end = params.get("data.test_end", "None")
        end = params.get("data.end", "None") if end in _UNSET else end
        loader = tuple(sorted((k, v) for k, v in params.items() if k.startswith("data.source_params")))
        return (params["data.sources"], params.get("data.test_start", "None"), end, loader, bars)
    if "data.source" in params:  # fin-meta backtest
        return (params["data.source"], params.get("data.start", "None"), params.get("data.end", "None"), (), bars)
    return None


def _per_bar(run: Run, metric: str) -> float:
    """The run's `metric` (an annualised Sharpe) per bar; NaN when it did not log it."""
    value = run.data.metrics.get(metric, math.nan)
    try:
        bars = float(run.data.params.get("data.bars_per_year", BARS_PER_YEAR))
    except ValueError:
        bars = float(BARS_PER_YEAR)
    return value / math.sqrt(bars) if bars > 0 else math.nan


def count_trials(client: MlflowClient, run_id: str, metric: str = "test.sharpe") -> Trials:
    """The trials of run `run_id` (module docstring) and the variance of their per-bar `metric`
    (`test.sharpe`, or `test.<name>.sharpe` for one source of several). The run counts whatever
    its status (it is usually still RUNNING when its DSR is logged)."""
    from fin_meta.tracking.query import search_all_runs  # query imports this module: import it here

    run = client.get_run(run_id)
    key = trial_key(run.data.params)
    others: list[Run] = []
    if key is not None:
        finished = search_all_runs(client, [run.info.experiment_id], filter_string="attributes.status = 'FINISHED'")
        others = [r for r in finished if r.info.run_id != run_id and r.data.tags.get(ROLE_TAG) not in _NOT_TRIALS
                  and trial_key(r.data.params) == key]
    trials = [run, *others]
    variance = sharpe_variance([_per_bar(r, metric) for r in trials])
    return Trials(n=len(trials), sharpe_variance=variance, run_ids=[r.info.run_id for r in trials], metric=metric)


def sharpe_variance(sharpes: object) -> float:
    """The sample variance (ddof=1) of the finite trials' `sharpes` (per bar): the V of the
    deflated Sharpe ratio; 0.0 with fewer than two finite ones."""
    values = np.asarray(sharpes, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    return float(np.var(values, ddof=1)) if len(values) >= 2 else 0.0
