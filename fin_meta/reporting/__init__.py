"""`fin-meta report RUN_ID`: one self-contained HTML page a person reads about a logged run (a
`fin-meta run`, a walk-forward run, a seed-set parent or a `fin-meta backtest`), written
atomically and logged to the run as the artifact `report.html`.

The pieces: `collect` (read the run's records from MLflow into pandas), `honest` (the honest
adaptation curve, recomputed from the logged returns and regime labels), `figures` (plotly
charts, reusing `fin_meta.plots`), `tables` (display tables), `page` (the HTML). This layer sits
above `pipeline` (it reads the artifact names the jobs write) and below `cli`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from fin_meta.fileio import atomic_write_text
from fin_meta.reporting.collect import RunReport, collect_report, find_run
from fin_meta.reporting.page import NOT_LOGGED, SECTIONS, render_page
from fin_meta.tracking.store import open_client, resolve_tracking_uri

__all__ = ["NOT_LOGGED", "REPORT_ARTIFACT", "SECTIONS", "ReportOutcome", "RunReport", "write_report"]

REPORT_ARTIFACT = "report.html"
"""The name of the page among the run's artifacts."""


@dataclass(frozen=True)
class ReportOutcome:
    """Where the page went: the local `path`, its size in bytes, the full `run_id`, the store
    (`tracking_uri`), whether it was `logged` to the run, and the sections that said
    `NOT_LOGGED` (`missing`)."""

    path: Path
    size: int
    run_id: str
    tracking_uri: str
    logged: bool
    missing: tuple[str, ...]


def write_report(run_ref: str, out: str | Path | None = None, *, tracking_uri: str | None = None, cdn: bool = False,
                 log: bool = True) -> ReportOutcome:
    """Write the report of run `run_ref` (a full id or a unique prefix) to `out` (default:
    `report_<run id[:8]>.html` here), atomically, and with `log` add it to the run's artifacts as
    `REPORT_ARTIFACT`. plotly.js is embedded (opens offline) unless `cdn`. `TrackingError` (one
    line) when the store or the run does not exist."""
    uri = resolve_tracking_uri(tracking_uri)
    client = open_client(uri, must_exist=True)
    run = find_run(client, run_ref)
    report = collect_report(client, run)
    page = render_page(report, cdn=cdn)
    path = Path(out) if out is not None else Path(f"report_{run.info.run_id[:8]}.html")
    atomic_write_text(path, page)
    if log:
        with tempfile.TemporaryDirectory(prefix="fin-meta-report-") as tmp:
            staged = Path(tmp) / REPORT_ARTIFACT  # the artifact's name, whatever `out` is called
            staged.write_text(page, encoding="utf-8")
            client.log_artifact(run.info.run_id, str(staged))
    missing = tuple(key for key in SECTIONS if f"<section id='{key}' data-state='missing'>" in page)
    return ReportOutcome(path=path, size=len(page.encode("utf-8")), run_id=run.info.run_id, tracking_uri=uri,
                         logged=log, missing=missing)
