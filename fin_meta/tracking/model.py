"""The trained agent as an MLflow model: log it to a run; `load_agent` reads it back from a
`runs:/<id>/agent` or `models:/...` URI (or a local directory): it is `fin_meta.load_agent`."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fin_meta.agents import Agent
from fin_meta.agents import load_agent as load_local
from fin_meta.constants import PRICE_COLUMNS, __version__
from fin_meta.errors import AgentError
from fin_meta.tracking.run import Tracker
from fin_meta.tracking.store import resolve_tracking_uri

__all__ = ["AGENT_ARTIFACT", "MODEL_NAME", "URI_PREFIXES", "load_agent", "log_agent_model", "resolve_agent_uri"]

MODEL_NAME = "agent"
"""Name of the agent model in a run: load it with `load_agent("runs:/<run_id>/agent")`."""

URI_PREFIXES: tuple[str, ...] = ("runs:/", "models:/")
"""MLflow URI schemes `load_agent` downloads from."""

AGENT_ARTIFACT = "agent_dir"
"""The saved agent directory's name inside the model's artifacts (read by `pyfunc.py`)."""


def load_agent(path: str | Path, *, tracking_uri: str | None = None) -> Agent:
    """Load a saved agent from a local directory or an MLflow URI (`runs:/<run_id>/agent`,
    `models:/<name>/<version>`, read from the store `tracking_uri`, default
    `$MLFLOW_TRACKING_URI`, else `sqlite:///mlflow.db`). Raises `AgentError` naming the problem
    when it is missing, corrupt or incompatible with this fin-meta version."""
    text = str(path)
    if text.startswith(URI_PREFIXES):
        return load_local(resolve_agent_uri(text, tracking_uri=tracking_uri))
    if tracking_uri is not None:
        raise AgentError(f"tracking_uri={tracking_uri!r} only applies to MLflow URIs (runs:/..., models:/...), "
                         f"not to the local path {text!r}")
    return load_local(path)


@contextlib.contextmanager
def _tracking_uri(uri: str, experiment_id: str | None = None) -> Iterator[None]:
    """Point MLflow's fluent API at store `uri` (and experiment `experiment_id`, which is where
    MLflow 3 files a logged model) for the duration of the block."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    previous_exp = os.environ.get("MLFLOW_EXPERIMENT_ID")
    mlflow.set_tracking_uri(uri)
    if experiment_id is not None:
        os.environ["MLFLOW_EXPERIMENT_ID"] = experiment_id
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        if experiment_id is not None:
            if previous_exp is None:
                os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
            else:
                os.environ["MLFLOW_EXPERIMENT_ID"] = previous_exp


def log_agent_model(tracker: Tracker, agent: Agent) -> str | None:
    """Log `agent` to the tracker's run as a pyfunc model named `agent` whose
    `predict(prices_df)` returns positions; returns the model URI (None when tracking is off)."""
    if not tracker.enabled:
        return None
    import mlflow
    import mlflow.pyfunc

    experiment_id = tracker.client.get_run(tracker.run_id).info.experiment_id
    with tempfile.TemporaryDirectory() as tmp, _tracking_uri(tracker.tracking_uri, experiment_id):
        # MLflow stores a pyfunc artifact under its folder's name: keep it AGENT_ARTIFACT
        agent_dir = agent.save(Path(tmp) / AGENT_ARTIFACT)
        info = mlflow.models.Model.log(
            artifact_path=None,
            name=MODEL_NAME,
            flavor=mlflow.pyfunc,
            run_id=tracker.run_id,
            python_model=str(Path(__file__).with_name("pyfunc.py")),
            artifacts={AGENT_ARTIFACT: str(agent_dir)},
            pip_requirements=[f"fin-meta=={__version__}"],
            signature=_signature(),
            tags={"fin_meta.algo": agent.algo},
        )
    return info.model_uri


def _signature():
    """pyfunc signature: a prices frame (PRICE_COLUMNS, float64) in, positions (float64) out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in PRICE_COLUMNS]),
        outputs=Schema([ColSpec("double", "position")]),
    )


def resolve_agent_uri(uri: str, tracking_uri: str | None = None) -> Path:
    """Download the agent model at `uri` (`runs:/<id>/agent`, `models:/<id-or-name>/...`) and
    return the local directory of the saved agent inside it."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    store = resolve_tracking_uri(tracking_uri)
    try:
        with _tracking_uri(store):
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    except (MlflowException, OSError) as exc:
        raise AgentError(
            f"cannot download agent {uri!r} from the MLflow store {store}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''} (check the run id and --tracking-uri / MLFLOW_TRACKING_URI)"
        ) from exc
    agent_dir = local / "artifacts" / AGENT_ARTIFACT
    if not agent_dir.is_dir():
        raise AgentError(
            f"{uri!r} is not a fin-meta agent model (no artifacts/{AGENT_ARTIFACT} in {local})"
        )
    return agent_dir
