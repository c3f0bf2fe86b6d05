"""Reading runs back: `compare_runs` (the `fin-meta compare` table) and `latest_run_id`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from fin_meta.tracking.store import (
    TrackingError,
    active_experiments,
    find_experiment,
    open_client,
    resolve_tracking_uri,
)

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

__all__ = ["compare_runs", "latest_run_id", "search_all_runs"]

_INFO_COLUMNS = ["run_id", "run_name", "status", "start_time"]


def search_all_runs(
    client: MlflowClient,
    experiment_ids: list[str],
    *,
    filter_string: str = "",
    max_results: int | None = None,
) -> list[Run]:
    """Active runs of the experiments, newest first, following MLflow's pages (at most
    `max_results` when given)."""
    runs: list[Run] = []
    token = None
    while max_results is None or len(runs) < max_results:
        page = client.search_runs(
            experiment_ids,
            filter_string=filter_string,
            order_by=["attributes.start_time DESC"],
            max_results=1000 if max_results is None else min(1000, max_results - len(runs)),
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    return runs


def _experiment_ids(client: MlflowClient, experiment: str | None) -> list[str]:
    """[id of `experiment`], or for None the experiment of the most recently started run."""
    if experiment is not None:
        return [find_experiment(client, experiment)]
    all_ids = [exp.experiment_id for exp in active_experiments(client)]
    latest = search_all_runs(client, all_ids, max_results=1) if all_ids else []
    if not latest:
        raise TrackingError(
            f"no runs yet in {client.tracking_uri}: log one first (fin-meta backtest / fin-meta run)"
        )
    return [latest[0].info.experiment_id]


def latest_run_id(
    experiment: str | None = None, tracking_uri: str | None = None, *, finished_only: bool = True
) -> str:
    """The full id of the most recently started run of `experiment` (None: of the most recently
    active experiment), by default among FINISHED runs only (a failed run may lack artifacts).
    For notebooks: `load_agent(f"runs:/{latest_run_id('quickstart')}/agent")`."""
    client = open_client(resolve_tracking_uri(tracking_uri), must_exist=True)
    ids = _experiment_ids(client, experiment)
    flt = "attributes.status = 'FINISHED'" if finished_only else ""
    runs = search_all_runs(client, ids, filter_string=flt, max_results=1)
    if not runs:
        which = "finished runs" if finished_only else "runs"
        raise TrackingError(
            f"no {which} in MLflow experiment {experiment or ids[0]!r} of {client.tracking_uri}"
        )
    return runs[0].info.run_id


def _metric_order(name: str) -> tuple[int, str]:
    """`test.<stat>` first, then other `test.*`, then the rest, each alphabetical."""
    if name.startswith("test."):
        return (0 if name.count(".") == 1 else 1, name)
    return (2, name)


def _resolve_metric(metric: str, available: set[str]) -> str:
    if metric in available:
        return metric
    if f"test.{metric}" in available:  # `--metric sharpe` means the test Sharpe
        return f"test.{metric}"
    listed = ", ".join(sorted(available, key=_metric_order)) or "none"
    raise TrackingError(f"no run logged metric {metric!r}; available metrics: {listed}")


def compare_runs(
    experiment: str | None = None,
    *,
    metric: str = "test.sharpe",
    top: int | None = None,
    tracking_uri: str | None = None,
    ascending: bool = False,
    all_metrics: bool = False,
) -> pd.DataFrame:
    """Runs of `experiment` (None: the most recently active one) side by side, one row each:
    `run_id` (first 8 characters; the full id is the index), `run_name`, `status`,
    `start_time` (UTC), then the params whose values differ between the listed runs, then the
    metrics (`test.<stat>` first, then other `test.*`, then the rest). Sorted by `metric`
    (descending unless `ascending`; runs without it last) and cut to the `top` N. `metric` may
    omit the `test.` prefix. Key metrics only: per-column metrics such as
    `test.sharpe.buy_and_hold` appear only with `all_metrics` (or when sorted by).
    Raises `TrackingError` for an unknown experiment (listing the existing ones), a metric no
    run logged (listing the available ones) or a missing store."""
    if top is not None and top < 1:
        raise TrackingError(f"--top must be at least 1, got {top}")
    client = open_client(resolve_tracking_uri(tracking_uri), must_exist=True)
    runs = search_all_runs(client, _experiment_ids(client, experiment))
    if not runs:
        raise TrackingError(
            f"MLflow experiment {experiment!r} has no runs yet in {client.tracking_uri}"
        )
    metrics = pd.DataFrame(
        [run.data.metrics for run in runs], index=[run.info.run_id for run in runs], dtype=float
    )
    sort_by = _resolve_metric(metric, set(metrics.columns))
    metrics = metrics.sort_values(sort_by, ascending=ascending, na_position="last", kind="stable")
    if top is not None:
        metrics = metrics.iloc[:top]
    by_id = {run.info.run_id: run for run in runs}
    listed = [by_id[run_id] for run_id in metrics.index]
    info = pd.DataFrame(
        {
            "run_id": [r.info.run_id[:8] for r in listed],
            "run_name": [r.info.run_name for r in listed],
            "status": [r.info.status for r in listed],
            "start_time": pd.to_datetime([r.info.start_time for r in listed], unit="ms").floor("s"),
        },
        index=metrics.index,
    )
    params = pd.DataFrame([r.data.params for r in listed], index=metrics.index, dtype=object)
    differing = [
        c for c in sorted(params.columns) if params[c].astype(str).nunique(dropna=False) > 1
    ]
    shown = [c for c in metrics.columns if all_metrics or c == sort_by or _metric_order(c)[0] != 1]
    shown = sorted(shown, key=_metric_order)
    table = pd.concat([info, params[differing], metrics[shown]], axis=1)
    table.index.name = "full_run_id"
    return table
