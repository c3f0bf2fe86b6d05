"""What `run_experiment` returns (`ExperimentOutcome`, with its printed report) and the clock
that times its stages."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fin_meta.agents import Agent
from fin_meta.backtest import Evaluation
from fin_meta.backtest.report import format_results_table
from fin_meta.config import ExperimentConfig
from fin_meta.tracking import resolve_tracking_uri

__all__ = ["Clock", "ExperimentOutcome"]


@dataclass
class ExperimentOutcome:
    """What `run_experiment` produced: per-source evaluations, the adaptation summary, the
    trained agent, the MLflow run id (None when not tracked), the wall time in seconds, each
    source's actual periods (`SourceData.describe`) and why the meta-test has no segment (if so)."""

    config: ExperimentConfig
    agent: Agent
    evaluations: list[Evaluation]
    adaptation: pd.DataFrame | None = None
    run_id: str | None = None
    tracking_uri: str | None = None
    wall_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    periods: list[str] = field(default_factory=list)
    meta_test_note: str | None = None

    def print_report(self, echo: Callable[[str], Any] = print) -> None:
        """Print the periods and frequency of each source, the test-period results table per
        source, the meta-test, then where the run was logged."""
        echo("\nperiods (the data's actual bars):")
        for line in self.periods:
            echo(f"  {line}")
        for ev in self.evaluations:
            test = ev.positions.index
            echo(f"\n{ev.name} test period {test[0].date()} .. {test[-1].date()} ({len(test):,} bars), "
                 "sorted by Sharpe (95% bootstrap CI), fees+slippage included:")
            echo(format_results_table(ev.table))
        if self.adaptation is not None and len(self.adaptation):
            with pd.option_context("display.float_format", "{:.5f}".format, "display.width", 160):
                echo("\nmeta-test adaptation curve (mean per-bar net log return on held-out segments):")
                echo(self.adaptation.to_string(index=False))
        elif self.meta_test_note:
            echo(f"\n{self.meta_test_note}")
        echo(f"\nwall time {self.wall_s:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in self.timings.items()) + ")")
        if self.run_id:
            uri = resolve_tracking_uri(self.tracking_uri)
            echo(f"MLflow run {self.run_id} in {uri}")
            echo(f"  open the UI:   fin-meta ui --tracking-uri {uri}")
            echo(f'  load the agent: fin_meta.load_agent("runs:/{self.run_id}/agent")')


class Clock:
    """`with clock("name"):` accumulates wall seconds per stage into `timings`."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def __call__(self, name: str) -> Clock:
        self._name = name
        return self

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self._name] = self.timings.get(self._name, 0.0) + time.perf_counter() - self._t0
