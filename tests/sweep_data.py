"""What the sweep tests share: the quickstart experiment with a validation period on the tiniest
budget (one iteration, validated once), a two-key space file, and readers of a sweep's runs."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from mlflow import MlflowClient

from fin_meta.tracking import open_client
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


_LOG = "fin_meta_test_status_log"


def record_statuses(uri: str) -> None:
    """Make the SQLite MLflow store at `uri` (created here when missing) record every status a
    run is given, by SQLite triggers on MLflow's own `runs` table: read with `statuses`."""
    open_client(uri)  # creates the store's tables
    with closing(sqlite3.connect(uri.removeprefix("sqlite:///"))) as db, db:
        db.executescript(f"""
            CREATE TABLE IF NOT EXISTS {_LOG} (run_uuid TEXT, status TEXT);
            CREATE TRIGGER IF NOT EXISTS {_LOG}_insert AFTER INSERT ON runs
                BEGIN INSERT INTO {_LOG} VALUES (NEW.run_uuid, NEW.status); END;
            CREATE TRIGGER IF NOT EXISTS {_LOG}_update AFTER UPDATE OF status ON runs
                WHEN OLD.status IS NOT NEW.status
                BEGIN INSERT INTO {_LOG} VALUES (NEW.run_uuid, NEW.status); END;""")


def statuses(uri: str, run_id: str) -> list[str]:
    """Every status run `run_id` was given, in order (after `record_statuses`)."""
    with closing(sqlite3.connect(uri.removeprefix("sqlite:///"))) as db:
        rows = db.execute(f"SELECT status FROM {_LOG} WHERE run_uuid = ? ORDER BY rowid", (run_id,)).fetchall()
    return [status for (status,) in rows]
