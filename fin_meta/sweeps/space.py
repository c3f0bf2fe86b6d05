"""The search-space file of a sweep: one line per swept key of the experiment file, by its dotted
name, and the distribution it is drawn from:

    agent.lr: {loguniform: [1.0e-4, 1.0e-2]}   # log-uniform on [low, high], low > 0 (int bounds: ints)
    env.adjust: {uniform: [0.05, 1.0]}          # uniform on [low, high]
    agent.hidden_size: {int: [16, 64]}          # an integer in [low, high]
    agent.epochs: {step: [2, 8, 2]}             # low, low + step, ... <= high (floats or ints)
    regimes.method: {choice: [trend_vol, hmm]}  # one of the values

Validated like experiment files (`fin_meta.config.yaml_io`): every problem is one line
`file:line: key: what is wrong`; a key the experiment file does not have is refused (with the
nearest valid key), so is a distribution that is not one of the five, and so are bounds or choices
that make the experiment invalid (each end of a range and every choice is checked against the
experiment's own config). The seed, the data (periods and sources) and the tracking settings are
never swept: they define what the trials are compared on.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from fin_meta.config.experiment import ExperimentConfig
from fin_meta.config.yaml_io import (
    Override,
    YamlDoc,
    apply_overrides,
    format_errors,
    keys_at,
    parse_yaml,
    unknown_key_message,
)
from fin_meta.errors import ConfigError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import Trial

__all__ = ["DISTRIBUTIONS", "FIXED_KEYS", "Param", "SearchSpace", "load_space", "trial_data"]

DISTRIBUTIONS = {
    "loguniform": "[low, high], 0 < low < high",
    "uniform": "[low, high], low < high",
    "int": "[low, high], integers, low < high",
    "step": "[low, high, step], step > 0",
    "choice": "[value, value, ...], scalars",
}
"""The distributions of a space file and the arguments each takes."""
FIXED_KEYS = {
    "seed": "the seed decides luck, not a setting: run seeds as a seed set, never choose one",
    "name": "the sweep's trials share one experiment",
    "description": "the sweep's trials share one experiment",
    "data": "the data and its periods define what the trials are compared on",
    "tracking": "every trial logs to the sweep's own store",
}
"""Top-level sections that a space file may not sweep, and why."""
_EXAMPLE = "{loguniform: [1.0e-4, 1.0e-2]}"


@dataclass(frozen=True)
class Param:
    """One swept key: `key` (dotted, e.g. `agent.lr`), its distribution `kind` (a key of
    `DISTRIBUTIONS`), the arguments `args` and the line of the space file that gives it."""

    key: str
    kind: str
    args: tuple[Any, ...]
    line: int | None = None

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))

    def _ints(self) -> bool:
        return all(isinstance(a, int) and not isinstance(a, bool) for a in self.args)

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution (what Ray's `OptunaSearch` takes as a fixed space)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution(list(self.args))
        if self.kind == "int":
            return IntDistribution(self.args[0], self.args[1])
        if self.kind == "step":
            low, high, step = self.args
            top = _grid_top(low, high, step)
            return IntDistribution(low, int(top), step=step) if self._ints() else FloatDistribution(low, top, step=step)
        log = self.kind == "loguniform"
        if log and self._ints():
            return IntDistribution(self.args[0], self.args[1], log=True)
        return FloatDistribution(float(self.args[0]), float(self.args[1]), log=log)

    def probes(self) -> list[tuple[str, Any]]:
        """Values that must each give a valid experiment: both ends of a range, every choice."""
        if self.kind == "choice":
            return [(f"the choice {v!r}", v) for v in self.args]
        low, high = self.args[0], self.args[1]
        if self.kind == "step":
            dist = self.distribution()
            high = dist.high  # the last point of the grid
        return [(f"the low end {low!r}", low), (f"the high end {high!r}", high)]

    def describe(self) -> str:
        """`loguniform[0.0001, 0.01]`: the distribution as one short string (a param value)."""
        return f"{self.kind}[{', '.join(str(a) for a in self.args)}]"


@dataclass(frozen=True)
class SearchSpace:
    """The swept keys of a space file (`source` names it), in the file's order."""

    params: tuple[Param, ...]
    source: str = "<space>"

    def distributions(self) -> dict[str, BaseDistribution]:
        """`{key: Optuna distribution}`."""
        return {p.key: p.distribution() for p in self.params}

    def suggest(self, trial: Trial) -> dict[str, Any]:
        """Draw every key's value for an Optuna `trial`: `{key: value}`."""
        from optuna.distributions import CategoricalDistribution, IntDistribution

        values = {}
        for p in self.params:
            dist = p.distribution()
            if isinstance(dist, CategoricalDistribution):
                values[p.key] = trial.suggest_categorical(p.key, dist.choices)
            elif isinstance(dist, IntDistribution):
                values[p.key] = trial.suggest_int(p.key, dist.low, dist.high, step=dist.step, log=dist.log)
            else:
                values[p.key] = trial.suggest_float(p.key, dist.low, dist.high, step=dist.step, log=dist.log)
        return values

    def describe(self) -> dict[str, str]:
        """`{"sweep.space.<key>": "loguniform[...]"}`: the space as MLflow params."""
        return {f"sweep.space.{p.key}": p.describe() for p in self.params}


def _grid_top(low: float, high: float, step: float) -> float:
    """The last point of the grid low, low + step, ... that is <= high (decimal arithmetic, as
    Optuna checks it, so the distribution is built without a warning)."""
    d_low, d_high, d_step = (Decimal(str(v)) for v in (low, high, step))
    return float((d_high - d_low) // d_step * d_step + d_low)


def trial_data(base: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment's config data `base` with the trial's `values` (`{dotted key: value}`) set."""
    overrides = [Override(text=f"{k}={v!r}", path=tuple(k.split(".")), value=v) for k, v in values.items()]
    data = apply_overrides(dict(base), overrides)
    if "features" in values and isinstance(data.get("env"), dict):  # the env copy follows the top level
        data["env"]["features"] = values["features"]
    return data


def load_space(path: str | Path, base: Mapping[str, Any]) -> SearchSpace:
    """Read and check a space file against the experiment's config data `base` (a resolved
    config, `config_to_dict`). Any problem -> `ConfigError`, one line per problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"space file {str(path)!r} not found; start from experiments/spaces/rl2_basics.yaml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read space file {str(path)!r}: {exc}") from None
    doc = parse_yaml(text, source=str(path))
    if not isinstance(doc.data, dict) or not doc.data:
        raise ConfigError(f"{path}:1: a space file is a mapping of dotted experiment keys to distributions, "
                          f"e.g. agent.lr: {_EXAMPLE}")
    params, problems = [], []
    for key, spec in doc.data.items():
        line = doc.line_of((key,))
        where = f"{path}:{line}: {key}"
        try:
            param = _param(str(key), spec, line, base)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        problems += [f"{where}: {problem}" for problem in _probe(param, base, doc)]
        params.append(param)
    if problems:
        raise ConfigError("\n".join(problems))
    return SearchSpace(tuple(params), source=str(path))


def _param(key: str, spec: Any, line: int | None, base: Mapping[str, Any]) -> Param:
    """The `Param` of one entry; ValueError (the message) when it is malformed."""
    path = tuple(key.split("."))
    if not all(path):
        raise ValueError(f"not a dotted experiment key; write e.g. agent.lr: {_EXAMPLE}")
    if path[0] in FIXED_KEYS:
        raise ValueError(f"cannot be swept: {FIXED_KEYS[path[0]]}")
    for depth in range(len(path)):
        keys = keys_at(ExperimentConfig, path[:depth], base)
        if keys is None:
            break
        if path[depth] not in keys:
            raise ValueError(unknown_key_message(path[depth], path[:depth], keys))
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError(f"expected one distribution, e.g. {key}: {_EXAMPLE} (use dotted keys, one per line), "
                         f"got {spec!r}")
    ((kind, args),) = spec.items()
    if kind not in DISTRIBUTIONS and keys_at(ExperimentConfig, path, base) is not None:
        raise ValueError(f"is a section: write one dotted key a line, e.g. {key}.{kind}: {_EXAMPLE}")
    if kind not in DISTRIBUTIONS:
        close = difflib.get_close_matches(str(kind), list(DISTRIBUTIONS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown distribution {kind!r}{hint}; use one of: {', '.join(DISTRIBUTIONS)}")
    if not isinstance(args, list) or not args:
        raise ValueError(f"{kind} takes a list {DISTRIBUTIONS[kind]}, got {args!r}")
    _check_args(kind, args)
    return Param(key, kind, tuple(args), line)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_args(kind: str, args: Sequence[Any]) -> None:
    """ValueError saying what is wrong with the arguments `args` of a `kind` distribution."""
    expected = f"{kind} takes {DISTRIBUTIONS[kind]}, got {list(args)!r}"
    if kind == "choice":
        if any(isinstance(v, dict | list) for v in args):
            raise ValueError(f"{expected}: each choice must be a single value (text, number, true/false, null)")
        if len(set(map(repr, args))) != len(args):
            raise ValueError(f"{expected}: a value is given twice")
        return
    size = 3 if kind == "step" else 2
    if len(args) != size or not all(_number(a) for a in args):
        raise ValueError(expected)
    low, high = args[0], args[1]
    if kind == "int" and not all(isinstance(a, int) for a in args):
        raise ValueError(expected)
    if not low < high or (kind == "loguniform" and low <= 0) or (kind == "step" and args[2] <= 0):
        raise ValueError(expected)


def _probe(param: Param, base: Mapping[str, Any], doc: YamlDoc) -> list[str]:
    """Problems of the experiment with each of `param`'s probe values set (one line each)."""
    problems = []
    for label, value in param.probes():
        data = trial_data(base, {param.key: value})
        try:
            ExperimentConfig.model_validate(data)
        except ValidationError as exc:
            lines = format_errors(exc, root=ExperimentConfig, data=data, doc=None)
            why = "; ".join(line.removeprefix("<config>: ") for line in lines)
            problems.append(f"{label} gives an invalid experiment: {why}")
    return problems
