"""The end of a sweep: what the study found (`summarise`), logged once to the parent run
(`log_sweep`) and printed (`SweepOutcome.print_report`).

The parent run gets the number of trials (`sweep.trials`, `.complete`, `.pruned`, `.failed`),
the best validation net Sharpe (`sweep.best.val.sharpe`), the best trial's values (tags
`sweep.best.<key>`, `sweep/best_params.json`), every trial (`sweep/trials.csv`), the parameter
importances (metrics `sweep.importance.<key>`, `sweep/importance.html`) and the optimisation
history (`sweep/history.html`). The best trial's **test** figures (`best.test.<stat>`, read from
its child run) are reported here once, after the choice: nothing was chosen on them; with them
its test DSR deflated by the trials run and the PBO over the trials' test returns
(`fin_meta.sweeps.overfit`: `sweep.best.test.dsr`, `sweep.pbo`, `sweep/overfitting.md|csv`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fin_meta.metrics import STAT_KEYS
from fin_meta.sweeps.overfit import SweepOverfitting, assess_trials, log_overfitting
from fin_meta.tracking.records import set_description
from fin_meta.tracking.run import Tracker

if TYPE_CHECKING:
    import optuna
    from mlflow.tracking import MlflowClient

__all__ = ["SweepOutcome", "log_sweep", "summarise"]

_SHOWN = ("sharpe", "gross_sharpe", "cagr", "max_drawdown", "turnover", "cost_drag")


@dataclass
class SweepOutcome:
    """What `run_sweep` found: the sweep's `name`, parent run and study storage; trial counts of
    this session and of the whole study (`{state: n}`); the best trial (number, values,
    validation net Sharpe, child run, the command that reruns it), its test figures and, over
    all the trials, the deflated figures (`overfitting`)."""

    name: str
    parent_run_id: str | None
    tracking_uri: str
    storage: str
    session: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    best_number: int | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_value: float | None = None
    best_run_id: str | None = None
    best_rerun: str | None = None
    best_test: dict[str, float] = field(default_factory=dict)
    importances: dict[str, float] = field(default_factory=dict)
    overfitting: SweepOverfitting | None = None

    def print_report(self, echo: Callable[[str], Any] = print) -> None:
        """Counts, the best trial (its values and validation score), then its test figures."""
        def counts(c: dict[str, int]) -> str:
            return ", ".join(f"{c.get(k, 0)} {k}" for k in ("complete", "pruned", "failed"))

        echo(f"\nsweep {self.name}: {sum(self.session.values())} trials this session ({counts(self.session)}); "
             f"{sum(self.total.values())} in the study ({counts(self.total)})")
        if self.best_number is None:
            echo("no trial completed: nothing to choose")
        else:
            echo(f"best trial {self.best_number}: validation net Sharpe {self.best_value:.4g} "
                 f"(MLflow run {self.best_run_id})")
            for key, value in self.best_params.items():
                echo(f"  {key} = {value!r}")
            if self.importances:
                echo("  importance: " + ", ".join(f"{k} {v:.2f}" for k, v in self.importances.items()))
            if self.best_test:
                figures = ", ".join(f"{k} {self.best_test[k]:.4g}" for k in _SHOWN if k in self.best_test)
                echo(f"its test period, scored once after the choice: {figures}")
            for line in self.overfitting.lines() if self.overfitting else []:
                echo(f"  {line}")
            if self.best_rerun:
                echo(f"  rerun it: {self.best_rerun}")
        if self.parent_run_id:
            echo(f"MLflow parent run {self.parent_run_id} in {self.tracking_uri}")
        echo(f"Optuna study {self.name!r} in {self.storage} (run the same sweep again to add trials)")


def _counts(trials: list[optuna.trial.FrozenTrial]) -> dict[str, int]:
    names = {"COMPLETE": "complete", "PRUNED": "pruned"}
    out = {"complete": 0, "pruned": 0, "failed": 0}
    for t in trials:
        if t.state.is_finished():
            out[names.get(t.state.name, "failed")] += 1
    return out


def _importances(study: optuna.Study) -> dict[str, float]:
    """Parameter importances over the completed trials; {} with fewer than 2 or no varied value."""
    import optuna
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varied = any(len({repr(t.params.get(k)) for t in done}) > 1 for k in (done[0].params if done else {}))
    if len(done) < 2 or not varied or not all(math.isfinite(t.value) for t in done):
        return {}
    return dict(optuna.importance.get_param_importances(study))


def summarise(study: optuna.Study, existing: int, client: MlflowClient | None, outcome: SweepOutcome) -> SweepOutcome:
    """Fill `outcome` from the study (`existing`: its trials before this session) and the best
    trial's child run (read with `client`)."""
    trials = study.get_trials(deepcopy=False)
    outcome.session = _counts([t for t in trials if t.number >= existing])
    outcome.total = _counts(trials)
    if outcome.total["complete"]:
        best = study.best_trial
        outcome.best_number, outcome.best_params, outcome.best_value = best.number, dict(best.params), best.value
        outcome.best_run_id = best.user_attrs.get("run_id")
        if client is not None and outcome.best_run_id:
            run = client.get_run(outcome.best_run_id)
            metrics = run.data.metrics
            outcome.best_test = {k: metrics[f"test.{k}"] for k in STAT_KEYS if f"test.{k}" in metrics}
            outcome.best_rerun = run.data.tags.get("fin_meta.rerun")
        outcome.importances = _importances(study)
    if client is not None and trials:
        outcome.overfitting = assess_trials(client, trials, outcome.best_run_id)
    return outcome


def log_sweep(tracker: Tracker, study: optuna.Study, outcome: SweepOutcome) -> None:
    """Log `outcome` and the study's tables and plots to the parent run (see the module docstring)."""
    total = sum(outcome.total.values())
    metrics = {"sweep.trials": total, **{f"sweep.trials.{k}": v for k, v in outcome.total.items()}}
    if outcome.best_value is not None:
        metrics["sweep.best.val.sharpe"] = outcome.best_value
        metrics.update({f"best.test.{k}": v for k, v in outcome.best_test.items()})
        metrics.update({f"sweep.importance.{k}": v for k, v in outcome.importances.items()})
        tracker.set_tags({"sweep.best.trial": outcome.best_number, "sweep.best.run_id": outcome.best_run_id,
                          **{f"sweep.best.{k}": v for k, v in outcome.best_params.items()}})
        tracker.log_dict({"trial": outcome.best_number, "validation_sharpe": outcome.best_value,
                          "params": outcome.best_params, "run_id": outcome.best_run_id}, "sweep/best_params.json")
    tracker.log_metrics(metrics, step=total)
    if outcome.overfitting is not None:
        log_overfitting(tracker, outcome.overfitting, step=total)
    if total:
        tracker.log_table(study.trials_dataframe(), "sweep/trials.csv")
        _log_plots(tracker, study, outcome)
    set_description(tracker, _description(outcome))


def _log_plots(tracker: Tracker, study: optuna.Study, outcome: SweepOutcome) -> None:
    """The optimisation history and (with importances) the importance chart, as plotly HTML."""
    from optuna import visualization

    def html(figure: Any) -> Callable[[Path], None]:
        return lambda path: figure.write_html(str(path), include_plotlyjs="cdn")

    if outcome.total["complete"]:
        tracker.log_figure(html(visualization.plot_optimization_history(study)), "sweep/history.html")
    if outcome.importances:
        tracker.log_figure(html(visualization.plot_param_importances(study)), "sweep/importance.html")


def _description(outcome: SweepOutcome) -> str:
    lines = [f"**Sweep `{outcome.name}`**: {sum(outcome.total.values())} trials "
             f"({', '.join(f'{v} {k}' for k, v in outcome.total.items())}); objective: validation net Sharpe.", ""]
    if outcome.best_number is not None:
        lines.append(f"Best trial {outcome.best_number} (run `{outcome.best_run_id}`): validation net Sharpe "
                     f"{outcome.best_value:.4g}")
        lines += [f"- `{k}` = {v!r}" for k, v in outcome.best_params.items()]
        if outcome.best_test:
            lines += ["", "Its test period (scored once, after the choice): " + ", ".join(
                f"{k} {outcome.best_test[k]:.4g}" for k in _SHOWN if k in outcome.best_test)]
    if outcome.overfitting is not None:
        lines += ["", *[f"- {line}" for line in outcome.overfitting.lines()]]
    return "\n".join(lines)
