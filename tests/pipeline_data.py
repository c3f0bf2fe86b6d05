"""What the pipeline tests share: the quickstart file on a tiny budget and readers of a run."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from fin_meta.config.experiment import load_config
from fin_meta.metrics import STAT_KEYS

QUICKSTART = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"
TINY = [
    "agent.iterations=1",
    "agent.num_envs=8",
    "agent.hidden_size=16",
    "evaluation.bootstrap_samples=100",
    "evaluation.adaptation_steps=[0, 1]",
    "data.start=2006-01-03",
    "data.train_start=2006-01-03",
    "data.train_end=2010-12-31",
    "data.test_start=2011-02-03",
    "data.test_end=2012-06-29",
]
"""Overrides that make quickstart take seconds: one iteration, a small net, 18 test months."""
SMALL_PPO = "evaluation.ppo={num_envs: 8, rollout_steps: 16, hidden_sizes: [16]}"
"""A pooled PPO baseline that trains in a blink (add `evaluation.pooled_ppo=true`)."""
CHECKPOINT_TAG = "fin_meta.checkpoint.iterations"


def tiny_config(*extra: str, uri: str | None = None):
    """The quickstart config on the tiny budget; tracked in `uri`, or untracked when None."""
    tracking = [f"tracking.tracking_uri={uri}"] if uri else ["tracking.enabled=false"]
    return load_config(QUICKSTART, overrides=[*TINY, *tracking, *extra])


def only_run(client: MlflowClient, experiment: str):
    """The single run of `experiment`."""
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return run


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file of a run, recursively."""
    out: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        out |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return out


def train_steps(client: MlflowClient, run_id: str, prefix: str = "train.") -> dict[str, list[int]]:
    """Logged steps of every per-iteration `<prefix>*` metric of a run, sorted (not the in-sample
    backtest's `train.<stat>[.<column>]`, logged once after training)."""
    keys = [k for k in client.get_run(run_id).data.metrics
            if k.startswith(prefix) and k.removeprefix(prefix).split(".")[0] not in STAT_KEYS]
    return {k: sorted(m.step for m in client.get_metric_history(run_id, k)) for k in keys}
