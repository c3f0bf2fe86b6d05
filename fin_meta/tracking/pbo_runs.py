"""The probability of backtest overfitting across logged runs (`fin-meta compare --pbo`): read
each run's per-bar returns (`<period>/returns.csv`, its headline column: the agent of a
`fin-meta run`, the first strategy of a `fin-meta backtest`), put them side by side on their
common bars, run CSCV (`fin_meta.overfitting.pbo`) and log the result to a new run of the
experiment tagged `nesting.ROLE_TAG` = `pbo` (`pbo/logits.csv`, `pbo/runs.json`,
`plots/pbo_logits.png`, metric `pbo`), which `fin-meta compare` does not list.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from fin_meta.errors import ConfigError, DataError
from fin_meta.overfitting import (
    DEFAULT_BLOCKS,
    PBOResult,
    check_blocks,
    probability_of_backtest_overfitting,
)
from fin_meta.plots.pbo import plot_pbo_logits
from fin_meta.tracking.nesting import ROLE_TAG
from fin_meta.tracking.run import start_run
from fin_meta.tracking.store import open_client, resolve_tracking_uri
from fin_meta.tracking.trials import PBO_ROLE

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["PERIODS", "RunsPBO", "compare_pbo", "log_pbo", "pbo_of_runs", "period_folder", "returns_of_runs"]

PERIODS = {"test": "test", "validation": "val", "val": "val"}
"""`--on` values and the artifact folder of their returns."""


@dataclass
class RunsPBO:
    """The PBO of runs: `result` (`PBOResult`), `returns` (bars x runs, columns = run ids: the
    common bars), the `period` folder read (`test`, `val`), `skipped` (run id -> why) and the run
    it was logged to (None before `log_pbo`)."""

    result: PBOResult
    returns: pd.DataFrame
    period: str
    skipped: dict[str, str] = field(default_factory=dict)
    logged_run_id: str | None = None

    def describe(self) -> list[str]:
        """Lines for the console: what was used, the PBO, what was skipped, where it was logged."""
        r, idx = self.result, self.returns.index
        lines = [f"PBO (CSCV) over {r.n_strategies} runs' {self.period} returns, {len(idx):,} common bars "
                 f"({idx[0].date()} .. {idx[-1].date()}), S={r.n_blocks} blocks, {r.n_splits:,} splits: "
                 f"PBO = {r.pbo:.2f}",
                 f"  median logit {float(pd.Series(r.logits).median()):+.2f}; the in-sample winner loses money "
                 f"out of sample in {r.prob_oos_loss:.0%} of splits"]
        lines += [f"  skipped {run_id[:8]}: {why}" for run_id, why in self.skipped.items()]
        if self.logged_run_id:
            lines.append(f"  logged to MLflow run {self.logged_run_id} (pbo/logits.csv, plots/pbo_logits.png)")
        return lines


def period_folder(on: str) -> str:
    """The artifact folder of the `--on` period (`test`, `val`); `ConfigError` for another value."""
    if on not in PERIODS:
        raise ConfigError(f"--on: expected test or validation, got {on!r}")
    return PERIODS[on]


def _headline_returns(client: MlflowClient, run_id: str, folder: str, scratch: Path) -> pd.Series | str:
    """The run's headline per-bar returns of `folder`, or why there are none."""
    entries = {Path(f.path).name: f for f in client.list_artifacts(run_id, folder)}
    if "returns.csv" not in entries:
        if any(f.is_dir for f in entries.values()):
            return f"several sources under {folder}/; PBO needs one return series per run"
        return (f"no {folder}/returns.csv (not scored on that period, or logged before fin-meta logged returns)")
    local = client.download_artifacts(run_id, f"{folder}/returns.csv", str(scratch))
    frame = pd.read_csv(local, index_col=0, parse_dates=True)
    if frame.shape[1] == 0 or len(frame) == 0:
        return f"{folder}/returns.csv is empty"
    return frame.iloc[:, 0].astype(float)


def returns_of_runs(client: MlflowClient, run_ids: list[str], on: str = "test", at_least: int = 2
                    ) -> tuple[pd.DataFrame, dict[str, str]]:
    """The headline per-bar returns of `run_ids` on their common bars (bars x run ids) and the
    runs skipped (run id -> why: not FINISHED, no returns for that period, several sources);
    `DataError` saying why when fewer than `at_least` runs have them."""
    folder = period_folder(on)
    columns: dict[str, pd.Series] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="fin-meta-pbo-") as scratch:
        for run_id in run_ids:
            status = client.get_run(run_id).info.status
            found = (_headline_returns(client, run_id, folder, Path(scratch)) if status == "FINISHED"
                     else f"status {status}")
            if isinstance(found, str):
                skipped[run_id] = found
            else:
                columns[run_id] = found
    if len(columns) < at_least:
        reasons: dict[str, list[str]] = {}
        for run_id, reason in skipped.items():
            reasons.setdefault(reason, []).append(run_id[:8])
        why = "; ".join(f"{', '.join(ids)}: {reason}" for reason, ids in reasons.items())
        skips = f" (skipped {why})" if why else ""
        if at_least < 2:
            raise DataError(f"no run has usable {folder} returns{skips}")
        raise DataError(f"PBO needs the {folder} returns of at least {at_least} finished runs, found {len(columns)}"
                        f"{skips}; log more runs or widen the selection (--top)")
    matrix = pd.concat(columns, axis=1, join="inner").sort_index()
    if matrix.empty:
        raise DataError(f"PBO: the runs' {folder} periods share no bar; compare runs on the same data and period")
    return matrix, skipped


def pbo_of_runs(client: MlflowClient, run_ids: list[str], on: str = "test", n_blocks: int = DEFAULT_BLOCKS
                ) -> RunsPBO:
    """CSCV PBO across `run_ids` from their `on` (`test` or `validation`) returns (module
    docstring). Raises `DataError`/`ConfigError` (one line) for fewer than 2 usable runs, an odd
    or too large `n_blocks` or too few common bars."""
    folder = period_folder(on)
    check_blocks(n_blocks)  # before any download
    matrix, skipped = returns_of_runs(client, run_ids, on)
    result = probability_of_backtest_overfitting(matrix, n_blocks)
    return RunsPBO(result=result, returns=matrix, period=folder, skipped=skipped)


def log_pbo(outcome: RunsPBO, experiment: str, tracking_uri: str | None = None, plot: Path | None = None) -> RunsPBO:
    """Log `outcome` to a new run of `experiment` (module docstring; also write the logit
    histogram to `plot` when given) and return it with `logged_run_id` set."""
    r = outcome.result
    table = pd.DataFrame({"logit": r.logits, "is_sharpe": r.is_sharpe, "oos_sharpe": r.oos_sharpe})
    params = {"pbo": {"on": outcome.period, "blocks": r.n_blocks, "runs": r.n_strategies,
                      "bars": len(outcome.returns)}}
    draw = partial(plot_pbo_logits, r.logits, r.pbo)
    with start_run(experiment, run_name=f"pbo-{outcome.period}-{r.n_strategies}-runs", params=params,
                   tags={ROLE_TAG: PBO_ROLE, "job": "pbo"}, tracking_uri=tracking_uri) as tracker:
        tracker.log_metrics({"pbo": r.pbo, "pbo.prob_oos_loss": r.prob_oos_loss,
                             "pbo.median_logit": float(pd.Series(r.logits).median())})
        tracker.log_table(table, "pbo/logits.csv")
        tracker.log_dict({"runs": list(outcome.returns.columns), "skipped": outcome.skipped}, "pbo/runs.json")
        tracker.log_figure(draw, "plots/pbo_logits.png")
        outcome.logged_run_id = tracker.run_id
    if plot is not None:
        draw(plot)
    return outcome


def compare_pbo(run_ids: list[str], on: str = "test", n_blocks: int = DEFAULT_BLOCKS, tracking_uri: str | None = None,
                plot: Path | None = None) -> RunsPBO:
    """`fin-meta compare --pbo`: `pbo_of_runs` of `run_ids` (e.g. the index of `compare_runs`) on
    the store of `tracking_uri`, logged (`log_pbo`) to the experiment of the first run."""
    uri = resolve_tracking_uri(tracking_uri)
    client = open_client(uri, must_exist=True)
    outcome = pbo_of_runs(client, run_ids, on, n_blocks)
    experiment = client.get_experiment(client.get_run(outcome.returns.columns[0]).info.experiment_id).name
    return log_pbo(outcome, experiment, uri, plot)
