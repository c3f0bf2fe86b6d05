"""Reading runs back: `compare_runs` (the `fin-meta compare` table) and `latest_run_id`."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import pandas as pd

from fin_meta.tracking.nesting import ROLE_TAG
from fin_meta.tracking.store import (
    TrackingError,
    active_experiments,
    find_experiment,
    open_client,
    resolve_tracking_uri,
)
from fin_meta.tracking.tags import last_heartbeat
from fin_meta.tracking.trials import PBO_ROLE, TRIALS_TAG

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

__all__ = ["KEY_METRICS", "STALE", "compare_runs", "format_table", "latest_run_id", "search_all_runs"]

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
    experiment: str | None = None,
    tracking_uri: str | None = None,
    *,
    finished_only: bool = True,
    source: str | None = None,
    with_agent: bool = False,
) -> str:
    """The full id of the most recently started run of `experiment` (None: of the most recently
    active experiment), by default among FINISHED runs only (a failed run may lack artifacts);
    `source`: only runs whose data included this source (`sample:sp500`); `with_agent`: only
    `fin-meta run` jobs (they log an agent; `fin-meta backtest` jobs do not).
    For notebooks: `load_agent(f"runs:/{latest_run_id('quickstart', with_agent=True)}/agent")`."""
    client = open_client(resolve_tracking_uri(tracking_uri), must_exist=True)
    ids = _experiment_ids(client, experiment)
    clauses = ["attributes.status = 'FINISHED'"] if finished_only else []
    if with_agent:
        clauses.append("tags.job = 'run'")
    if source is not None:
        clauses.append(f"tags.`data.source` LIKE '%{source.replace(chr(39), '')}%'")
    runs = search_all_runs(client, ids, filter_string=" and ".join(clauses), max_results=1)
    if not runs:
        which = "finished runs" if finished_only else "runs"
        which += " of fin-meta run" if with_agent else ""
        which += f" on {source}" if source else ""
        raise TrackingError(
            f"no {which} in MLflow experiment {experiment or ids[0]!r} of {client.tracking_uri}; "
            "give a run id instead"
        )
    return runs[0].info.run_id


KEY_METRICS = ("test.sharpe", "test.dsr", "test.psr", "test.gross_sharpe", "test.cost_drag", "test.max_drawdown",
               "test.turnover")
"""The metrics `compare_runs` shows by default, in this order, when a run logged them: the
main strategy's test Sharpe (net of costs), its deflated and probabilistic Sharpe ratios
(probabilities, 0..1; the N trials the DSR accounts for follow as the `trials` column), its
gross Sharpe (before costs), max drawdown (a negative fraction of equity), turnover (per year)."""

STALE = "STALE"
"""The status `compare_runs` shows for a RUNNING run whose process stopped beating."""


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


def _status(run: Run, now: float, stale_after_s: float) -> str:
    """The run's status, `STALE` for a RUNNING run with no heartbeat for `stale_after_s`."""
    status = run.info.status
    if status != "RUNNING":
        return status
    beat = last_heartbeat(run.data.tags, run.info.start_time)
    return STALE if beat is not None and now - beat >= stale_after_s else status


def compare_runs(
    experiment: str | None = None,
    *,
    metric: str = "test.sharpe",
    top: int | None = None,
    tracking_uri: str | None = None,
    ascending: bool = False,
    show_all: bool = False,
    stale_after: float = 10.0,
) -> pd.DataFrame:
    """Runs of `experiment` (None: the most recently active one) side by side, one row each:
    `run_id` (first 8 characters; the full id is the index), `run_name`, `status`,
    `start_time` (UTC), then the params whose values differ between the listed runs, then the
    `KEY_METRICS` the runs logged and the sorting `metric`, with `trials` (the N trials each
    run's DSR accounts for, tag `dsr.trials`) after the DSR / PSR when a run logged them. `show_all`: every param and every
    metric (`test.<stat>` first, then other `test.*` such as `test.sharpe.buy_and_hold`, then
    the rest). Sorted by `metric` (descending unless `ascending`; runs without it last) and cut
    to the `top` N; `metric` may omit the `test.` prefix. A RUNNING run without a heartbeat
    for `stale_after` minutes (its process was killed) shows the status `STALE`. The runs that
    `fin-meta compare --pbo` logs its results to are not listed.
    Raises `TrackingError` for an unknown experiment (listing the existing ones), a metric no
    run logged (listing the available ones) or a missing store."""
    if top is not None and top < 1:
        raise TrackingError(f"--top must be at least 1, got {top}")
    if not stale_after >= 0:
        raise TrackingError(f"--stale-after must be at least 0 minutes, got {stale_after}")
    client = open_client(resolve_tracking_uri(tracking_uri), must_exist=True)
    runs = [run for run in search_all_runs(client, _experiment_ids(client, experiment))
            if run.data.tags.get(ROLE_TAG) != PBO_ROLE]  # `compare --pbo` results are not runs to compare
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
    now = time.time()
    info = pd.DataFrame(
        {
            "run_id": [r.info.run_id[:8] for r in listed],
            "run_name": [r.info.run_name for r in listed],
            "status": [_status(r, now, stale_after * 60.0) for r in listed],
            "start_time": pd.to_datetime([r.info.start_time for r in listed], unit="ms").floor("s"),
        },
        index=metrics.index,
    )
    params = pd.DataFrame([r.data.params for r in listed], index=metrics.index, dtype=object)
    param_names = sorted(params.columns)
    if show_all:
        shown = sorted(metrics.columns, key=_metric_order)
    else:
        param_names = [c for c in param_names if params[c].astype(str).nunique(dropna=False) > 1]
        shown = [m for m in KEY_METRICS if m in metrics.columns]
        shown += [] if sort_by in shown else [sort_by]
    table = pd.concat([info, params[param_names], metrics[shown]], axis=1)
    trials = pd.to_numeric(pd.Series([r.data.tags.get(TRIALS_TAG) for r in listed], index=metrics.index))
    if trials.notna().any():  # the N trials of the DSR, after the DSR / PSR columns
        after = [c for c in ("test.dsr", "test.psr") if c in table.columns]
        at = table.columns.get_loc(after[-1]) + 1 if after else len(table.columns)
        table.insert(at, "trials", trials.astype("Int64"))
    table.index.name = "full_run_id"
    return table


def format_table(table: pd.DataFrame, width: int | None = None, *, max_cell: int = 32) -> str:
    """`table` (e.g. `compare_runs(...)`, without its index) as text: numbers to 4 significant
    digits, missing values blank. With `width` (terminal columns), cells are cut to `max_cell`
    characters (ending in `...`) and the columns that do not fit continue in further blocks below,
    each led by the first column (`run_id`), so that no line is wider than `width` unless one
    column alone is. Without `width` (output to a file or pipe), one line per row, uncut."""
    names = [str(name) for name in table.columns]
    cells = {name: [_cell(v) for v in table.iloc[:, i]] for i, name in enumerate(names)}
    if width is not None:
        cells = {n: [v if len(v) <= max_cell else v[: max_cell - 3] + "..." for v in col]
                 for n, col in cells.items()}  # fmt: skip
    numeric = {n: pd.api.types.is_numeric_dtype(table.iloc[:, i]) for i, n in enumerate(names)}
    widths = {name: max([len(name), *map(len, col)]) for name, col in cells.items()}
    blocks = [names]
    if width is not None and names:
        blocks, used = [[names[0]]], widths[names[0]]
        for name in names[1:]:
            if len(blocks[-1]) > 1 and used + 2 + widths[name] > width:
                blocks.append([names[0]])
                used = widths[names[0]]
            blocks[-1].append(name)
            used += 2 + widths[name]
    rows = range(len(table))

    def line(block: list[str], texts: list[str]) -> str:
        fitted = [t.rjust(widths[n]) if numeric[n] else t.ljust(widths[n]) for n, t in zip(block, texts, strict=True)]
        return "  ".join(fitted).rstrip()

    return "\n\n".join(
        "\n".join([line(block, block), *(line(block, [cells[n][r] for n in block]) for r in rows)])
        for block in blocks
    )


def _cell(value: object) -> str:
    """One table cell as text: blank for a missing value, floats to 4 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
