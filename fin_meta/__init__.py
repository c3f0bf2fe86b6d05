"""fin-meta: a meta-reinforcement-learning trading backtester.

Market regimes are tasks; a meta-RL agent is meta-trained across the regimes of a training
period and adapts to each new regime; a vectorbt backtest with fees and slippage evaluates it
against rule strategies; MLflow tracks every run. See DESIGN.md for the conventions.

Heavy libraries (torch, vectorbt, mlflow) are imported lazily: `import fin_meta` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import fin_meta.envs  # noqa: F401  registers "fin_meta/Trading-v0" once gymnasium is imported (~1 ms)
from fin_meta.constants import __version__
from fin_meta.errors import AgentError, ConfigError, DataError, FinMetaError, StrategyError

# public name -> the package face (or module) that exports it, imported on first access
_LAZY: dict[str, str] = {
    "load_prices": "fin_meta.data",
    "synthetic_regimes": "fin_meta.data",
    "detect_regimes": "fin_meta.regimes",
    "segments": "fin_meta.regimes",
    "backtest": "fin_meta.backtest",
    "BacktestResult": "fin_meta.backtest",
    "TradingEnv": "fin_meta.envs",
    "VectorTradingEnv": "fin_meta.envs",
    "load_agent": "fin_meta.tracking.model",
    "run_experiment": "fin_meta.pipeline",
    "load_config": "fin_meta.config",
    "seed_everything": "fin_meta.seeding",
}

__all__ = [
    "__version__",
    "FinMetaError",
    "DataError",
    "ConfigError",
    "AgentError",
    "StrategyError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fin_meta' has no attribute {name!r}")
    imported = importlib.import_module(module)
    # `backtest` is also a subpackage: importing any part of it binds the package to this
    # attribute, so the attribute IS the package (callable: it calls the function) in every order
    value = imported if imported.__name__ == f"{__name__}.{name}" else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs only (names re-exported lazily above)
    from fin_meta.backtest import BacktestResult, backtest  # noqa: F401
    from fin_meta.config import load_config  # noqa: F401
    from fin_meta.data import load_prices, synthetic_regimes  # noqa: F401
    from fin_meta.envs import TradingEnv, VectorTradingEnv  # noqa: F401
    from fin_meta.pipeline import run_experiment  # noqa: F401
    from fin_meta.regimes import detect_regimes, segments  # noqa: F401
    from fin_meta.seeding import seed_everything  # noqa: F401
    from fin_meta.tracking.model import load_agent  # noqa: F401
