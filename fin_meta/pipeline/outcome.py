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
from fin_meta.backtest.report import by_period, format_by_period, format_results_table
from fin_meta.config import ExperimentConfig
from fin_meta.tracking import resolve_tracking_uri

__all__ = ["Clock", "ExperimentOutcome"]


@dataclass
class ExperimentOutcome:
    """What `run_experiment` produced: per-source evaluations of the test period, the adaptation
    summary, the trained agent (the checkpoint tested: the best on validation when there is a
    validation period), the MLflow run id (None when not tracked), the wall time in seconds, each
    source's actual periods (`SourceData.describe`), why the meta-test has no segment (if so),
    the per-source evaluations of the in-sample (training) and validation periods (empty
    without one), and a line per trained agent saying which checkpoint is tested."""

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
    in_sample: list[Evaluation] = field(default_factory=list)
    validation: list[Evaluation] = field(default_factory=list)
    training: list[str] = field(default_factory=list)

    def print_report(self, echo: Callable[[str], Any] = print) -> None:
        """Print the periods and frequency of each source, which checkpoints were tested, the
        test-period results table per source and the same strategies in-sample / validation /
        test side by side, the meta-test, then where the run was logged."""
        echo("\nperiods (the data's actual bars):")
        for line in self.periods:
            echo(f"  {line}")
        for line in self.training:
            echo(f"  {line}")
        for i, ev in enumerate(self.evaluations):
            test = ev.positions.index
            echo(f"\n{ev.name} test period {test[0].date()} .. {test[-1].date()} ({len(test):,} bars), "
                 "sorted by net Sharpe (95% bootstrap CI), fees+slippage included:")
            echo(format_results_table(ev.table))
            tables = {name: evs[i].table for name, evs in (("train", self.in_sample), ("val", self.validation)) if evs}
            if tables:
                tables["test"] = ev.table
                echo(f"\n{ev.name} by period ({' / '.join(tables)}; train: walked forward over the training "
                     "period, in-sample):")
                echo(format_by_period(by_period(tables), list(tables)))
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
