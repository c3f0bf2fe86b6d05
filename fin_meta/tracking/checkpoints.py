"""Training checkpoints in the MLflow run, so `fin-meta run --resume RUN_ID` can continue.

A checkpoint is the saved agent directory (weights + config + version) logged under the
artifact folder `<name>/`, with the number of finished iterations in the run tag
`fin_meta.<name>.iterations`. Each save replaces the previous one; the agent directory is written
atomically before upload, so an interrupted save never leaves a half-written checkpoint.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fin_meta.agents import Agent, load_agent
from fin_meta.errors import FinMetaError
from fin_meta.tracking.run import Tracker

__all__ = ["Checkpointer"]


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
        `(None, 0)` when that run has no checkpoint of this name yet, or when not tracking."""
        if not self.tracker.enabled:
            return None, 0
        run_id = self.tracker.run_id
        client = self.tracker.client
        run = client.get_run(run_id)
        done = run.data.tags.get(self.tag)
        if done is None:
            return None, 0
        try:
            local = client.download_artifacts(run_id, self.name, tempfile.mkdtemp(prefix="fin-meta-resume-"))
        except Exception as exc:  # the tag says a checkpoint exists: its absence is corruption
            raise FinMetaError(
                f"run {run_id} records a checkpoint after {done} iterations but its artifact "
                f"'{self.name}/' cannot be downloaded ({exc.__class__.__name__}); start a new run instead"
            ) from exc
        return load_agent(local), int(done)
