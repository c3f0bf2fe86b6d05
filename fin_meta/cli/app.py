"""The typer application, the options several commands share and small terminal helpers.

Start-up stays fast (`fin-meta --help` in about 0.3 s): the CLI imports only typer and the
ground floor at the top; every command imports the library parts it needs inside its body,
because they bring pandas, pydantic, vectorbt, torch or mlflow (seconds, not milliseconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fin_meta.constants import __version__

__all__ = ["app", "data_app", "parse_params", "pandas_display"]

app = typer.Typer(
    name="fin-meta",
    help="Meta-RL trading backtester: market regimes as tasks, vectorbt backtests, MLflow tracking. "
    "Add --debug anywhere on the command line (or set FIN_META_DEBUG=1) for full tracebacks.",
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
    typer.Option("--data-dir", help="Price cache folder (default: $FIN_META_DATA_DIR, else ./data)."),
]
TrackingUriOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here).",
    ),
]
NoTrackOpt = Annotated[bool, typer.Option("--no-track", help="Do not log this run to MLflow.")]
BarsPerYearOpt = Annotated[
    float | None,
    typer.Option(
        "--bars-per-year",
        help="Bars per year for every annualised figure (default: inferred from the dates: "
        "252 daily, 52 weekly, 12 monthly, 365 with weekend bars).",
    ),
]


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


def parse_params(items: list[str], flag: str) -> dict[str, Any]:
    """`KEY=VALUE` strings as a dict (values read as YAML), by the one KEY=VALUE parser
    `fin_meta.config.yaml_io.parse_override`; its errors name `flag`. Without items nothing is
    imported (the config package loads its pydantic models: half a second of `fin-meta backtest`)."""
    if not items:
        return {}
    from fin_meta.config.yaml_io import parse_override

    parsed: dict[str, Any] = {}
    for item in items:
        override = parse_override(item, flag=flag, example="window=20")
        parsed[".".join(override.path)] = override.value
    return parsed


class pandas_display:
    """Context manager: wide pandas output with 4 significant digits for terminal tables."""

    def __enter__(self) -> None:
        import pandas as pd

        self._ctx = pd.option_context(
            "display.width", 200, "display.max_columns", 50, "display.float_format", "{:.4g}".format
        )
        self._ctx.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)
