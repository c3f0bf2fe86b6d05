"""Trading environments: `TradingEnv` (gymnasium, one episode) and `VectorTradingEnv` (torch,
N episodes at once on any device), with their shared settings `EnvConfig`.

Names are imported lazily so that `import fin_meta.envs` stays cheap (no gymnasium, no torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fin_meta.envs.registration import ENV_ID, register_on_gymnasium_import

__all__ = ["ENV_ID", "EnvConfig", "TradingEnv", "VectorTradingEnv", "observation_features", "observation_size"]

_LAZY = {
    "EnvConfig": "fin_meta.envs.config",
    "TradingEnv": "fin_meta.envs.gym_env",
    "VectorTradingEnv": "fin_meta.envs.vector_env",
    "observation_features": "fin_meta.envs.features",
    "observation_size": "fin_meta.envs.config",
}

register_on_gymnasium_import()


def __getattr__(name: str) -> Any:
    """PEP 562: import the module that defines `name` on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fin_meta.envs' has no attribute {name!r}")


if TYPE_CHECKING:
    from fin_meta.envs.config import EnvConfig, observation_size
    from fin_meta.envs.features import observation_features
    from fin_meta.envs.gym_env import TradingEnv
    from fin_meta.envs.vector_env import VectorTradingEnv
