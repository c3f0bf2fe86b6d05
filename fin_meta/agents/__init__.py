"""Agents: the registry (`AGENTS`), `make_agent` and `load_agent`.

Agent classes are imported lazily (they import torch): `AGENTS` maps an algorithm name to
`"module:Class"`. `load_agent(path)` reads the saved `agent.json`, checks it and rebuilds the
agent of the right class. MLflow URIs (`runs:/<id>/agent`, `models:/<name>/<version>`) go through
the resolver registered for their scheme (`register_uri_resolver`), which downloads the saved
directory and returns its local path; the tracking module registers one for `runs:/` and
`models:/`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fin_meta.agents.base import ALGOS, Agent, Callback
from fin_meta.errors import AgentError, ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from fin_meta.envs import EnvConfig

__all__ = [
    "AGENTS",
    "ALGOS",
    "Agent",
    "Callback",
    "agent_class",
    "make_agent",
    "load_agent",
    "register_uri_resolver",
]

AGENTS: dict[str, str] = {
    "ppo": "fin_meta.agents.ppo.agent:PPOAgent",
    "rl2": "fin_meta.agents.rl2.agent:RL2Agent",
    "maml": "fin_meta.agents.maml.agent:MAMLAgent",
}
"""Algorithm name -> `"module:Class"` of its `Agent` implementation (imported on use)."""

_URI_RESOLVERS: dict[str, Callable[..., Path]] = {}
# modules that register resolvers for these schemes when imported (the MLflow tracking module)
_RESOLVER_MODULES: dict[str, str] = {"runs:/": "fin_meta.tracking", "models:/": "fin_meta.tracking"}


def register_uri_resolver(prefix: str, resolver: Callable[..., Path]) -> None:
    """Make `load_agent(uri)` accept URIs starting with `prefix` (e.g. `"runs:/"`): `resolver(uri)`
    must return the local directory of the saved agent (downloading it if needed);
    `load_agent(uri, tracking_uri=...)` calls `resolver(uri, tracking_uri=...)`."""
    _URI_RESOLVERS[prefix] = resolver


def agent_class(algo: str) -> type[Agent]:
    """The `Agent` class registered as `algo` (imports its module)."""
    target = AGENTS.get(algo)
    if target is None:
        raise ConfigError(f"unknown agent algo {algo!r}; choose one of {sorted(AGENTS)}")
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise AgentError(f"agent {algo!r} is not available in this fin-meta build ({module_name} missing)") from exc
    return getattr(module, cls_name)


def make_agent(
    algo: str,
    env_config: EnvConfig | Mapping[str, Any] | None = None,
    hparams: BaseModel | Mapping[str, Any] | None = None,
) -> Agent:
    """A fresh, untrained agent of `algo` with environment settings `env_config` (an `EnvConfig`
    or its fields) and hyperparameters `hparams` (the algorithm's pydantic config or its fields)."""
    cls = agent_class(algo)
    return cls(env_config=env_config, hparams=hparams)  # type: ignore[call-arg]


def _local_dir(path: str | Path, tracking_uri: str | None = None) -> Path:
    text = str(path)
    options = {} if tracking_uri is None else {"tracking_uri": tracking_uri}
    for prefix, resolver in list(_URI_RESOLVERS.items()):
        if text.startswith(prefix):
            return Path(resolver(text, **options))
    for prefix, module in _RESOLVER_MODULES.items():
        if text.startswith(prefix):
            try:
                importlib.import_module(module)  # registers its resolvers on import
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
            resolver = _URI_RESOLVERS.get(prefix)
            if resolver is None:
                raise AgentError(
                    f"cannot load {text!r}: no resolver for {prefix!r} URIs is registered "
                    f"({module} does not provide one yet); download the agent directory and pass its path"
                )
            return Path(resolver(text, **options))
    if tracking_uri is not None:
        raise AgentError(f"tracking_uri={tracking_uri!r} only applies to MLflow URIs (runs:/..., models:/...), "
                         f"not to the local path {text!r}")
    return Path(path)


def load_agent(path: str | Path, *, tracking_uri: str | None = None) -> Agent:
    """Load a saved agent from a local directory (or a registered URI such as
    `runs:/<run_id>/agent`, read from the MLflow store `tracking_uri`, default
    `$MLFLOW_TRACKING_URI`, else `sqlite:///mlflow.db`). Raises `AgentError` naming the problem
    when the directory is missing, corrupt or incompatible with this fin-meta version."""
    from fin_meta.agents.serialization import read_manifest

    local = _local_dir(path, tracking_uri)
    manifest = read_manifest(local)
    cls = agent_class(manifest["algo"])
    return cls.load(local)
