"""Registers `TradingEnv` with gymnasium as "fin_meta/Trading-v0" without importing gymnasium.

`register_on_gymnasium_import()` registers at once when gymnasium is already imported, and
otherwise arranges for the registration to run right after gymnasium is first imported, so that
`import fin_meta` stays fast and `gymnasium.make("fin_meta/Trading-v0", prices=...)` works in
either import order. `gymnasium.make("fin_meta.envs:fin_meta/Trading-v0", ...)` works regardless.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

__all__ = ["ENV_ID", "register_env", "register_on_gymnasium_import"]

ENV_ID = "fin_meta/Trading-v0"
ENTRY_POINT = "fin_meta.envs.gym_env:TradingEnv"


def register_env() -> None:
    """Register ENV_ID in gymnasium's registry (imports gymnasium; does nothing if present)."""
    from gymnasium.envs.registration import register, registry

    if ENV_ID not in registry:
        register(id=ENV_ID, entry_point=ENTRY_POINT)


class _RegisteringLoader:
    """Wraps gymnasium's loader: runs the module, then registers the environment."""

    def __init__(self, loader: Any):
        self._loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        register_env()

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, ...
        return getattr(self._loader, name)


class _GymnasiumImportHook:
    """A meta path finder that only answers for the top-level `gymnasium` package, once."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if fullname != "gymnasium":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)  # type: ignore[assignment]
        return spec


def register_on_gymnasium_import() -> None:
    """Register now if gymnasium is loaded, else right after its first import (idempotent)."""
    if "gymnasium" in sys.modules:
        register_env()
    elif not any(isinstance(f, _GymnasiumImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _GymnasiumImportHook())
