"""Rule-based strategies, one module each, found by name.

A strategy module has a docstring, `DEFAULTS: dict[str, Any]` (its documented default
parameters) and `positions(prices, **params) -> pd.Series` (float64 on the prices index, in
[-1, 1], 0 during warm-up, decided with data up to and including bar t's close). Built in:
buy_and_hold, sma_cross, momentum, mean_reversion, vol_target. A user's own strategies: any
`*.py` file in a folder (`strategies_dir`) that defines `positions`; its file name is the
strategy name.

    from strategies import strategy_positions
    pos = strategy_positions("sma_cross", prices, {"fast": 10, "slow": 40})
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import inspect
import pkgutil
import sys
import traceback
from collections.abc import Mapping
from importlib import util as importlib_util
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from fin_meta.errors import StrategyError
from fin_meta.lookahead import audit_look_ahead

__all__ = [
    "audit_strategy",
    "available_strategies",
    "get_strategy",
    "strategy_defaults",
    "strategy_positions",
]


def _builtin_strategies() -> dict[str, ModuleType]:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return {name: importlib.import_module(f"{__name__}.{name}") for name in names}


_USER_PREFIX = "_fin_meta_user_strategy_"


def _load_user_module(path: Path) -> ModuleType:
    """Import one user file under a private module name unique to its absolute path."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    key = f"{_USER_PREFIX}{digest}_{path.stem}"
    spec = importlib_util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise StrategyError(f"cannot import strategy file {path}")
    module = importlib_util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: report which file broke and why
        sys.modules.pop(key, None)
        raise StrategyError(f"strategy file {path} failed to import: {type(exc).__name__}: {exc}") from exc
    return module


def _user_strategies(strategies_dir: str | Path) -> dict[str, ModuleType]:
    folder = Path(strategies_dir).expanduser()
    if not folder.is_dir():
        raise StrategyError(f"strategies folder {folder} does not exist (give a folder of *.py files)")
    found: dict[str, ModuleType] = {}
    for path in sorted(folder.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        module = _load_user_module(path)
        if callable(getattr(module, "positions", None)):
            found[path.stem] = module
    return found


def available_strategies(strategies_dir: str | Path | None = None) -> dict[str, ModuleType]:
    """All strategies by name: the built-in ones, plus every `*.py` in `strategies_dir` that
    defines `positions` (files starting with `_` are skipped). A user file may not reuse a
    built-in name (StrategyError: rename the file)."""
    strategies = _builtin_strategies()
    if strategies_dir is not None:
        for name, module in _user_strategies(strategies_dir).items():
            if name in strategies:
                raise StrategyError(
                    f"strategy file {module.__file__} has the name of the built-in strategy "
                    f"{name!r}; rename the file"
                )
            strategies[name] = module
    return strategies


def get_strategy(name: str, strategies_dir: str | Path | None = None) -> ModuleType:
    """The strategy module called `name`; StrategyError listing the available names if none."""
    strategies = available_strategies(strategies_dir)
    if name not in strategies:
        close = difflib.get_close_matches(str(name), list(strategies), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise StrategyError(
            f"unknown strategy {name!r}; {hint}available: {', '.join(sorted(strategies))}"
            + ("" if strategies_dir else " (use --strategies-dir / strategies_dir for your own)")
        )
    return strategies[name]


def _is_user_strategy(module: ModuleType) -> bool:
    return module.__name__.startswith(_USER_PREFIX)


def _call_positions(name: str, module: ModuleType, prices: pd.DataFrame, kwargs: dict[str, Any]) -> Any:
    """`module.positions(prices, **kwargs)`; an exception inside a user's file becomes a
    `StrategyError` naming the strategy, its file and the line that raised."""
    try:
        return module.positions(prices, **kwargs)
    except StrategyError:
        raise
    except Exception as exc:
        if not _is_user_strategy(module):
            raise
        where = module.__file__ or name
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == module.__file__]
        line = f", line {frames[-1].lineno}" if frames else ""
        raise StrategyError(
            f"strategy {name!r} ({where}{line}) raised {type(exc).__name__}: {exc}; fix the strategy file"
        ) from exc


def strategy_defaults(module: ModuleType) -> dict[str, Any]:
    """A strategy's parameters with their defaults: its `DEFAULTS`, else the keyword
    parameters of its `positions` function."""
    defaults = getattr(module, "DEFAULTS", None)
    if isinstance(defaults, Mapping):
        return dict(defaults)
    params = list(inspect.signature(module.positions).parameters.values())[1:]
    return {
        p.name: None if p.default is inspect.Parameter.empty else p.default
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _coerce(name: str, key: str, value: Any, default: Any) -> Any:
    """Convert a parameter given as text (CLI `--param k=v`) to the type of its default."""
    if not isinstance(value, str) or default is None or isinstance(default, str):
        return value
    text = value.strip()
    try:
        if isinstance(default, bool):
            if text.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(text)
            return text.lower() in {"true", "1", "yes"}
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise StrategyError(
            f"strategy {name!r}: parameter {key!r} must be a {type(default).__name__}, got {value!r}"
        ) from None
    return value


def _check_output(name: str, pos: Any, index: pd.Index) -> pd.Series:
    if not isinstance(pos, pd.Series):
        raise StrategyError(f"strategy {name!r} returned {type(pos).__name__}, not a pandas Series")
    if not pos.index.equals(index):
        raise StrategyError(f"strategy {name!r} returned positions whose index differs from the prices index")
    try:
        values = pos.to_numpy(dtype="float64")
    except (TypeError, ValueError) as exc:
        raise StrategyError(f"strategy {name!r} returned non-numeric positions") from exc
    bad = ~np.isfinite(values) | (np.abs(values) > 1.0)
    if bad.any():
        first = index[int(np.argmax(bad))]
        raise StrategyError(
            f"strategy {name!r} returned a position outside [-1, 1] or not finite at {first}: "
            f"{values[bad][0]!r}"
        )
    return pd.Series(values, index=index, name=name)


def _resolve(
    name: str, params: Mapping[str, Any] | None, strategies_dir: str | Path | None
) -> tuple[ModuleType, dict[str, Any]]:
    """The strategy module `name` and its keyword arguments: `params` checked against its
    defaults (unknown one -> StrategyError listing the valid ones), text converted to their type."""
    module = get_strategy(name, strategies_dir)
    defaults = strategy_defaults(module)
    given = dict(params or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise StrategyError(
            f"strategy {name!r} has no parameter(s) {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(defaults) or '(none)'}"
        )
    return module, {k: _coerce(name, k, v, defaults[k]) for k, v in given.items()}


def strategy_positions(
    name: str,
    prices: pd.DataFrame,
    params: Mapping[str, Any] | None = None,
    strategies_dir: str | Path | None = None,
) -> pd.Series:
    """Positions of strategy `name` on `prices` with `params` over its defaults (float64 Series
    named `name`, in [-1, 1]). Unknown name or parameter -> StrategyError listing valid ones;
    text values (from the CLI) are converted to the type of the default."""
    module, kwargs = _resolve(name, params, strategies_dir)
    positions = _check_output(name, _call_positions(name, module, prices, kwargs), prices.index)
    if _is_user_strategy(module):  # a user's file is audited before anything trades on it
        verdict = audit_look_ahead(
            lambda frame: _call_positions(name, module, frame, kwargs), prices, name=f"strategy {name!r}",
            reference=positions,
        )
        if not verdict.clean:
            raise StrategyError(f"{verdict.message()} ({module.__file__}); fix the strategy file")
    return positions


def audit_strategy(
    name: str,
    prices: pd.DataFrame,
    params: Mapping[str, Any] | None = None,
    strategies_dir: str | Path | None = None,
) -> Any:
    """The look-ahead verdict (`fin_meta.lookahead.LookAheadVerdict`) of strategy `name` on
    `prices`: built-in or user strategy alike (a peeking user strategy is not refused here: the
    verdict says where it peeks). Bad names and parameters raise as in `strategy_positions`."""
    module, kwargs = _resolve(name, params, strategies_dir)
    return audit_look_ahead(lambda frame: _call_positions(name, module, frame, kwargs), prices,
                            name=f"strategy {name!r}")
