"""Parent and child runs: one MLflow parent run (a seed set, a sweep) with a child run per
member (a seed, a trial). MLflow's UI nests a run under the run named by its
`mlflow.parentRunId` tag; `child_tags` writes that tag (pass it to `start_run(tags=...)`) and
`child_runs` reads the children back."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

__all__ = ["PARENT_TAG", "ROLE_TAG", "SEED_CHILDREN", "SEED_RETURNS", "SEED_SUMMARY", "child_tags", "child_runs"]

PARENT_TAG = "mlflow.parentRunId"
"""MLflow's own tag: the UI shows a run with it nested under that parent."""
ROLE_TAG = "fin_meta.role"
"""What a run is in a family: `parent` (a seed set or a sweep), `seed` or `trial`."""

# the artifacts of a seed-set parent (written by fin_meta.pipeline.seeds, read by fin_meta.reporting)
SEED_SUMMARY = "seeds/summary.csv"
"""The table over seeds (mean, sd, paired differences per strategy); also as `seeds/summary.md`."""
SEED_CHILDREN = "seeds/children.csv"
"""Each seed's child run."""
SEED_RETURNS = "seeds/test_returns.csv"
"""Every seed's per-bar test returns (columns seed, source, date, strategies...)."""


def child_tags(parent_run_id: str, role: str, **extra: str) -> dict[str, str]:
    """Tags that make a run a child of `parent_run_id` with `role` (`seed`, `trial`), plus
    `extra` tags (e.g. `seed="3"`)."""
    if not parent_run_id:
        raise ValueError("child_tags needs the parent's run id")
    return {PARENT_TAG: parent_run_id, ROLE_TAG: role, **extra}


def child_runs(client: MlflowClient, parent_run_id: str) -> list[Run]:
    """The active child runs of `parent_run_id` (any status), oldest first."""
    from fin_meta.tracking.query import search_all_runs

    parent = client.get_run(parent_run_id)
    runs = search_all_runs(client, [parent.info.experiment_id],
                           filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'")
    return sorted(runs, key=lambda r: r.info.start_time or 0)
