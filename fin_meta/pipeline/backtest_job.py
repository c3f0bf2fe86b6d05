"""The `fin-meta backtest` job: load prices, run rule strategies, ONE vectorbt backtest with every
strategy as a column and an optional per-regime breakdown (`stages.evaluate`), then log the
`Evaluation` to MLflow with the same names as `fin-meta run` (`tracking.records.log_evaluation`).

Importing this module loads no pandas: `run_backtest_job` starts the MLflow background process
first and imports the rest while that process starts (a fresh `fin-meta backtest` saves the
second or so that pandas, the data and strategy modules take)."""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fin_meta.errors import StrategyError
from fin_meta.fileio import file_target
from fin_meta.tracking.background import open_store

if TYPE_CHECKING:
    import pandas as pd

    from fin_meta.backtest import BacktestResult

__all__ = ["BacktestJob", "run_backtest_job", "split_strategy_params"]

BENCHMARK = "buy_and_hold"
BOOTSTRAP_SAMPLES = 1000
"""Resamples of the Sharpe CI of the results table (seeded with 0: reruns print the same CI)."""
CHART_MODULES = ("matplotlib.figure", "matplotlib.backends.backend_agg", "fin_meta.plots.equity")
"""What the MLflow background process loads while the backtest runs: it draws the PNG charts
(and `fin_meta.plots.regimes` with `--regimes`)."""


@dataclass
class BacktestJob:
    """What a backtest job produced: stats (index = strategy), the results table with Sharpe CIs,
    the optional per-regime table, the MLflow run id (None when not tracked), written files."""

    source: str
    stats: pd.DataFrame
    table: pd.DataFrame
    by_regime: pd.DataFrame | None = None
    run_id: str | None = None
    tracking_uri: str | None = None
    files: list[Path] = field(default_factory=list)

    def stats_json(self) -> dict[str, dict[str, float]]:
        """Stats as `{strategy: {metric: value}}` (JSON-safe floats: NaN/inf become None)."""

        def clean(value: Any) -> Any:
            value = float(value)
            return value if math.isfinite(value) else None

        return {str(name): {k: clean(v) for k, v in row.items()} for name, row in self.stats.iterrows()}

    def print_report(self, echo: Callable[[str], Any]) -> None:
        """Print the results table, the regime breakdown and where the run was logged."""
        import pandas as pd

        from fin_meta.backtest.report import format_results_table

        echo(f"{self.source}: {len(self.stats)} strategies, sorted by net Sharpe (95% bootstrap CI), "
             "fees+slippage included")
        echo(format_results_table(self.table))
        if self.by_regime is not None:
            cols = [c for c in ("sharpe", "total_return", "annual_volatility", "max_drawdown") if c in self.by_regime]
            with pd.option_context("display.float_format", "{:.3g}".format, "display.width", 200):
                echo("\nby regime:")
                echo(self.by_regime[cols].to_string())
        for path in self.files:
            echo(f"wrote {path}")
        if self.run_id:
            echo(f"MLflow run {self.run_id} — open the UI with: fin-meta ui" + _uri_flag(self.tracking_uri))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while the job runs (as before it afterwards): importing
    vectorbt, pandas and scipy builds half a million objects that the collector would walk again
    and again (about a fifth of their CPU time); the job itself leaves little cyclic garbage."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _uri_flag(uri: str | None) -> str:
    return f" --tracking-uri {uri}" if uri else ""


def split_strategy_params(names: Sequence[str], params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Route `k=v` to the single strategy, or `name.k=v` to strategy `name` when there are several."""
    routed: dict[str, dict[str, Any]] = {name: {} for name in names}
    for key, value in params.items():
        name, dot, param = key.partition(".")
        if dot and name in routed:
            routed[name][param] = value
        elif len(names) == 1 and not dot:
            routed[names[0]][key] = value
        else:
            raise StrategyError(
                f"--param {key}: with several strategies name the strategy, e.g. --param {names[0]}.{key.split('.')[-1]}=..."
                f" (strategies: {', '.join(names)})"
            )
    return routed


def run_backtest_job(
    source: str,
    strategies: Sequence[str] = ("all",),
    params: dict[str, Any] | None = None,
    *,
    start: str | None = None,
    end: str | None = None,
    fees: float = 5e-4,
    slippage: float = 5e-4,
    benchmark: bool = True,
    regime_method: str | None = None,
    strategies_dir: Path | None = None,
    plot: Path | None = None,
    experiment: str = "backtest",
    track: bool = True,
    tracking_uri: str | None = None,
    data_dir: Path | None = None,
    progress: bool = True,
    offline_html: bool = False,
    background: bool | None = None,
) -> BacktestJob:
    """Run the backtest job end to end and return what it produced (see `BacktestJob`). `fees`:
    fraction of traded value; `slippage`: fraction of the price; `plot`: also write the equity
    and drawdown chart (PNG) there; `offline_html`: the logged HTML chart embeds plotly.js
    (opens offline) instead of loading it from its CDN. `background`: open the MLflow store in a
    second process while the backtest computes (`fin_meta.tracking.background.open_store`; None:
    when this process has not imported MLflow yet, as in a fresh `fin-meta backtest`)."""
    if plot is not None:  # bad input fails before anything is computed or logged
        file_target(plot, "equity.png")
    charts = CHART_MODULES + (("fin_meta.plots.regimes",) if regime_method else ())
    with _collector_paused(), open_store(experiment, tracking_uri=tracking_uri, enabled=track,
                                         background=background, preload=charts) as store:  # opens while we compute
        from fin_meta.data import load_prices
        from fin_meta.frequency import bars_per_year_of
        from fin_meta.pipeline.deflate import log_deflated_sharpe
        from fin_meta.pipeline.stages import asset_name, evaluate, rule_positions
        from fin_meta.plots.equity import plot_equity_png
        from fin_meta.regimes import detect_regimes
        from fin_meta.tracking.params import prices_hash
        from fin_meta.tracking.records import log_evaluation
        from strategies import available_strategies

        prices = load_prices(source, start, end, data_dir=data_dir)
        available = available_strategies(strategies_dir)
        names = list(available) if list(strategies) == ["all"] else list(dict.fromkeys(strategies))
        routed = split_strategy_params(names, params or {})
        if benchmark and BENCHMARK not in names:
            names.append(BENCHMARK)
            routed[BENCHMARK] = {}
        labels = None if regime_method is None else detect_regimes(prices, method=regime_method, causal=True)
        rules = rule_positions(prices, names, routed, strategies_dir)
        name = asset_name(source)

        run_params = {
            "data": {"source": source, "start": start, "end": end, "bars": len(prices),
                     "bars_per_year": bars_per_year_of(prices)},
            "strategies": names,
            "strategy_params": routed,
            "fees": fees,
            "slippage": slippage,
            "regimes": regime_method,
        }
        tags = {"data.source": source, "data.hash": prices_hash(prices), "job": "backtest"}
        # started before the backtest: a background process starts it while vectorbt loads here
        with store.start_run(params=run_params, tags=tags) as tracker:

            def draw_ahead(result: BacktestResult) -> None:  # the PNG `log_evaluation` logs (its name there):
                # the background process draws it while the bootstrap of the results table runs here
                store.prepare_figure(partial(plot_equity_png, result.equity), f"plots/equity_{name}.png")

            evaluation = evaluate(name, prices, prices, {}, rules, fees=fees, slippage=slippage, max_position=1.0,
                                  bootstrap_samples=BOOTSTRAP_SAMPLES, seed=0, labels=labels, on_backtest=draw_ahead)
            job = BacktestJob(source=source, stats=evaluation.stats, table=evaluation.table,
                              by_regime=evaluation.by_regime, tracking_uri=tracking_uri)
            if plot is not None:
                job.files.append(evaluation.result.plot(plot))
            log_evaluation(tracker, evaluation, "test", offline_html=offline_html)
            log_deflated_sharpe(tracker, [evaluation])
            job.run_id = tracker.run_id
    return job
