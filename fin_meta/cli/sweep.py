"""`fin-meta sweep`: tune an experiment's settings over a search-space file (`fin_meta.sweeps`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fin_meta.cli.app import TrackingUriOpt, app


@app.command("sweep")
def sweep_cmd(
    config: Annotated[Path, typer.Argument(help="Experiment file with a validation period (data.val_start).")],
    space: Annotated[
        Path,
        typer.Option("--space", help="Search-space file, a key a line: 'agent.lr: {loguniform: [1e-4, 1e-2]}' "
                     "(loguniform, uniform, int, step, choice); see experiments/spaces/rl2_basics.yaml."),
    ],
    trials: Annotated[int, typer.Option("--trials", "-n", min=1, help="Trials to run now (added to the study's).")] = 20,
    jobs: Annotated[
        int,
        typer.Option("--jobs", "-j", min=1, help="Trials at a time, each in its own process (Optuna) or Ray worker; "
                     "with ray and no --address: the local Ray's CPUs."),
    ] = 1,
    backend: Annotated[
        str, typer.Option("--backend", help="optuna (this machine) or ray (a Ray cluster, or a local Ray).")
    ] = "optuna",
    name: Annotated[
        str | None,
        typer.Option("--name", help="Sweep name: the parent MLflow run and the Optuna study; the same name "
                     "continues the sweep (default: <experiment>-<space file name>)."),
    ] = None,
    set_: Annotated[
        list[str],
        typer.Option("--set", help="Override a key of the experiment for every trial: --set agent.iterations=20."),
    ] = [],  # noqa: B006 - typer reads the default, it is never mutated
    tracking_uri: TrackingUriOpt = None,
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="Optuna storage URL or SQLite file (default: optuna.db beside mlflow.db)."),
    ] = None,
    prune: Annotated[
        bool,
        typer.Option("--prune/--no-prune", help="Median pruning: stop a trial whose validation net Sharpe is below "
                     "the median of earlier trials' at the same iteration (Optuna backend)."),
    ] = True,
    address: Annotated[
        str | None,
        typer.Option("--address", help="Ray cluster to join: auto, or ray://HOST:10001 (default: start a local Ray)."),
    ] = None,
    gpus_per_trial: Annotated[
        float, typer.Option("--gpus-per-trial", help="GPUs each Ray trial reserves; fractions share a GPU (0.25).")
    ] = 0.0,
) -> None:
    """Sweep an experiment's settings: each trial is a child MLflow run chosen on the validation net
    Sharpe (never the test period); the best trial's test figures are printed once, at the end."""
    if backend == "optuna" and jobs > 1 and trials > 1:
        from fin_meta.sweeps.workers import prestart

        prestart()  # before the heavy imports below: the workers' fork server imports alongside
    from fin_meta.sweeps.job import run_sweep

    outcome = run_sweep(config, space, trials=trials, jobs=jobs, backend=backend, name=name, overrides=set_,
                        tracking_uri=tracking_uri, storage=storage, prune=prune, address=address,
                        gpus_per_trial=gpus_per_trial, echo=typer.echo)
    outcome.print_report(typer.echo)
