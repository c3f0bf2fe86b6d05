"""The trained agent as an MLflow model (a pyfunc), logged by the pipeline and loaded by
`fin_meta.load_agent("runs:/<run_id>/agent")`.

MLflow loads this file as "model code" (no pickling): `predict(prices_df)` returns the agent's
positions (fraction of equity per bar, DESIGN.md timing) for a prices frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from fin_meta.agents import load_agent
from fin_meta.data import validate_prices
from fin_meta.tracking.model import AGENT_ARTIFACT


class AgentModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around a saved fin-meta agent directory."""

    agent: Any = None

    def load_context(self, context: Any) -> None:
        self.agent = load_agent(Path(context.artifacts[AGENT_ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.Series:
        prices = validate_prices(model_input, source="mlflow model input")
        return self.agent.positions(prices)


mlflow.models.set_model(AgentModel())
