"""The trained agent as an MLflow model: log it to a run; `load_agent` reads it back from a
`runs:/<id>/agent` or `models:/...` URI (or a local directory): it is `fin_meta.load_agent`."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from fin_meta.agents import Agent
from fin_meta.agents import load_agent as load_local
from fin_meta.constants import PRICE_COLUMNS, __version__
from fin_meta.errors import AgentError
from fin_meta.tracking.run import Tracker
from fin_meta.tracking.store import TrackingError, open_client, quiet_logger, resolve_tracking_uri

__all__ = [
    "AGENT_ARTIFACT",
    "MODEL_NAME",
    "URI_PREFIXES",
    "download_agent",
    "input_example",
    "load_agent",
    "log_agent_model",
]

MODEL_NAME = "agent"
"""Name of the agent model in a run: load it with `load_agent("runs:/<run_id>/agent")`."""

URI_PREFIXES: tuple[str, ...] = ("runs:/", "models:/")
"""MLflow URI schemes `load_agent` downloads from."""

AGENT_ARTIFACT = "agent_dir"
"""The saved agent directory's name inside the model's artifacts (read by `pyfunc.py`)."""

_EXAMPLE_BARS_PAST_WINDOW = 300
"""Bars of the model's input example beyond the agent's observation window: enough for every
agent to decide (RL²'s trial deployment replays 4 x 63 bars of context)."""
_PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def load_agent(path: str | Path, *, tracking_uri: str | None = None) -> Agent:
    """Load a saved agent from a local directory or an MLflow URI (`runs:/<run_id>/agent`,
    `models:/<name>/<version>`, read from the store `tracking_uri`, default
    `$MLFLOW_TRACKING_URI`, else `sqlite:///mlflow.db`). Raises `AgentError` naming the problem
    when it is missing, corrupt or incompatible with this fin-meta version."""
    text = str(path)
    if text.startswith(URI_PREFIXES):
        # the agent is read into memory (weights, optimiser state): its download can go at once
        with tempfile.TemporaryDirectory(prefix="fin-meta-agent-") as tmp:
            return load_local(download_agent(text, tmp, tracking_uri=tracking_uri))
    if tracking_uri is not None:
        raise AgentError(f"tracking_uri={tracking_uri!r} only applies to MLflow URIs (runs:/..., models:/...), "
                         f"not to the local path {text!r}")
    return load_local(path)


@contextlib.contextmanager
def _mlflow_session(uri: str, experiment_id: str | None = None) -> Iterator[None]:
    """For the block: MLflow's fluent API on store `uri` (and experiment `experiment_id`, which
    is where MLflow 3 files a logged model), and no artifact progress bars (fin-meta shows its
    own progress) unless the user set `MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`."""
    import mlflow

    env = {"MLFLOW_EXPERIMENT_ID": experiment_id} if experiment_id is not None else {}
    if _PROGRESS_BAR_ENV not in os.environ:
        env[_PROGRESS_BAR_ENV] = "false"
    previous_env = {name: os.environ.get(name) for name in env}
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    os.environ.update(env)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)
        for name, value in previous_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def log_agent_model(tracker: Tracker, agent: Agent, prices: pd.DataFrame | None = None) -> str | None:
    """Log `agent` to the tracker's run as a pyfunc model named `agent` whose
    `predict(prices_df)` returns positions; returns the model URI (None when tracking is off).
    The model holds the agent without its training state (nothing to resume from a deployed
    model) and an input example (`input_example`: the last bars of `prices` when given), which
    MLflow checks by serving it once."""
    if not tracker.enabled:
        return None
    import mlflow
    import mlflow.pyfunc

    experiment_id = tracker.client.get_run(tracker.run_id).info.experiment_id
    with (
        tempfile.TemporaryDirectory(prefix="fin-meta-model-") as tmp,
        _mlflow_session(tracker.tracking_uri, experiment_id),
        quiet_logger("mlflow.pyfunc"),  # "Validating input example against model signature"
    ):
        # MLflow stores a pyfunc artifact under its folder's name: keep it AGENT_ARTIFACT
        agent_dir = agent.save(Path(tmp) / AGENT_ARTIFACT, training_state=False)
        info = mlflow.models.Model.log(
            artifact_path=None,
            name=MODEL_NAME,
            flavor=mlflow.pyfunc,
            run_id=tracker.run_id,
            python_model=str(Path(__file__).with_name("pyfunc.py")),
            artifacts={AGENT_ARTIFACT: str(agent_dir)},
            pip_requirements=[f"fin-meta=={__version__}"],
            signature=_signature(),
            # as column arrays: MLflow's DataFrame path compares an Index with a range, which
            # pandas 3 deprecates; MLflow serves both forms the same way
            input_example={k: v.to_numpy() for k, v in input_example(agent.env_config.window, prices).items()},
            tags={"fin_meta.algo": agent.algo},
        )
    return info.model_uri


def input_example(window: int, prices: pd.DataFrame | None = None) -> pd.DataFrame:
    """A model input as MLflow stores it beside the model (JSON keeps no index): `window + 300`
    bars of prices with their dates in a `date` column; the last bars of `prices` when it has
    that many, else a steady rise of 0.1% a bar on business days."""
    bars = window + _EXAMPLE_BARS_PAST_WINDOW
    if prices is None or len(prices) < bars:
        close = 100.0 * 1.001 ** np.arange(bars)
        prices = pd.DataFrame(
            {"open": close, "high": close * 1.002, "low": close * 0.998, "close": close, "volume": 1e6},
            index=pd.bdate_range("2024-01-02", periods=bars),
        )
    return prices[list(PRICE_COLUMNS)].tail(bars).rename_axis("date").reset_index()


def _signature():
    """pyfunc signature: a prices frame (an optional `date` column, PRICE_COLUMNS as float64;
    dates may come as the index instead) in, positions (float64) out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema(
            [ColSpec("datetime", "date", required=False)]
            + [ColSpec("double", name) for name in PRICE_COLUMNS]
        ),
        outputs=Schema([ColSpec("double", "position")]),
    )


def download_agent(uri: str, dst_dir: str | Path, tracking_uri: str | None = None) -> Path:
    """Download the agent model at `uri` (`runs:/<id>/agent`, `models:/<id-or-name>/...`) into
    `dst_dir` and return the saved agent's directory inside it."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    store = resolve_tracking_uri(tracking_uri)
    try:
        open_client(store, must_exist=True)  # creates no empty store; opens it quietly
        with _mlflow_session(store):
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst_dir)))
    except (MlflowException, OSError, TrackingError) as exc:
        raise AgentError(
            f"cannot download agent {uri!r} from the MLflow store {store}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''} (check the run id and --tracking-uri / MLFLOW_TRACKING_URI)"
        ) from exc
    agent_dir = local / "artifacts" / AGENT_ARTIFACT
    if not agent_dir.is_dir():
        raise AgentError(f"{uri!r} is not a fin-meta agent model (no artifacts/{AGENT_ARTIFACT} in it)")
    return agent_dir
