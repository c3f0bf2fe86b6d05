"""MLflow: `compare` runs and open the `ui`."""

from __future__ import annotations

import shutil
import sys
from typing import Annotated

import typer

from fin_meta.cli.app import TrackingUriOpt, app


# MLflow -----------------------------------------------------------------------------------
@app.command("compare")
def compare_cmd(
    experiment: Annotated[str | None, typer.Option(help="Experiment name (default: the latest one).")] = None,
    metric: Annotated[str, typer.Option(help="Sort by this metric (descending).")] = "test.sharpe",
    top: Annotated[int | None, typer.Option(help="Show only the best N runs.")] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Show every param and metric, not only the key ones.")
    ] = False,
    stale_after: Annotated[
        float,
        typer.Option(help="Minutes without a heartbeat after which a RUNNING run shows as STALE."),
    ] = 10.0,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Compare runs side by side: the params that differ, test Sharpe, drawdown, turnover.

    A RUNNING run whose process died (no heartbeat for --stale-after minutes) shows as STALE.

    Lines fit the terminal; output to a file or a pipe keeps one line per run.
    """
    from fin_meta.tracking.query import compare_runs, format_table

    table = compare_runs(
        experiment, metric=metric, top=top, tracking_uri=tracking_uri, show_all=show_all,
        stale_after=stale_after,
    )  # fmt: skip
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    typer.echo(format_table(table, width))


@app.command("ui")
def ui_cmd(
    port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Open the MLflow UI on the same store the runs were logged to, until Ctrl-C (or kill)."""
    from fin_meta.tracking import launch_ui

    code = launch_ui(tracking_uri, port=port, echo=typer.echo)
    if code:
        raise typer.Exit(code)
