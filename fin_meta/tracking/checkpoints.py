"""Training checkpoints in the MLflow run, so `fin-meta run --resume RUN_ID` can continue.

A checkpoint is the saved agent directory (weights, config, version and training state: its
random streams and optimiser) logged under the artifact folder `<name>/`, with the number of
finished iterations in the run tag `fin_meta.<name>.iterations`. Each save replaces the previous
one; the agent directory is written atomically before upload, so an interrupted save never
leaves a half-written checkpoint.

`find_resumable` looks a run up before anything changes it: a refusal (unknown run, FINISHED,
no logged config, params that would change) leaves the run exactly as it was.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fin_meta.agents import Agent, load_agent
from fin_meta.errors import FinMetaError
from fin_meta.tracking.query import search_all_runs
from fin_meta.tracking.run import Tracker
from fin_meta.tracking.store import (
    TrackingError,
    active_experiments,
    open_client,
    resolve_tracking_uri,
)

__all__ = ["CONFIG_ARTIFACT", "Checkpointer", "ResumePoint", "check_resume_params", "find_resumable", "resume_command"]

CONFIG_ARTIFACT = "config.yaml"
"""The run's own resolved experiment config, logged at its start; `--resume` runs it again."""


class Checkpointer:
    """Save and restore one agent's checkpoints in the tracker's run (no-op when not tracking)."""

    def __init__(self, tracker: Tracker, name: str = "checkpoint") -> None:
        self.tracker = tracker
        self.name = name

    @property
    def tag(self) -> str:
        return f"fin_meta.{self.name}.iterations"

    def save(self, agent: Agent, iterations: int) -> None:
        """Log `agent` as the run's latest checkpoint after `iterations` finished iterations."""
        if not self.tracker.enabled:
            return
        with tempfile.TemporaryDirectory() as tmp:
            folder = agent.save(Path(tmp) / self.name)
            self.tracker.log_artifact(folder, None)
        self.tracker.set_tags({self.tag: iterations})

    def restore(self) -> tuple[Agent | None, int]:
        """The agent of the tracker's run's latest checkpoint and its finished iterations;
        `(None, 0)` when that run has no checkpoint of this name yet, or when not tracking.
        The downloaded copy is removed once the agent is loaded."""
        if not self.tracker.enabled:
            return None, 0
        run_id = self.tracker.run_id
        client = self.tracker.client
        done = client.get_run(run_id).data.tags.get(self.tag)
        if done is None:
            return None, 0
        with tempfile.TemporaryDirectory(prefix="fin-meta-resume-") as tmp:
            try:
                local = client.download_artifacts(run_id, self.name, tmp)
            except Exception as exc:  # the tag says a checkpoint exists: its absence is corruption
                raise FinMetaError(
                    f"run {run_id} records a checkpoint after {done} iterations but its artifact "
                    f"'{self.name}/' cannot be downloaded ({exc.__class__.__name__}); start a new run instead"
                ) from exc
            return load_agent(local), int(done)


@dataclass
class ResumePoint:
    """A run that `--resume` may continue: its full id, experiment name, store URI, status,
    its logged config (`config.yaml`, as plain data) and its params (as MLflow stores them)."""

    run_id: str
    experiment: str
    tracking_uri: str
    status: str
    config: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)


def find_resumable(run_ref: str, tracking_uri: str | None = None) -> ResumePoint:
    """The run `run_ref` (a full id or a unique prefix, in any experiment) of the store
    `resolve_tracking_uri(tracking_uri)`, checked and read without changing it. `TrackingError`
    (one line) when the id is empty, the store or run does not exist, the run is FINISHED
    (nothing to resume) or has no `config.yaml`."""
    ref = (run_ref or "").strip()
    if not ref:
        raise TrackingError("--resume needs a run id (fin-meta compare lists them)")
    uri = resolve_tracking_uri(tracking_uri)
    client = open_client(uri, must_exist=True)
    names = {exp.experiment_id: exp.name for exp in active_experiments(client)}
    matches = [r for r in search_all_runs(client, list(names)) if r.info.run_id.startswith(ref)] if names else []
    if len(matches) != 1:
        found = ", ".join(r.info.run_id for r in matches[:5])
        problem = f"matches several runs ({found})" if matches else "matches no run"
        raise TrackingError(f"resume: {ref!r} {problem} in {uri}; pass a full run id (fin-meta compare lists them)")
    run = matches[0]
    run_id, status = run.info.run_id, run.info.status
    if status == "FINISHED":
        raise TrackingError(
            f"resume: run {run_id} is FINISHED, there is nothing to continue; start a new run "
            "(fin-meta run EXPERIMENT.yaml) to train again"
        )
    with tempfile.TemporaryDirectory(prefix="fin-meta-resume-") as tmp:
        try:
            local = client.download_artifacts(run_id, CONFIG_ARTIFACT, tmp)
            config = yaml.safe_load(Path(local).read_text())
        except Exception as exc:  # an old or broken run: say what is missing
            raise TrackingError(
                f"resume: run {run_id} has no readable {CONFIG_ARTIFACT} artifact ({type(exc).__name__}); "
                "it cannot be resumed, start a new run"
            ) from exc
    if not isinstance(config, dict):
        raise TrackingError(f"resume: the {CONFIG_ARTIFACT} of run {run_id} is not a mapping; start a new run")
    return ResumePoint(run_id, names[run.info.experiment_id], uri, status, config, dict(run.data.params))


def check_resume_params(point: ResumePoint, params: dict[str, str]) -> None:
    """`TrackingError` naming the first changed params when logging `params` (flattened, as
    `flatten_params` gives them) to the run of `point` would change a logged value (MLflow
    params are immutable); nothing is written."""
    changed = [k for k, v in params.items() if k in point.params and point.params[k] != str(v)]
    if changed:
        shown = ", ".join(f"{k}: {point.params[k]!r} logged, {params[k]!r} now" for k in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise TrackingError(
            f"resume: run {point.run_id} would change its params ({shown}{more}); MLflow params cannot "
            "change: resume without a config file or --set (fin-meta run --resume ID), or start a new run"
        )


def resume_command(run_id: str, tracking_uri: str | None) -> str:
    """The command that continues run `run_id`: `fin-meta run --resume ID`, plus
    `--tracking-uri URI` when the store is not the default one."""
    uri = resolve_tracking_uri(tracking_uri)
    flag = "" if uri == resolve_tracking_uri(None) else f" --tracking-uri {uri}"
    return f"fin-meta run --resume {run_id}{flag}"
