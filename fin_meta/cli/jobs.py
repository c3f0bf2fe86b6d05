"""The jobs: `backtest` (rule strategies) and `run` (an experiment file end to end)."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Annotated

import typer

from fin_meta.cli.app import (
    DataDirOpt,
    EndOpt,
    NoTrackOpt,
    StartOpt,
    TrackingUriOpt,
    app,
    parse_params,
)

OfflineHtmlOpt = Annotated[
    bool,
    typer.Option("--offline-html", help="Embed plotly.js in the logged HTML chart (about 4.5 MB, opens offline; "
                 "fin-meta run: or tracking.offline_html: true); default: loaded from its CDN when opened."),
]


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
    offline_html: OfflineHtmlOpt = False,
) -> None:
    """Backtest rule strategies on one source with fees and slippage (vectorbt), tracked in MLflow."""
    from fin_meta.pipeline import run_backtest_job

    # The process ends with the job: the cyclic garbage collector stays off to the end (the job
    # pauses it; switched back on, its first pass would walk the half a million objects that the
    # imports left, 0.2-0.4 s, and Python does not collect at exit with it off).
    gc.disable()
    result = run_backtest_job(
        source=data,
        strategies=strategy,
        params=parse_params(param, "--param"),
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
        offline_html=offline_html,
    )
    if as_json:
        typer.echo(json.dumps(result.stats_json(), allow_nan=False))
        return
    result.print_report(typer.echo)


# the main job -----------------------------------------------------------------------------
@app.command("run")
def run_cmd(
    config: Annotated[
        Path | None,
        typer.Argument(help="Experiment file, e.g. experiments/quickstart.yaml (optional with --resume)."),
    ] = None,
    set_: Annotated[
        list[str],
        typer.Option("--set", help="Override a config key: --set agent.lr=1e-3 (repeatable)."),
    ] = [],  # noqa: B006
    no_track: NoTrackOpt = False,
    tracking_uri: TrackingUriOpt = None,
    offline_html: OfflineHtmlOpt = False,
    resume: Annotated[
        str | None,
        typer.Option(
            metavar="RUN_ID",
            help="Continue run RUN_ID (or a unique prefix) from its last checkpoint, with its own "
            "logged config; a FINISHED run is refused.",
        ),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds", metavar="SEEDS",
            help="Seeds to run: 0-4, 0,2,5 or 3 (overrides `seeds` in the file). Several: one MLflow parent run "
            "with a child run per seed and the results over seeds (mean ± sd, paired CIs); one: a plain run.",
        ),
    ] = None,
    jobs: Annotated[
        str,
        typer.Option("--jobs", "-j", metavar="J", help="Seeds run at a time, each in its own process (0 or auto: "
                     "one per CPU core); the results do not depend on it."),
    ] = "1",
) -> None:
    """Meta-train an agent, meta-test it, backtest it against baselines, log it all to MLflow."""
    from fin_meta.config import load_config
    from fin_meta.errors import ConfigError
    from fin_meta.pipeline import parse_jobs, parse_seeds, run_experiment, run_seeds

    n_jobs = parse_jobs(jobs)
    seed_list = None if seeds is None else parse_seeds(seeds)
    if resume is not None and seed_list is not None:
        raise ConfigError("--seeds cannot be combined with --resume: a resumed run keeps its own seed (resume the "
                          "runs of a seed set one by one)")
    if resume is not None:
        if not resume.strip():
            raise ConfigError("--resume needs a run id (fin-meta compare lists them)")
        if no_track:
            raise ConfigError("--resume continues a tracked run: it cannot be combined with --no-track")
        if config is None and set_:
            raise ConfigError("--set needs an experiment file; a resumed run keeps its own config")
        if offline_html:
            raise ConfigError("--offline-html cannot be combined with --resume: a resumed run keeps its own config "
                              "(tracking.offline_html)")
    elif config is None:
        raise ConfigError("give an experiment file (fin-meta run experiments/quickstart.yaml), or --resume RUN_ID")
    seeds_set = [] if seed_list is None else [f"seeds=[{', '.join(map(str, seed_list))}]"]
    cfg = None if config is None else load_config(config, overrides=[*set_, *seeds_set])
    if cfg is not None and resume is None and (no_track or tracking_uri or offline_html):
        tracking = cfg.tracking.model_copy(
            update={"enabled": cfg.tracking.enabled and not no_track, "tracking_uri": tracking_uri or cfg.tracking.tracking_uri,
                    "offline_html": cfg.tracking.offline_html or offline_html}
        )
        cfg = cfg.model_copy(update={"tracking": tracking})
    if cfg is not None and cfg.seeds is not None:  # several seeds (one loads as a plain run)
        run_seeds(cfg, jobs=n_jobs, echo=typer.echo).print_report(typer.echo)
        return
    outcome = run_experiment(cfg, resume=resume, tracking_uri=tracking_uri, echo=typer.echo)
    outcome.print_report(typer.echo)
