"""`fin-meta audit STRATEGY|RUN_ID`: the perturb-the-future check on a strategy or a logged agent."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated

import typer

from fin_meta.cli.app import (
    BarsPerYearOpt,
    DataDirOpt,
    EndOpt,
    StartOpt,
    TrackingUriOpt,
    app,
    parse_params,
)
from fin_meta.errors import AgentError


@app.command("audit")
def audit_cmd(
    target: Annotated[
        str,
        typer.Argument(help="A strategy name (built-in or in --strategies-dir), an MLflow run id or "
                            "runs:/<id>/agent URI, or a saved agent folder."),
    ],
    data: Annotated[str, typer.Option("--data", help="Prices to audit on, e.g. sample:sp500.")] = "sample:sp500",
    start: StartOpt = None,
    end: EndOpt = None,
    param: Annotated[
        list[str], typer.Option("--param", "-p", help="Strategy parameter k=v (strategies only).")
    ] = [],  # noqa: B006 - typer reads the default, it is never mutated
    strategies_dir: Annotated[Path | None, typer.Option(help="Folder of your own strategy modules.")] = None,
    cuts: Annotated[int, typer.Option(help="Cut bars to scramble the future after (more: slower, surer).")] = 3,
    tracking_uri: TrackingUriOpt = None,
    data_dir: DataDirOpt = None,
    bars_per_year: BarsPerYearOpt = None,
) -> None:
    """Check a strategy or a trained agent for look-ahead: scramble the prices after a few cut
    bars and verify that no earlier position changes. Exit 0: clean; exit 1: it peeks."""
    from fin_meta.data import load_prices
    from fin_meta.lookahead import audit_look_ahead
    from strategies import audit_strategy, available_strategies

    prices = load_prices(data, start, end, data_dir=data_dir, bars_per_year=bars_per_year)
    names = list(available_strategies(strategies_dir))
    if target in names:
        verdict = audit_strategy(target, prices, parse_params(param, "--param"), strategies_dir)
    else:
        agent = _load_agent(target, tracking_uri, names)
        typer.echo(f"auditing {agent.algo} agent {target} on {data} ({len(prices)} bars)...")
        verdict = audit_look_ahead(agent.positions, prices, name=f"{agent.algo} agent {target}", n_cuts=cuts)
    typer.echo(verdict.message())
    if not verdict.clean:
        raise typer.Exit(1)


def _load_agent(target: str, tracking_uri: str | None, strategy_names: list[str]):
    """The agent named by a run id, a runs:/ or models:/ URI, or a saved agent folder."""
    from fin_meta.tracking.model import URI_PREFIXES, load_agent

    if target.startswith(URI_PREFIXES) or Path(target).is_dir():
        return load_agent(target, tracking_uri=tracking_uri if target.startswith(URI_PREFIXES) else None)
    if re.fullmatch(r"[0-9a-f]{32}", target):  # an MLflow run id
        return load_agent(f"runs:/{target}/agent", tracking_uri=tracking_uri)
    close = difflib.get_close_matches(target, strategy_names, n=1)
    hint = f"did you mean the strategy {close[0]!r}? " if close else ""
    raise AgentError(f"{target!r} is neither a strategy, a run id (32 hex digits), a runs:/<id>/agent URI "
                     f"nor a saved agent folder; {hint}strategies: {', '.join(strategy_names)}")
