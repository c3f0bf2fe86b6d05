"""Commands that look at data: `data fetch`, `data show`, `regimes`, `strategies`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fin_meta.cli.app import (
    BarsPerYearOpt,
    DataDirOpt,
    EndOpt,
    StartOpt,
    app,
    data_app,
    pandas_display,
    parse_params,
)


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
    bars_per_year: BarsPerYearOpt = None,
) -> None:
    """Show a source's rows, date range, bars per year, gaps and NaNs."""
    from fin_meta.data import describe_prices, load_prices

    prices = load_prices(source, start, end, data_dir=data_dir, bars_per_year=bars_per_year)
    info = describe_prices(prices)
    typer.echo(f"source: {source}")
    for key, value in info.items():
        typer.echo(f"{key}: {value}")
    with pandas_display():
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
        typer.Option(help="Fit thresholds/models on bars up to this date only (default: trend_vol: an expanding causal threshold; hmm: the first half of the bars)."),
    ] = None,
    min_length: Annotated[int, typer.Option(help="Merge regime runs shorter than this many bars.")] = 20,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Detector parameter k=v, e.g. -p trend_window=126 (trend_vol) or -p n_states=3 (hmm)."),
    ] = None,
    hindsight: Annotated[bool, typer.Option(help="Smoothed labels (reports only, never for trading).")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write a price chart shaded by regime (PNG).")] = None,
    data_dir: DataDirOpt = None,
    bars_per_year: BarsPerYearOpt = None,
) -> None:
    """Detect market regimes: a table of segments, per-regime return and volatility, a chart."""
    from fin_meta.data import load_prices
    from fin_meta.frequency import bars_per_year_of, frequency_name
    from fin_meta.regimes import detect_regimes, regime_stats, regime_summary

    prices = load_prices(source, start, end, data_dir=data_dir, bars_per_year=bars_per_year)
    params = parse_params(param or [], "--param")
    labels = detect_regimes(prices, method=method, causal=not hindsight, fit_end=fit_end, **params)
    summary = regime_summary(prices, labels, min_length=min_length)
    with pandas_display():
        per_year = bars_per_year_of(prices)
        typer.echo(f"{source}: {len(summary)} segments ({method}, {'hindsight' if hindsight else 'causal'}; "
                   f"{frequency_name(per_year)} bars, {per_year:g} a year)")
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
