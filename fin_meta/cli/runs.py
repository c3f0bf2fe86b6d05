"""MLflow: `compare` runs, write a run's `report` page and open the `ui`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
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
    pbo: Annotated[
        bool,
        typer.Option("--pbo", help="Also compute the probability of backtest overfitting (CSCV) across the listed "
                     "runs from their per-bar returns; logged with its logit histogram to a new MLflow run."),
    ] = False,
    on: Annotated[
        str | None, typer.Option(help="--pbo: whose returns, 'test' (default) or 'validation'.")
    ] = None,
    blocks: Annotated[
        int | None, typer.Option(help="--pbo: S, the even number of blocks the bars are cut into (default 16).")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="--pbo: also write the logit histogram (PNG) here.")] = None,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Compare runs side by side: the params that differ, test Sharpe with its deflated (DSR) and
    probabilistic (PSR) Sharpe ratios and the N trials the DSR accounts for, drawdown, turnover.

    A RUNNING run whose process died (no heartbeat for --stale-after minutes) shows as STALE.
    --pbo: the probability that the best of the listed runs in-sample is overfit (PBO, CSCV).

    Lines fit the terminal; output to a file or a pipe keeps one line per run.
    """
    from fin_meta.errors import ConfigError
    from fin_meta.overfitting import DEFAULT_BLOCKS, check_blocks
    from fin_meta.tracking.query import compare_runs, format_table

    if not pbo and (on is not None or blocks is not None or plot is not None):
        raise ConfigError("--on, --blocks and --plot go with --pbo: add --pbo")
    if pbo:  # bad input fails before any work
        from fin_meta.tracking.pbo_runs import compare_pbo, period_folder

        period_folder(on or "test")
        check_blocks(DEFAULT_BLOCKS if blocks is None else blocks)
    table = compare_runs(
        experiment, metric=metric, top=top, tracking_uri=tracking_uri, show_all=show_all,
        stale_after=stale_after,
    )  # fmt: skip
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    typer.echo(format_table(table, width))
    if pbo:
        outcome = compare_pbo(list(table.index), on=on or "test", n_blocks=DEFAULT_BLOCKS if blocks is None else blocks,
                              tracking_uri=tracking_uri, plot=plot)
        typer.echo("")
        for line in outcome.describe():
            typer.echo(line)
        if plot is not None:
            typer.echo(f"wrote {plot}")


@app.command("report")
def report_cmd(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="The run (a full id or a unique prefix; "
                                          "fin-meta compare lists them).")],
    out: Annotated[Path | None, typer.Option(help="Write the page here (default: report_<run id>.html).")] = None,
    cdn: Annotated[
        bool, typer.Option("--cdn", help="Load plotly.js from its CDN when the page opens (a small file that needs "
                           "the network); default: embedded, about 4.7 MB, opens offline.")
    ] = False,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not add the page to the run's artifacts.")] = False,
    tracking_uri: TrackingUriOpt = None,
) -> None:
    """Write one self-contained HTML page about a run (fin-meta run, walk-forward, seed set or
    backtest) and log it to the run as report.html: equity against the baselines with drawdowns
    and regimes shaded, the results with CIs and the deflated Sharpe (and its N trials),
    per-regime and per-fold stats, the adaptation curves, the seeds of a set, the PBO if a
    `compare --pbo` covered the run. A piece the run did not log says so in its section.
    """
    from fin_meta.reporting import write_report

    outcome = write_report(run_id, out, tracking_uri=tracking_uri, cdn=cdn, log=not no_log)
    typer.echo(f"wrote {outcome.path} ({outcome.size / 1e6:.1f} MB) for run {outcome.run_id}")
    if outcome.missing:
        typer.echo(f"  not logged for this run: {', '.join(outcome.missing)}")
    if outcome.logged:
        typer.echo(f"  logged to MLflow as {outcome.run_id}/report.html in {outcome.tracking_uri}")


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
