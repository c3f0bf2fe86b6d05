"""The sweep's test figures, deflated: computed once at the end of a sweep and logged to its
parent run, after the best trial was chosen on the validation period; nothing here chooses.

- **DSR** of the best trial's test Sharpe (`fin_meta.overfitting`, every Sharpe per bar): the
  probability that its true Sharpe beats SR0, the expected best of N skill-less trials, where
  N = the trials run (complete + pruned: every configuration scored on the validation period;
  a failed trial never ran) and V = the sample variance of the completed trials' per-bar test
  Sharpes (`tracking.trials.sharpe_variance`; pruned trials never reach the test period). With
  one completed trial V = 0 and the DSR is the PSR (against 0).
- **PBO** by CSCV (S = 16 blocks) over the completed trials' test returns: each child run's
  `test/returns.csv`, its headline column, on the common bars (`tracking.pbo_runs`).

When a figure cannot be computed (no completed trial, fewer than 2 for the PBO, too few bars,
several sources) its note says why instead of a number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fin_meta.errors import DataError
from fin_meta.overfitting import (
    DEFAULT_BLOCKS,
    PBOResult,
    SharpeMoments,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_moments,
)
from fin_meta.tracking.pbo_runs import returns_of_runs
from fin_meta.tracking.run import Tracker
from fin_meta.tracking.trials import sharpe_variance

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient
    from optuna.trial import FrozenTrial

__all__ = ["SweepOverfitting", "assess_trials", "log_overfitting"]

_RAN = {"COMPLETE": "complete", "PRUNED": "pruned"}


@dataclass
class SweepOverfitting:
    """The deflated figures of a sweep (module docstring): `n_trials` (N), `sharpe_variance` (V,
    per bar), `sr0` (per bar), the best trial's per-bar test `best_sharpe`, `psr` and `dsr`
    (None, with `dsr_note` saying why, when not computed), the `pbo` result (None: `pbo_note`
    says why) and `table`: a row per trial run (trial, state, run_id, validation net Sharpe,
    per-bar test Sharpe, test bars, best)."""

    n_trials: int
    sharpe_variance: float
    sr0: float
    best_sharpe: float | None = None
    psr: float | None = None
    dsr: float | None = None
    dsr_note: str = ""
    pbo: PBOResult | None = None
    pbo_note: str = ""
    table: pd.DataFrame = field(default_factory=pd.DataFrame)

    def metrics(self) -> dict[str, float]:
        """The parent run's metrics: `sweep.dsr.*` (N, V, SR0), `sweep.best.test.psr|dsr`, `sweep.pbo*`."""
        out = {"sweep.dsr.trials": self.n_trials, "sweep.dsr.sharpe_var": self.sharpe_variance,
               "sweep.dsr.sr0": self.sr0}
        if self.dsr is not None:
            out.update({"sweep.best.test.sharpe_per_bar": self.best_sharpe, "sweep.best.test.psr": self.psr,
                        "sweep.best.test.dsr": self.dsr})
        if self.pbo is not None:
            out.update({"sweep.pbo": self.pbo.pbo, "sweep.pbo.prob_oos_loss": self.pbo.prob_oos_loss,
                        "sweep.pbo.trials": self.pbo.n_strategies, "sweep.pbo.blocks": self.pbo.n_blocks,
                        "sweep.pbo.bars": self.pbo.bars_used})
        return out

    def lines(self) -> list[str]:
        """What was computed, or why not, one line each (console and `sweep/overfitting.md`)."""
        tested = int(self.table["test_sharpe_per_bar"].notna().sum()) if len(self.table) else 0
        head = (f"deflated by N = {self.n_trials} trials run (per-bar test Sharpe variance V = {self.sharpe_variance:.3g} "
                f"over {tested} tested; SR0 = {self.sr0:.4g} per bar)")
        dsr = (f"best trial's test DSR {self.dsr:.3f} (PSR {self.psr:.3f}; Sharpe {self.best_sharpe:.4g} per bar), {head}"
               if self.dsr is not None else f"best trial's test DSR not computed: {self.dsr_note}")
        r = self.pbo
        pbo = (f"PBO (CSCV, S={r.n_blocks}, {r.n_splits:,} splits) over {r.n_strategies} trials' test returns, "
               f"{r.bars_used:,} bars: {r.pbo:.2f} (the in-sample winner loses money out of sample in "
               f"{r.prob_oos_loss:.0%} of splits)" if r is not None else f"PBO not computed: {self.pbo_note}")
        return [dsr, pbo]

    def markdown(self) -> str:
        """`sweep/overfitting.md`: the two lines and the trials' table."""
        cols = list(self.table.columns)
        rows = ["# The sweep's test figures, deflated", "",
                "Scored once, after the best trial was chosen on the validation period.", "",
                *[f"- {line}" for line in self.lines()], "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        rows += ["| " + " | ".join(_cell(v) for v in rec) + " |" for rec in self.table.itertuples(index=False)]
        return "\n".join(rows) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.4g}"
    return str(value)


def assess_trials(client: MlflowClient, trials: Sequence[FrozenTrial], best_run_id: str | None,
                  n_blocks: int = DEFAULT_BLOCKS) -> SweepOverfitting:
    """The `SweepOverfitting` of a study's `trials` (their child run ids in the user attribute
    `run_id`), the chosen trial's child run being `best_run_id`; runs read with `client`."""
    ran = [t for t in trials if t.state.name in _RAN]
    ids = [t.user_attrs["run_id"] for t in ran if t.state.name == "COMPLETE" and t.user_attrs.get("run_id")]
    returns, moments, why = _test_returns(client, ids, best_run_id)
    sharpes = pd.Series(moments.sharpe if moments is not None else [], index=returns.columns, dtype=float)
    n, variance = len(ran), sharpe_variance(sharpes.to_numpy())
    out = SweepOverfitting(n_trials=n, sharpe_variance=variance, sr0=expected_max_sharpe(max(n, 1), variance),
                           dsr_note=why, table=_table(ran, sharpes, len(returns), best_run_id))
    if moments is not None and best_run_id in sharpes.index:
        j = returns.columns.get_loc(best_run_id)
        args = (moments.sharpe[j], moments.n_bars, moments.skew[j], moments.kurtosis[j])
        out.best_sharpe = float(moments.sharpe[j])
        out.psr = float(probabilistic_sharpe_ratio(*args))
        out.dsr = float(deflated_sharpe_ratio(*args, n_trials=n, sharpe_variance=variance))
    if len(returns.columns) < 2:
        out.pbo_note = (f"needs the test returns of at least 2 completed trials, found {len(returns.columns)}"
                        + (f" ({why})" if not len(returns.columns) else ""))
    else:
        try:
            out.pbo = probability_of_backtest_overfitting(returns, n_blocks)
        except DataError as exc:
            out.pbo_note = str(exc)
    return out


def _test_returns(client: MlflowClient, run_ids: list[str], best_run_id: str | None
                  ) -> tuple[pd.DataFrame, SharpeMoments | None, str]:
    """The completed trials' test returns (bars x run ids), their moments, and why the best
    trial has no DSR should it be missing."""
    if not run_ids:
        return pd.DataFrame(), None, "no completed trial: nothing was tested"
    try:
        returns, skipped = returns_of_runs(client, run_ids, "test", at_least=1)
        return returns, sharpe_moments(returns.to_numpy()), skipped.get(str(best_run_id), "the best trial has no test returns")
    except DataError as exc:
        return pd.DataFrame(), None, str(exc)


def _table(ran: Sequence[FrozenTrial], sharpes: pd.Series, bars: int, best_run_id: str | None) -> pd.DataFrame:
    rows = []
    for t in ran:
        run_id = t.user_attrs.get("run_id")
        tested = run_id in sharpes.index
        rows.append({"trial": t.number, "state": _RAN[t.state.name], "run_id": run_id or "",
                     "val_sharpe": t.value if t.value is not None else np.nan,
                     "test_sharpe_per_bar": float(sharpes[run_id]) if tested else np.nan,
                     "test_bars": bars if tested else 0, "best": run_id is not None and run_id == best_run_id})
    return pd.DataFrame(rows, columns=["trial", "state", "run_id", "val_sharpe", "test_sharpe_per_bar", "test_bars",
                                       "best"])


def log_overfitting(tracker: Tracker, found: SweepOverfitting, step: int) -> None:
    """Log `found` to the parent run at `step`: its metrics, the tags `sweep.dsr.note` and
    `sweep.pbo.note` (what was computed, or why not) and `sweep/overfitting.md|csv`."""
    dsr, pbo = found.lines()
    tracker.log_metrics(found.metrics(), step=step)
    tracker.set_tags({"sweep.dsr.note": dsr, "sweep.pbo.note": pbo})
    tracker.log_text(found.markdown(), "sweep/overfitting.md")
    tracker.log_table(found.table, "sweep/overfitting.csv")
