"""The report page: one self-contained HTML file of a `RunReport` (`render_page`). Its sections,
in order (`SECTIONS`, each a `<section id=...>`): overview, results (net Sharpe with its 95% CI,
PSR and DSR), deflated (the trials the DSR accounts for), equity (equity and drawdown against the
baselines, regimes shaded), regimes (per-regime stats), adaptation (the meta-test curve and the
honest curve), walk-forward (per-fold stats), members (the runs of a seed set), pbo. A piece the
run did not log says `NOT_LOGGED` in its section (`data-state="missing"`).

plotly.js is embedded once (offline: the page is a file people mail around, about 4.7 MB) or,
with `cdn=True`, loaded from plotly's CDN (a small file that needs the network to draw)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pandas as pd

from fin_meta.constants import __version__
from fin_meta.reporting.collect import RunReport, SourceReport
from fin_meta.reporting.figures import (
    adaptation_figure,
    equity_regimes_figure,
    folds_figure,
    honest_figure,
    pbo_figure,
)
from fin_meta.reporting.honest import HONEST_RESAMPLES, honest_curve
from fin_meta.reporting.tables import (
    folds_table,
    html_table,
    members_table,
    pbo_table,
    regime_table,
    results_table,
    seed_summary_table,
)

__all__ = ["NOT_LOGGED", "SECTIONS", "render_page"]

NOT_LOGGED = "not logged for this run"
"""What a section says about a piece the run did not log."""
SECTIONS: dict[str, str] = {
    "overview": "Run", "results": "Results on the test period", "deflated": "Deflated Sharpe ratio",
    "equity": "Equity and drawdown against the baselines", "regimes": "Per-regime statistics",
    "adaptation": "Adaptation", "walk-forward": "Walk-forward folds", "members": "Runs of the set",
    "pbo": "Probability of backtest overfitting",
}
"""Section id -> heading, in page order."""
_MISSING = re.compile(r"<p class='missing'>.*?</p>", re.S)
_OVERVIEW_TAGS = ("data.source", "agent.algo", "job", "seeds", "walk_forward.folds", "command", "git.commit",
                  "fin_meta.version")
_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;
padding:1em 2em;color:#222}h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table.table{border-collapse:collapse;font-size:.9em;margin:.5em 0}table.table td,table.table th{padding:.25em .7em;
border-bottom:1px solid #eee;text-align:right}table.table th:first-child,table.table td:first-child{text-align:left}
.missing{color:#8a6d3b;background:#fcf8e3;padding:.4em .8em;border-radius:4px}.caption,.note{color:#555;
font-size:.9em}code{background:#f4f4f4;padding:0 .2em}
table.keys td{text-align:left}"""


class _Figures:
    """Renders figures to HTML divs, with plotly.js included by the first one only."""

    def __init__(self, cdn: bool) -> None:
        self.cdn, self.count = cdn, 0

    def __call__(self, fig: Any) -> str:
        import plotly.io as pio

        include: bool | str = ("cdn" if self.cdn else True) if self.count == 0 else False
        self.count += 1
        return pio.to_html(fig, full_html=False, include_plotlyjs=include, div_id=f"figure-{self.count}",
                           config={"responsive": True, "displaylogo": False})


def _missing(what: str, hint: str = "") -> str:
    return f"<p class='missing'>{html.escape(what)}: {NOT_LOGGED}{html.escape(hint)}</p>"


def _note(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"


def _heading(src: SourceReport, several: bool) -> str:
    return f"<h3>{html.escape(src.name)}</h3>" if several else ""


def _overview(r: RunReport) -> str:
    rows = {"run": f"{r.run_name} ({r.run_id})", "experiment": r.experiment, "kind": r.kind, "status": r.status,
            "started": "" if r.start_time is None else f"{r.start_time:%Y-%m-%d %H:%M} UTC"}
    rows.update({tag: r.tags[tag] for tag in _OVERVIEW_TAGS if tag in r.tags})
    for src in r.sources:
        if src.returns is not None and len(src.returns):
            idx = src.returns.index
            rows[f"test period ({src.name})"] = f"{idx[0]:%Y-%m-%d} .. {idx[-1]:%Y-%m-%d} ({len(idx):,} bars)"
    return html_table(pd.DataFrame({"value": rows}).rename_axis("field"), classes="table keys")


def _results(r: RunReport) -> str:
    if r.seed_summary is not None:
        return (_note("Mean ± sd over the seeds (each seed its own run, listed below); Δ Sharpe: the agent minus "
                      "the strategy, with the paired 95% block-bootstrap CI pooled over seeds.")
                + html_table(seed_summary_table(r.seed_summary, r.metrics)))
    parts = [_heading(src, len(r.sources) > 1) + html_table(results_table(src.results, src.deflated),
                                                           "Net of fees and slippage; 95% bootstrap CI of the "
                                                           "Sharpe; best net Sharpe first.")
             for src in r.sources if src.results is not None]
    return "".join(parts) or _missing("The results table (test/results.csv)")


def _deflated(r: RunReport) -> str:
    parts = []
    for src in r.sources:
        if src.deflated is None:
            continue
        parts.append(_note(f"{src.name}: the DSR deflates each Sharpe by the expected best of N = "
                           f"{src.trials or '?'} trials (the finished runs of this experiment on the same data "
                           f"and test period, counted when this run finished; tag dsr.trials), per-bar Sharpe "
                           f"variance across them {src.sharpe_variance or '?'}. PSR: the probability that the true "
                           "Sharpe is above 0; DSR: above the best of N trials' expected maximum (Bailey & López "
                           "de Prado 2014). Both are in the results table."))
    if r.seed_summary is not None and "test.dsr.mean" in r.metrics:
        trials = sorted(set(r.members["trials"])) if r.members is not None else []
        parts.append(_note(f"Per seed: each seed's DSR counts the trials finished before it (N per seed: "
                           f"{', '.join(map(str, trials)) or '?'}); the table shows their mean ± sd."))
    return "".join(parts) or _missing("The deflated and probabilistic Sharpe ratios (test.dsr, test.psr, tag "
                                      "dsr.trials)", " (a run logged before they were computed, or a walk-forward "
                                      "run)")


def _equity(r: RunReport, figure: Callable[[Any], str]) -> str:
    parts = []
    for src in r.sources:
        if src.returns is None:
            continue
        title = f"{src.name}: equity (start = 1) and drawdown, net of costs"
        shading = "" if src.regimes is not None else _missing("Regime labels for the shading (test/regimes.csv)")
        parts.append(_heading(src, len(r.sources) > 1) + figure(equity_regimes_figure(src.returns, src.regimes, title))
                     + shading)
    return "".join(parts) or _missing("Per-bar test returns (test/returns.csv)")


def _regimes(r: RunReport) -> str:
    parts = []
    for src in r.sources:
        if src.by_regime is None or src.by_regime.empty:
            continue
        names = ({} if src.regimes is None else
                 src.regimes.drop_duplicates("regime").set_index("regime")["name"].to_dict())
        parts.append(_heading(src, len(r.sources) > 1)
                     + html_table(regime_table(src.by_regime, names), "Net Sharpe (total return) of each strategy "
                                  "over the bars of each causal regime label."))
    hint = " (a seed set: open a seed's own report, fin-meta report SEED_RUN_ID)" if r.seed_summary is not None else ""
    return "".join(parts) or _missing("Per-regime statistics (test/by_regime.csv)", hint)


def _adaptation(r: RunReport, figure: Callable[[Any], str]) -> str:
    parts = [figure(adaptation_figure(r.adaptation)) if r.adaptation is not None
             else _missing("The meta-test adaptation curve (meta_test/adaptation_curve.csv)",
                           " (a walk-forward or backtest run has no meta-test)")]
    honest_parts = []
    for src in r.sources:
        if src.returns is None or src.regimes is None:
            continue
        curve = honest_curve(src.returns, src.regimes)
        if curve is not None:
            honest_parts.append(_heading(src, len(r.sources) > 1) + figure(honest_figure(curve)) + _note(
                f"Recomputed from test/returns.csv and test/regimes.csv: the bars before the first change of label "
                f"are left out; {HONEST_RESAMPLES} stationary-block-bootstrap resamples, seed 0."))
    parts += honest_parts or [_missing("The honest adaptation curve (needs test/returns.csv and test/regimes.csv)")]
    return "".join(parts)


def _walk_forward(r: RunReport, figure: Callable[[Any], str]) -> str:
    if r.folds is None or r.folds.empty:
        return _missing("Per-fold walk-forward statistics (walk_forward/folds.csv)")
    return (html_table(folds_table(r.folds), "Net Sharpe (total return) of each strategy over the bars each fold "
                       "traded; the stitched test series is in the results above.") + figure(folds_figure(r.folds)))


def _members(r: RunReport) -> str:
    if r.members is None:
        return _missing("Member runs (a seed set's or sweep's child runs)")
    return html_table(members_table(r.members), "One run per member: its own report is fin-meta report RUN_ID.")


def _pbo(r: RunReport, figure: Callable[[Any], str]) -> str:
    if r.pbo is None:
        return _missing("A PBO covering this run", " (fin-meta compare --pbo over the experiment's runs logs one)")
    out = html_table(pbo_table(r.pbo), "Each fin-meta compare --pbo analysis whose runs include this one, newest "
                     "first: the probability that the best run in-sample is in the bottom half out of sample.")
    if r.pbo_logits is not None and len(r.pbo_logits):
        out += figure(pbo_figure(r.pbo_logits, float(r.pbo["pbo"].iloc[0])))
    return out


def render_page(report: RunReport, *, cdn: bool = False) -> str:
    """The report page of `report` (module docstring) as one HTML string."""
    figure = _Figures(cdn)
    bodies = {"overview": _overview(report), "results": _results(report), "deflated": _deflated(report),
              "equity": _equity(report, figure), "regimes": _regimes(report),
              "adaptation": _adaptation(report, figure), "walk-forward": _walk_forward(report, figure),
              "members": _members(report), "pbo": _pbo(report, figure)}
    sections = []
    for key, heading in SECTIONS.items():
        body = bodies[key]
        state = "missing" if not _MISSING.sub("", body).strip() else "shown"
        sections.append(f"<section id='{key}' data-state='{state}'><h2>{html.escape(heading)}</h2>{body}</section>")
    title = html.escape(f"fin-meta report: {report.run_name or report.run_id}")
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
            f"<meta name='generator' content='fin-meta {__version__}'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{_CSS}</style></head>"
            f"<body data-run-id='{html.escape(report.run_id)}' data-figures='{figure.count}'><h1>{title}</h1>"
            + "\n".join(sections)
            + f"<footer class='note'>Written by fin-meta {html.escape(__version__)} from the run's MLflow records "
            "(fin-meta report). Sharpe ratios are annualised with the data's bars per year.</footer></body></html>\n")
