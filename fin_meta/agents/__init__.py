"""Agents: THE registry (`ALGOS`: algorithm -> agent class + hyperparameter model), `make_agent`
and the local-directory `load_agent`.

The registry names classes as `"module:Class"` so that this module and the torch-free
hyperparameter models import without torch; `agent_class` / `hparams_model` import on use.
Loading from MLflow URIs (`runs:/<id>/agent`) lives one layer up, in `fin_meta.tracking.model`
(`fin_meta.load_agent` is that one).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fin_meta.agents.base import Agent, Callback
from fin_meta.agents.serialization import MANIFEST_FILE, read_manifest
from fin_meta.errors import AgentError, ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from fin_meta.envs import EnvConfig

__all__ = [
    "ALGOS",
    "AlgoSpec",
    "Agent",
    "Callback",
    "agent_class",
    "hparams_model",
    "make_agent",
    "load_agent",
]


@dataclass(frozen=True)
class AlgoSpec:
    """Where an algorithm lives: its `Agent` class and its (torch-free) pydantic hyperparameter
    model, each as `"module:Class"` (imported on use)."""

    agent: str
    hparams: str
    summary: str


ALGOS: dict[str, AlgoSpec] = {
    "rl2": AlgoSpec("fin_meta.agents.rl2.agent:RL2Agent", "fin_meta.agents.rl2.config:RL2Config",
                    "recurrent, adapts in context"),
    "maml": AlgoSpec("fin_meta.agents.maml.agent:MAMLAgent", "fin_meta.agents.maml.config:MAMLConfig",
                     "adapts by gradient steps"),
    "ppo": AlgoSpec("fin_meta.agents.ppo.agent:PPOAgent", "fin_meta.agents.ppo.config:PPOConfig",
                    "pooled, non-meta baseline"),
    "rppo": AlgoSpec("fin_meta.agents.rl2.recurrent_ppo:RecurrentPPOAgent",
                     "fin_meta.agents.rl2.config:RecurrentPPOConfig", "recurrent, no meta-learning (control)"),
}
"""The one algorithm registry: name -> `AlgoSpec`. Add an algorithm here (see CONTRIBUTING.md)."""


def _spec(algo: str) -> AlgoSpec:
    spec = ALGOS.get(algo)
    if spec is None:
        raise ConfigError(f"unknown agent algo {algo!r}; choose one of {', '.join(ALGOS)}")
    return spec


def _import(target: str) -> Any:
    module_name, _, name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise AgentError(f"{target} is not available in this fin-meta build ({module_name} missing)") from exc
    return getattr(module, name)


def agent_class(algo: str) -> type[Agent]:
    """The `Agent` class registered as `algo` (imports its module, and torch)."""
    return _import(_spec(algo).agent)


def hparams_model(algo: str) -> type[BaseModel]:
    """The hyperparameter model of `algo` (`PPOConfig`, `RL2Config`, `MAMLConfig`,
    `RecurrentPPOConfig`; torch-free)."""
    return _import(_spec(algo).hparams)


def make_agent(
    algo: str,
    env_config: EnvConfig | Mapping[str, Any] | None = None,
    hparams: BaseModel | Mapping[str, Any] | None = None,
) -> Agent:
    """A fresh, untrained agent of `algo` with environment settings `env_config` (an `EnvConfig`
    or its fields) and hyperparameters `hparams` (the algorithm's pydantic config or its fields)."""
    cls = agent_class(algo)
    return cls(env_config=env_config, hparams=hparams)  # type: ignore[call-arg]


def load_agent(path: str | Path) -> Agent:
    """Load a saved agent from a local directory (`agent.save(path)`). Raises `AgentError` naming
    the problem when it is missing, corrupt or incompatible with this fin-meta version. For
    MLflow URIs (`runs:/<id>/agent`) use `fin_meta.load_agent`."""
    if "://" in str(path) or str(path).startswith(("runs:/", "models:/")):
        raise AgentError(f"{path!r} is a URI, not a local directory; load it with fin_meta.load_agent")
    manifest = read_manifest(path)
    if manifest["algo"] not in ALGOS:
        raise AgentError(f"{Path(path) / MANIFEST_FILE}: unknown algo {manifest['algo']!r}; known: {sorted(ALGOS)}")
    return agent_class(manifest["algo"]).load(path)
