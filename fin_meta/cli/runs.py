"""MLflow: `compare` runs and open the `ui`."""

from __future__ import annotations

from typing import Annotated

import typer

from fin_meta.cli.app import (
    TrackingUriOpt,
    app,
    pandas_display,
)


# MLflow -----------------------------------------------------------------------------------
@app.command("compare")
def compare_cmd(
    experiment: Annotated[str | None, typer.Option(help="Experiment name [default: the latest one].")] = None,
    metric: Annotated[str, typer.Option(help="Sort by this metric (descending).")] = "test.sharpe",
    top: Annotated[int | None, typer.Option(help="Show only the best N runs.")] = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Compare runs side by side: the parameters that differ and the key metrics."""
    from fin_meta.tracking import compare_runs

    table = compare_runs(experiment, metric=metric, top=top, tracking_uri=tracking_uri)
    with pandas_display():
        typer.echo(table.to_string(index=False))


@app.command("ui")
def ui_cmd(
    port: Annotated[int, typer.Option(help="Port of the MLflow UI.")] = 5000,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Open the MLflow UI on the same store the runs were logged to."""
    from fin_meta.tracking import launch_ui, resolve_tracking_uri

    typer.echo(f"MLflow UI for {resolve_tracking_uri(tracking_uri)} on http://127.0.0.1:{port} (Ctrl-C to stop)")
    launch_ui(tracking_uri, port=port)
