"""What the sweep tests share: the quickstart experiment with a validation period on the tiniest
budget (one iteration, validated once), a two-key space file, and readers of a sweep's runs."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from fin_meta.tracking.nesting import PARENT_TAG, ROLE_TAG
from tests.pipeline_data import QUICKSTART, TINY

SWEEP_SETS = [
    *TINY,
    "agent.eval_every=1",
    "data.train_end=2009-12-31",
    "data.val_start=2010-02-03",
    "evaluation.min_test_bars=200",
    "evaluation.baselines=[buy_and_hold]",
    "evaluation.adaptation_steps=[0]",
]
"""`--set`s that make a trial take seconds: one iteration, validated once on 2010-02 .. 2011-01."""
SPACE = "agent.lr: {loguniform: [1.0e-4, 1.0e-2]}\nenv.adjust: {uniform: [0.2, 1.0]}\n"
EXPERIMENT = str(QUICKSTART)


def write_space(folder: Path, text: str = SPACE, name: str = "space.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def family(client: MlflowClient, experiment: str = "quickstart"):
    """(the sweep's parent runs, its child runs by trial number) in `experiment`."""
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(ROLE_TAG) == "parent"]
    children = {int(r.data.tags["trial"]): r for r in runs if r.data.tags.get(ROLE_TAG) == "trial"}
    assert all(c.data.tags[PARENT_TAG] in {p.info.run_id for p in parents} for c in children.values())
    return parents, children
