"""The `fin-meta` command line: data, regimes, strategies, backtest, run, compare, ui. Typer
commands only: each parses its options and calls the library (the jobs live in
`fin_meta.pipeline`).

Start-up stays fast (`fin-meta --help` in about 0.3 s): this module imports only typer and the
ground floor at the top; every command imports the library parts it needs inside its body,
because they bring pandas, pydantic, vectorbt, torch or mlflow (seconds, not milliseconds).

Errors caused by the user's input (`FinMetaError`) print as one line and exit 2; `--debug`
(anywhere on the command line, or FIN_META_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from fin_meta.constants import __version__
from fin_meta.errors import ConfigError, FinMetaError

__all__ = ["app", "main"]

app = typer.Typer(
    name="fin-meta",
    help="Meta-RL trading backtester: market regimes as tasks, vectorbt backtests, MLflow tracking.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
data_app = typer.Typer(help="Download, cache and inspect prices.", no_args_is_help=True)
app.add_typer(data_app, name="data")

# Options shared by several commands --------------------------------------------------------
StartOpt = Annotated[str | None, typer.Option("--start", help="First date to keep (YYYY-MM-DD).")]
EndOpt = Annotated[str | None, typer.Option("--end", help="Last date to keep (YYYY-MM-DD).")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Price cache folder [default: $FIN_META_DATA_DIR or ./data]."),
]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here].",
    ),
]
NoTrackOpt = Annotated[bool, typer.Option("--no-track", help="Do not log this run to MLflow.")]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"fin-meta {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """fin-meta: meta-train RL agents across market regimes and backtest them honestly.

    Add --debug anywhere to see full tracebacks.
    """


# data -------------------------------------------------------------------------------------
@data_app.command("fetch")
def data_fetch(
    tickers: Annotated[list[str], typer.Argument(help="Ticker symbols, e.g. SPY QQQ.")],
    start: StartOpt = None,
    end: EndOpt = None,
    data_dir: DataDirOpt = None,
    interval: Annotated[str, typer.Option(help="Bar interval (yfinance).")] = "1d",
) -> None:
    """Download daily prices from yfinance into the parquet cache (only missing ranges)."""
    from fin_meta.data import describe_prices, fetch_yf, resolve_data_dir

    frames = fetch_yf(tickers, start, end, data_dir=data_dir, interval=interval, progress=True)
    folder = resolve_data_dir(data_dir)
    for ticker, frame in frames.items():
        info = describe_prices(frame)
        typer.echo(f"{ticker}: {info['rows']} bars {info['start']} .. {info['end']} (cache: {folder})")


@data_app.command("show")
def data_show(
    source: Annotated[str, typer.Argument(help="A data source: sample:sp500, yf:SPY, csv:FILE, synthetic:regimes.")],
    start: StartOpt = None,
    end: EndOpt = None,
    data_dir: DataDirOpt = None,
    rows: Annotated[int, typer.Option(help="How many first and last rows to print.")] = 3,
) -> None:
    """Show a source's rows, date range, gaps and NaNs."""
    from fin_meta.data import describe_prices, load_prices

    prices = load_prices(source, start, end, data_dir=data_dir)
    info = describe_prices(prices)
    typer.echo(f"source: {source}")
    for key, value in info.items():
        typer.echo(f"{key}: {value}")
    with _pandas_display():
        typer.echo(prices.head(rows).to_string())
        typer.echo("...")
        typer.echo(prices.tail(rows).to_string())


# regimes ----------------------------------------------------------------------------------
@app.command("regimes")
def regimes_cmd(
    source: Annotated[str, typer.Argument(help="A data source, e.g. sample:sp500.")],
    method: Annotated[str, typer.Option(help="Regime detector: trend_vol or hmm.")] = "trend_vol",
    start: StartOpt = None,
    end: EndOpt = None,
    fit_end: Annotated[
        str | None,
        typer.Option(help="Fit thresholds/models on bars up to this date only [default: trend_vol: expanding causal threshold; hmm: first half of the bars]."),
    ] = None,
    min_length: Annotated[int, typer.Option(help="Merge regime runs shorter than this many bars.")] = 20,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Detector parameter k=v, e.g. -p trend_window=126 (trend_vol) or -p n_states=3 (hmm)."),
    ] = None,
    hindsight: Annotated[bool, typer.Option(help="Smoothed labels (reports only, never for trading).")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write a price chart shaded by regime (PNG).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Detect market regimes: a table of segments, per-regime return and volatility, a chart."""
    from fin_meta.data import load_prices
    from fin_meta.regimes import detect_regimes, regime_stats, regime_summary

    prices = load_prices(source, start, end, data_dir=data_dir)
    params = _parse_params(param or [], "--param")
    labels = detect_regimes(prices, method=method, causal=not hindsight, fit_end=fit_end, **params)
    summary = regime_summary(prices, labels, min_length=min_length)
    with _pandas_display():
        typer.echo(f"{source}: {len(summary)} segments ({method}, {'hindsight' if hindsight else 'causal'})")
        typer.echo(summary.to_string(index=False))
        typer.echo("")
        typer.echo(regime_stats(prices, labels).to_string())
    if plot is not None:
        from fin_meta.plots.regimes import plot_regimes

        written = plot_regimes(prices, labels, plot, title=f"{source} — {method} regimes")
        typer.echo(f"chart: {written}")


# strategies and backtest ------------------------------------------------------------------
@app.command("strategies")
def strategies_cmd(
    strategies_dir: Annotated[Path | None, typer.Option(help="Also list the strategies in this folder.")] = None,
) -> None:
    """List the rule strategies and their default parameters."""
    from strategies import available_strategies

    for name, module in available_strategies(strategies_dir).items():
        doc = (module.__doc__ or "").strip().splitlines()
        defaults = ", ".join(f"{k}={v}" for k, v in getattr(module, "DEFAULTS", {}).items())
        typer.echo(f"{name:16s} {doc[0] if doc else ''}")
        if defaults:
            typer.echo(f"{'':16s} defaults: {defaults}")


@app.command("backtest")
def backtest_cmd(
    data: Annotated[str, typer.Option("--data", help="Data source, e.g. sample:sp500 or yf:SPY.")] = "sample:sp500",
    strategy: Annotated[
        list[str],
        typer.Option("--strategy", "-s", help="Strategy name (repeatable), or 'all'."),
    ] = ["all"],  # noqa: B006 - typer reads the default, it is never mutated
    param: Annotated[
        list[str],
        typer.Option("--param", "-p", help="Strategy parameter k=v (or strategy.k=v with several strategies)."),
    ] = [],  # noqa: B006
    start: StartOpt = None,
    end: EndOpt = None,
    fees: Annotated[float, typer.Option(help="Fees as a fraction of traded value.")] = 5e-4,
    slippage: Annotated[float, typer.Option(help="Slippage as a fraction of price.")] = 5e-4,
    benchmark: Annotated[bool, typer.Option(help="Add buy_and_hold as a benchmark column.")] = True,
    regimes: Annotated[
        str | None, typer.Option(help="Also break results down by regime (trend_vol or hmm).")
    ] = None,
    strategies_dir: Annotated[Path | None, typer.Option(help="Folder of your own strategy modules.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write the equity + drawdown chart (PNG).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print stats as one JSON object on stdout.")] = False,
    experiment: Annotated[str, typer.Option(help="MLflow experiment name.")] = "backtest",
    no_track: NoTrackOpt = False,
    tracking_uri: TrackingUriOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Backtest rule strategies on one source with fees and slippage (vectorbt), tracked in MLflow."""
    from fin_meta.pipeline import run_backtest_job

    result = run_backtest_job(
        source=data,
        strategies=strategy,
        params=_parse_params(param, "--param"),
        start=start,
        end=end,
        fees=fees,
        slippage=slippage,
        benchmark=benchmark,
        regime_method=regimes,
        strategies_dir=strategies_dir,
        plot=plot,
        experiment=experiment,
        track=not no_track,
        tracking_uri=tracking_uri,
        data_dir=data_dir,
        progress=not as_json,
    )
    if as_json:
        typer.echo(json.dumps(result.stats_json(), allow_nan=False))
        return
    result.print_report(typer.echo)


# the main job -----------------------------------------------------------------------------
@app.command("run")
def run_cmd(
    config: Annotated[Path, typer.Argument(help="Experiment file, e.g. experiments/quickstart.yaml.")],
    set_: Annotated[
        list[str],
        typer.Option("--set", help="Override a config key: --set agent.lr=1e-3 (repeatable)."),
    ] = [],  # noqa: B006
    no_track: NoTrackOpt = False,
    tracking_uri: TrackingUriOpt = None,
    resume: Annotated[str | None, typer.Option(help="Continue the run RUN_ID from its last checkpoint.")] = None,
) -> None:
    """Meta-train an agent, meta-test it, backtest it against baselines, log it all to MLflow."""
    from fin_meta.config import load_config
    from fin_meta.pipeline import run_experiment

    cfg = load_config(config, overrides=set_)
    if no_track or tracking_uri:
        tracking = cfg.tracking.model_copy(
            update={"enabled": cfg.tracking.enabled and not no_track, "tracking_uri": tracking_uri or cfg.tracking.tracking_uri}
        )
        cfg = cfg.model_copy(update={"tracking": tracking})
    outcome = run_experiment(cfg, resume=resume, echo=typer.echo)
    outcome.print_report(typer.echo)


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
    with _pandas_display():
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


# helpers ----------------------------------------------------------------------------------
def _parse_params(items: list[str], flag: str) -> dict[str, Any]:
    """`KEY=VALUE` strings as a dict (values read as YAML), by the one KEY=VALUE parser
    `fin_meta.config.yaml_io.parse_override`; its errors name `flag`."""
    from fin_meta.config.yaml_io import parse_override

    parsed: dict[str, Any] = {}
    for item in items:
        try:
            override = parse_override(item)
        except ConfigError as exc:  # the parser speaks of --set; the user typed `flag`
            raise ConfigError(str(exc).replace("--set", flag, 1)) from exc
        parsed[".".join(override.path)] = override.value
    return parsed


class _pandas_display:
    """Context manager: wide pandas output with 4 significant digits for terminal tables."""

    def __enter__(self) -> None:
        import pandas as pd

        self._ctx = pd.option_context(
            "display.width", 200, "display.max_columns", 50, "display.float_format", "{:.4g}".format
        )
        self._ctx.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `fin-meta` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("FIN_META_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    # MLflow draws a progress bar for every artifact copy; ours already show the long work
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        app(args=args, prog_name="fin-meta")
    except FinMetaError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        if debug:
            raise
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug, not bad input: still one line unless --debug
        if debug:
            raise
        typer.echo(
            f"error: internal {type(exc).__name__}: {exc} (run again with --debug for the traceback)",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
