"""What `fin-meta report` reads from MLflow: one run's logged tables, metrics and tags, turned
into plain pandas data (`RunReport`), nothing drawn yet. Every piece is optional: a piece the
run did not log is None and its section of the page says so.

Read (names as `fin_meta.tracking.records` and the jobs write them): `test/returns.csv`
(per-bar net returns, every strategy), `test/results.csv` (Sharpe with its bootstrap CI),
`test/by_regime.csv`, `test/regimes.csv` (causal labels per bar), metrics `test.psr` /
`test.dsr[.<strategy>]` and tag `dsr.trials`, `meta_test/adaptation_curve.csv`,
`walk_forward/folds.csv`; `test/<asset>/...` and `test.<asset>.` prefixes with several sources.
A seed-set parent: `seeds/summary.csv`, `seeds/test_returns.csv` and its child runs; the PBO of
any `fin-meta compare --pbo` run of the experiment that covered the run (or its children).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from fin_meta.tracking.nesting import ROLE_TAG, SEED_RETURNS, SEED_SUMMARY, child_runs
from fin_meta.tracking.query import search_all_runs
from fin_meta.tracking.store import TrackingError, active_experiments
from fin_meta.tracking.trials import PBO_ROLE, TRIALS_TAG

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

__all__ = ["RunReport", "SourceReport", "collect_report", "find_run"]

ADAPTATION = "meta_test/adaptation_curve.csv"
"""The meta-test's adaptation curve (`fin_meta.tracking.records.log_meta_test`)."""
FOLDS_ARTIFACT = "walk_forward/folds.csv"
"""A walk-forward's per-fold table: `fin_meta.pipeline.walk_forward.FOLDS_ARTIFACT` (a test holds
them equal; importing the pipeline here would bring torch into `fin-meta report`, seconds)."""
MEMBER_METRICS = ("test.sharpe", "test.dsr", "test.psr", "test.total_return", "test.max_drawdown")
"""The metrics of each child run in a parent's member table."""


@dataclass
class SourceReport:
    """One source's test evaluation. `returns`: per-bar net returns (bars x strategies, the
    headline column first); `results`: `results.csv` by strategy (net Sharpe and its 95% CI, ...);
    `by_regime`: `by_regime.csv`; `regimes`: per-bar `regime` (int) and `name` on the dates;
    `deflated`: `psr`, `dsr` by strategy; `trials`: the N the DSR accounts for (tag)."""

    name: str
    returns: pd.DataFrame | None = None
    results: pd.DataFrame | None = None
    by_regime: pd.DataFrame | None = None
    regimes: pd.DataFrame | None = None
    deflated: pd.DataFrame | None = None
    trials: str | None = None
    sharpe_variance: str | None = None


@dataclass
class RunReport:
    """Everything the page shows about one run (module docstring); None = not logged."""

    run_id: str
    run_name: str
    experiment: str
    status: str
    kind: str
    tags: dict[str, str]
    metrics: dict[str, float]
    start_time: pd.Timestamp | None = None
    sources: list[SourceReport] = field(default_factory=list)
    adaptation: pd.DataFrame | None = None
    folds: pd.DataFrame | None = None
    seed_summary: pd.DataFrame | None = None
    members: pd.DataFrame | None = None
    pbo: pd.DataFrame | None = None
    pbo_logits: pd.Series | None = None


def find_run(client: MlflowClient, ref: str) -> Run:
    """The run `ref` (a full id, or a unique prefix of one) of the store; `TrackingError` in one
    line when it names no run or several."""
    ref = (ref or "").strip()
    if not ref:
        raise TrackingError("report needs a run id (fin-meta compare lists them)")
    ids = [exp.experiment_id for exp in active_experiments(client)]
    matches = [r for r in search_all_runs(client, ids) if r.info.run_id.startswith(ref)] if ids else []
    if len(matches) != 1:
        problem = f"matches several runs ({', '.join(r.info.run_id for r in matches[:5])})" if matches else \
            "matches no run"
        raise TrackingError(f"report: run id {ref!r} {problem} in {client.tracking_uri}; pass a full run id "
                            "(fin-meta compare lists them)")
    return matches[0]


class _Artifacts:
    """A run's artifacts, listed folder by folder and downloaded on demand to `scratch`."""

    def __init__(self, client: MlflowClient, run_id: str, scratch: Path) -> None:
        self.client, self.run_id, self.scratch = client, run_id, scratch
        self._listed: dict[str, dict[str, bool]] = {}

    def entries(self, folder: str) -> dict[str, bool]:
        """`{path: is_dir}` directly under `folder` ("" for the top)."""
        if folder not in self._listed:
            found = self.client.list_artifacts(self.run_id, folder or None)
            self._listed[folder] = {f.path: f.is_dir for f in found}
        return self._listed[folder]

    def has(self, path: str) -> bool:
        return path in self.entries(str(Path(path).parent) if "/" in path else "")

    def csv(self, path: str, **kwargs: object) -> pd.DataFrame | None:
        if not self.has(path):
            return None
        local = self.client.download_artifacts(self.run_id, path, str(self.scratch))
        return pd.read_csv(local, **kwargs)  # type: ignore[call-overload]

    def text(self, path: str) -> str | None:
        if not self.has(path):
            return None
        return Path(self.client.download_artifacts(self.run_id, path, str(self.scratch))).read_text()


def _kind(run: Run) -> str:
    tags = run.data.tags
    role = tags.get(ROLE_TAG, "")
    if role == "parent":
        return f"seed set ({tags['seeds']})" if "seeds" in tags else "parent run"
    if role == PBO_ROLE:
        return "PBO analysis (fin-meta compare --pbo)"
    if "walk_forward.folds" in tags:
        return f"fin-meta run, walk-forward with {tags['walk_forward.folds']} refits"
    job = tags.get("job", "")
    member = f", {role} {tags.get(role, '')} of run {tags.get('mlflow.parentRunId', '?')[:8]}" if role else ""
    return (f"fin-meta {job}" if job else "MLflow run") + member


def _deflated(metrics: dict[str, float], strategies: list[str], prefix: str) -> pd.DataFrame | None:
    """`psr`, `dsr` per strategy from `<prefix>psr`, `<prefix>psr.<strategy>` (the headline
    strategy first, as `Tracker.log_stats` names them); None when none was logged."""
    rows = {}
    for i, strategy in enumerate(strategies):
        suffix = "" if i == 0 else f".{strategy}"
        rows[strategy] = {stat: metrics.get(f"{prefix}{stat}{suffix}", float("nan")) for stat in ("psr", "dsr")}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    return None if frame.isna().all().all() else frame


def _regimes(art: _Artifacts, folder: str) -> pd.DataFrame | None:
    """`<folder>/regimes.csv` (per-bar `regime`, `name` on the dates), or None."""
    found = art.csv(f"{folder}/regimes.csv", index_col=0, parse_dates=True)
    return found if found is not None and {"regime", "name"} <= set(found.columns) else None


def _source(art: _Artifacts, run: Run, folder: str, name: str, several: bool) -> SourceReport:
    """One source's tables under `folder` (`test` or `test/<name>`)."""
    src = SourceReport(name=name)
    src.returns = art.csv(f"{folder}/returns.csv", index_col=0, parse_dates=True)
    src.results = art.csv(f"{folder}/results.csv", index_col="strategy")
    src.by_regime = art.csv(f"{folder}/by_regime.csv")
    src.regimes = _regimes(art, folder)
    if src.returns is not None:
        prefix = f"test.{name}." if several else "test."
        src.deflated = _deflated(run.data.metrics, [str(c) for c in src.returns.columns], prefix)
        suffix = f".{name}" if several else ""
        src.trials = run.data.tags.get(f"{TRIALS_TAG}{suffix}")
        src.sharpe_variance = run.data.tags.get(f"dsr.sharpe_var{suffix}")
    return src


def _sources(art: _Artifacts, run: Run) -> list[SourceReport]:
    """The run's test evaluations: `test/` itself (one source) or each `test/<asset>/`."""
    if art.has("test/returns.csv"):
        return [_source(art, run, "test", run.data.tags.get("data.source", "test"), several=False)]
    folders = [path for path, is_dir in art.entries("test").items() if is_dir] if art.has("test") else []
    return [_source(art, run, folder, Path(folder).name, several=True) for folder in sorted(folders)
            if art.has(f"{folder}/returns.csv")]


def _seed_sources(art: _Artifacts, first_child: _Artifacts | None) -> list[SourceReport]:
    """A seed set's test returns per source: the agent (headline) of every seed, then the
    baselines once (the same in every seed); regime labels from the first seed's run."""
    frame = art.csv(SEED_RETURNS, parse_dates=["date"])
    if frame is None or frame.empty:
        return []
    sources = []
    for name, part in frame.groupby("source", sort=False):
        wide = {seed: rows.drop(columns=["seed", "source"]).set_index("date").dropna(axis=1, how="all")
                for seed, rows in part.groupby("seed", sort=True)}
        first = next(iter(wide.values()))
        agent = str(first.columns[0])
        columns = {f"{agent} seed {seed}": rows[agent] for seed, rows in wide.items()}
        returns = pd.concat([pd.DataFrame(columns), first.drop(columns=[agent])], axis=1)
        regimes = None
        if first_child is not None:
            regimes = _regimes(first_child, "test" if first_child.has("test/regimes.csv") else f"test/{name}")
        sources.append(SourceReport(name=str(name), returns=returns.rename_axis("date"), regimes=regimes))
    return sources


def _member(run: Run) -> str:
    """Who a child run is: its role and the tag of that name (`seed 3`, `trial 12`)."""
    role = run.data.tags.get(ROLE_TAG, "child")
    return f"{role} {run.data.tags.get(role, '')}".strip()


def _members(children: list[Run]) -> pd.DataFrame | None:
    """One row per child run: who it is, its status, its headline test metrics and trials."""
    if not children:
        return None
    rows = []
    for child in children:
        row = {"member": _member(child), "run_id": child.info.run_id, "status": child.info.status}
        row.update({name: child.data.metrics.get(name, float("nan")) for name in MEMBER_METRICS})
        row["trials"] = child.data.tags.get(TRIALS_TAG, "")
        rows.append(row)
    return pd.DataFrame(rows)


def _adaptation(art: _Artifacts, children: list[tuple[str, _Artifacts]]) -> pd.DataFrame | None:
    """The meta-test curve of the run, or of each child run (`agent` suffixed with the member)."""
    own = art.csv(ADAPTATION)
    if own is not None:
        return own
    parts = []
    for label, child in children:
        curve = child.csv(ADAPTATION)
        if curve is not None:
            parts.append(curve.assign(agent=curve["agent"].astype(str) + f" ({label})"))
    return pd.concat(parts, ignore_index=True) if parts else None


def _pbo(client: MlflowClient, run: Run, covered: set[str], scratch: Path) -> tuple[pd.DataFrame | None,
                                                                                     pd.Series | None]:
    """The `fin-meta compare --pbo` runs of the run's experiment whose runs include one of
    `covered` (or that are the run itself), newest first, and the logits of the newest."""
    pbo_runs = search_all_runs(client, [run.info.experiment_id], filter_string=f"tags.`{ROLE_TAG}` = '{PBO_ROLE}'")
    rows, logits = [], None
    for pbo_run in pbo_runs:
        art = _Artifacts(client, pbo_run.info.run_id, scratch / pbo_run.info.run_id)
        listed = art.text("pbo/runs.json")
        runs = set(json.loads(listed).get("runs", [])) if listed else set()
        if not runs & covered and pbo_run.info.run_id != run.info.run_id:  # a PBO run shows its own result
            continue
        m, p = pbo_run.data.metrics, pbo_run.data.params
        rows.append({"pbo_run": pbo_run.info.run_id, "period": p.get("pbo.on", "?"), "runs": len(runs),
                     "blocks": p.get("pbo.blocks", "?"), "bars": p.get("pbo.bars", "?"),
                     "pbo": m.get("pbo", float("nan")), "prob_oos_loss": m.get("pbo.prob_oos_loss", float("nan")),
                     "median_logit": m.get("pbo.median_logit", float("nan"))})
        if logits is None:
            table = art.csv("pbo/logits.csv")
            logits = None if table is None or "logit" not in table else table["logit"]
    return (pd.DataFrame(rows) if rows else None), logits


def collect_report(client: MlflowClient, run: Run) -> RunReport:
    """Read everything `fin-meta report` shows about `run` (module docstring)."""
    info = run.info
    experiment = client.get_experiment(info.experiment_id).name
    report = RunReport(run_id=info.run_id, run_name=info.run_name or "", experiment=experiment, status=info.status,
                       kind=_kind(run), tags=dict(run.data.tags), metrics=dict(run.data.metrics),
                       start_time=pd.Timestamp(info.start_time, unit="ms") if info.start_time else None)
    parent = run.data.tags.get(ROLE_TAG) == "parent"
    with tempfile.TemporaryDirectory(prefix="fin-meta-report-") as tmp:
        scratch = Path(tmp)
        art = _Artifacts(client, info.run_id, scratch / info.run_id)
        children = child_runs(client, info.run_id) if parent else []
        child_arts = [(_member(c), _Artifacts(client, c.info.run_id, scratch / c.info.run_id)) for c in children]
        report.sources = (_seed_sources(art, child_arts[0][1] if child_arts else None) if parent
                          else _sources(art, run))
        report.adaptation = _adaptation(art, child_arts)
        report.folds = art.csv(FOLDS_ARTIFACT)
        report.seed_summary = art.csv(SEED_SUMMARY)
        report.members = _members(children)
        report.pbo, report.pbo_logits = _pbo(client, run, {info.run_id, *(c.info.run_id for c in children)}, scratch)
    return report
