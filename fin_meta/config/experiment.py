"""Experiment files: the pydantic models of `experiments/*.yaml`, `load_config` with `--set`
overrides, and `config_to_dict` / `dump_config` for logging and saving a run's config.

An experiment file has the sections `data`, `features`, `regimes`, `env`, `agent`,
`evaluation` and `tracking` (see `experiments/quickstart.yaml`, commented key by key). Every
section rejects unknown keys; every problem is reported as one line
`file:line: dotted.key: what is wrong`, in a `ConfigError`.

Units: dates are calendar dates (YYYY-MM-DD, inclusive); `embargo`, `min_length` and `window`
are in bars (trading days, 252 per year); fees and slippage are fractions of the traded value.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from fin_meta.config.yaml_io import (
    YamlDoc,
    apply_overrides,
    check_override_paths,
    field_error,
    format_errors,
    parse_override,
    read_yaml,
    unknown_key_message,
)
from fin_meta.envs.config import EnvConfig
from fin_meta.errors import ConfigError
from fin_meta.fileio import atomic_write_text

__all__ = [
    "DEFAULT_BASELINES",
    "AGENT_HPARAMS",
    "DataConfig",
    "RegimeConfig",
    "AgentSection",
    "EvaluationConfig",
    "TrackingConfig",
    "ExperimentConfig",
    "EnvConfig",
    "hparams_model",
    "agent_hparams",
    "load_config",
    "parse_config",
    "config_to_dict",
    "dump_config",
]

DEFAULT_BASELINES: tuple[str, ...] = ("buy_and_hold", "sma_cross", "momentum", "mean_reversion", "vol_target")
"""The built-in rule strategies every experiment compares against unless told otherwise."""

AGENT_HPARAMS: dict[str, str] = {
    "ppo": "fin_meta.agents.ppo.config:PPOConfig",
    "rl2": "fin_meta.agents.rl2.config:RL2Config",
    "maml": "fin_meta.agents.maml.config:MAMLConfig",
}
"""Algorithm -> `"module:Class"` of its (torch-free) hyperparameter model."""

_STRICT = ConfigDict(extra="forbid", use_attribute_docstrings=True)


def _check_source(value: str) -> str:
    from fin_meta.sources import parse_source

    parse_source(value)  # DataError listing the schemes
    return value


class DataConfig(BaseModel):
    """Which prices to load and how to cut them into train / (validation) / test periods."""

    model_config = _STRICT

    sources: list[Annotated[str, AfterValidator(_check_source)]] = Field(min_length=1)
    """Price sources (a single string is accepted): `sample:sp500`, `sample:nasdaq` (shipped,
    offline), `yf:TICKER` (yfinance, cached under `data_dir`), `csv:PATH`, `synthetic:regimes`.
    Several sources pool their training tasks; each is backtested on its own."""
    start: dt.date | None = None
    """First date loaded (None: the first bar of the source)."""
    end: dt.date | None = None
    """Last date loaded (None: the last bar of the source)."""
    train_start: dt.date | None = None
    """First training date (None: `start`, else the first bar)."""
    train_end: dt.date
    """Last training date (inclusive): models, thresholds and scalers see nothing later."""
    val_start: dt.date | None = None
    """Optional validation period from here until `embargo` bars before `test_start`."""
    test_start: dt.date
    """First test date; at least `embargo` bars after `train_end` (checked on the data)."""
    test_end: dt.date | None = None
    """Last test date (None: `end`, else the last bar)."""
    embargo: int = Field(21, ge=0)
    """Bars that must lie strictly between consecutive periods (so rolling windows of one
    period never see the next)."""
    data_dir: str | None = None
    """Price cache folder for `yf:` sources (None: $FIN_META_DATA_DIR, else `./data`)."""
    ffill_limit: int = Field(5, ge=0)
    """Forward-fill at most this many consecutive missing bars; longer gaps are an error."""
    source_params: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments of the loader, e.g. `{n_bars: 5040, seed: 1}` for `synthetic:`."""

    @field_validator("sources", mode="before")
    @classmethod
    def _wrap_single(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("sources")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        dupes = sorted({s for s in value if value.count(s) > 1})
        if dupes:
            raise ValueError(f"sources {dupes} are listed more than once; list each source once")
        return value

    _ORDER: ClassVar[tuple[str, ...]] = (
        "start", "train_start", "train_end", "val_start", "test_start", "test_end", "end",
    )

    @model_validator(mode="after")
    def _dates_in_order(self) -> DataConfig:
        given = [(k, getattr(self, k)) for k in self._ORDER if getattr(self, k) is not None]
        for (k1, d1), (k2, d2) in zip(given, given[1:], strict=False):
            may_equal = k1 == "start" or k2 == "end"
            if d1 > d2 or (d1 == d2 and not may_equal):
                raise field_error(
                    "DataConfig", (k2,),
                    f"{k2} ({d2}) must be {'on or ' if may_equal else ''}after {k1} ({d1}); "
                    "the dates must run start <= train_start < train_end < val_start < "
                    "test_start < test_end <= end",
                    d2.isoformat(),
                )
        return self

    def split_kwargs(self) -> dict[str, Any]:
        """The period keys as keyword arguments of `fin_meta.tasks.split_periods` (ISO dates)."""
        keys = ("train_start", "train_end", "val_start", "test_start", "test_end")
        return {k: (None if getattr(self, k) is None else getattr(self, k).isoformat()) for k in keys} | {
            "embargo": self.embargo
        }


class RegimeConfig(BaseModel):
    """How bars are labelled with market regimes (each regime segment is a task)."""

    model_config = _STRICT

    method: Literal["trend_vol", "hmm"] = "trend_vol"
    """`trend_vol`: trailing trend x realised volatility (4 labels); `hmm`: a Gaussian hidden
    Markov model fitted on the training period only."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Parameters of the method (trend_vol: trend_window, vol_window, vol_quantile, ...;
    hmm: n_states, vol_window, n_init, ...); unknown ones are rejected."""
    min_length: int = Field(20, ge=1)
    """Regime runs shorter than this many bars are merged into a neighbour."""
    task_labels: Literal["hindsight", "causal"] = "hindsight"
    """Labels that group training tasks: `hindsight` (smoothed; allowed for grouping only) or
    `causal` (the labels an agent could know at the time). Test-time labels are always causal."""

    @model_validator(mode="after")
    def _check_params(self) -> RegimeConfig:
        from fin_meta.regimes import METHODS
        from fin_meta.regimes.trend_vol import parse_params

        params_cls = METHODS[self.method]
        valid = [f.name for f in dataclass_fields(params_cls)]
        for key in self.params:
            if key not in valid:
                raise field_error(
                    "RegimeConfig", ("params", key),
                    f"method {self.method!r} has no parameter {key!r}; valid: {', '.join(valid)}",
                    self.params[key],
                )
        parse_params(params_cls, self.method, dict(self.params))  # value checks
        return self


def hparams_model(algo: str) -> type[BaseModel]:
    """The hyperparameter model of `algo` (`PPOConfig`, `RL2Config`, `MAMLConfig`)."""
    target = AGENT_HPARAMS.get(algo)
    if target is None:
        raise ConfigError(f"unknown agent algo {algo!r}; choose one of {', '.join(AGENT_HPARAMS)}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


class AgentSection(BaseModel):
    """The agent: `algo`, its training budget and device, and its hyperparameters as further
    keys of the same section (`lr`, `num_envs`, `hidden_size`, ...), checked against the
    algorithm's own model (`fin_meta.agents.ppo.config`, `fin_meta.agents.maml.config`)."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    algo: Literal["rl2", "maml", "ppo"]
    """`rl2` (recurrent, adapts in context), `maml` (adapts by gradient steps) or `ppo`
    (pooled, non-meta baseline)."""
    iterations: int = Field(100, ge=1)
    """Training iterations (meta-iterations for rl2/maml)."""
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    """`auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`."""

    _RESERVED: ClassVar[tuple[str, ...]] = ("seed",)

    @classmethod
    def config_keys(cls, raw: Mapping[str, Any]) -> dict[str, Any] | None:
        """Valid keys (-> annotation) of an agent section whose algo is `raw["algo"]` (None
        while the algo is unknown: its own error comes first)."""
        algo = raw.get("algo")
        if algo not in AGENT_HPARAMS:
            return None
        keys = {name: f.annotation for name, f in cls.model_fields.items()}
        for name, f in hparams_model(algo).model_fields.items():
            if name not in cls._RESERVED:
                keys.setdefault(name, f.annotation)
        return keys

    @model_validator(mode="after")
    def _check_hparams(self) -> AgentSection:
        extra = dict(self.__pydantic_extra__ or {})
        for key in self._RESERVED:
            if key in extra:
                raise field_error(
                    "AgentSection", (key,),
                    f"set the experiment's top-level `{key}` instead; one seed drives the data, "
                    "the tasks and the agent",
                    extra[key],
                )
        model = hparams_model(self.algo)
        shared = {k: getattr(self, k) for k in type(self).model_fields if k in model.model_fields}
        hparams = model.model_validate({**extra, **shared})
        own = set(type(self).model_fields) | set(self._RESERVED)
        # keep every hyperparameter (defaults included) so logged params describe the run fully
        self.__pydantic_extra__ = {k: getattr(hparams, k) for k in model.model_fields if k not in own}
        return self

    @property
    def hparams(self) -> dict[str, Any]:
        """The algorithm's hyperparameters given in (or defaulted for) this section."""
        return dict(self.__pydantic_extra__ or {})


def _check_steps(value: list[int]) -> list[int]:
    if any(k < 0 for k in value) or value != sorted(set(value)):
        raise ValueError(f"{value} must be increasing, distinct and >= 0, e.g. [0, 1, 2, 5]")
    return value


class EvaluationConfig(BaseModel):
    """What the agent is compared with on the test period, and how."""

    model_config = _STRICT

    baselines: list[str] = Field(default_factory=lambda: list(DEFAULT_BASELINES))
    """Rule strategies backtested beside the agent (names from `fin-meta strategies`)."""
    strategy_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Parameters per baseline, e.g. `{sma_cross: {fast: 20, slow: 100}}` (defaults otherwise)."""
    strategies_dir: str | None = None
    """A folder of your own strategy modules (`*.py` with `positions(prices, **params)`)."""
    pooled_ppo: bool = True
    """Also train the pooled (non-meta) PPO baseline with the same budget and compare."""
    adaptation_steps: Annotated[list[int], AfterValidator(_check_steps)] = Field(
        default_factory=lambda: [0, 1, 2, 5]
    )
    """Meta-test adaptation curve points: gradient steps (maml) or context episodes (rl2)."""
    bootstrap_samples: int = Field(1000, ge=100)
    """Bootstrap resamples of the 95% confidence intervals of Sharpe ratios."""
    ppo: dict[str, Any] = Field(default_factory=dict)
    """Hyperparameters of the pooled PPO baseline (`PPOConfig` keys, e.g. `{num_envs: 512,
    lr: 1.0e-4}`; defaults otherwise). Its seed and device are the experiment's, its budget
    `agent.iterations`."""

    @model_validator(mode="after")
    def _check_ppo(self) -> EvaluationConfig:
        model = hparams_model("ppo")
        allowed = [k for k in model.model_fields if k not in ("seed", "device")]
        for key in self.ppo:
            if key not in allowed:
                raise field_error("EvaluationConfig", ("ppo", key),
                                  unknown_key_message(key, ("evaluation", "ppo"), allowed), self.ppo[key])
        try:
            model.model_validate(self.ppo)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise field_error("EvaluationConfig", ("ppo", *err["loc"]), err["msg"], err.get("input")) from None
        return self

    @model_validator(mode="after")
    def _check_strategies(self) -> EvaluationConfig:
        from strategies import available_strategies, strategy_defaults

        known = available_strategies(self.strategies_dir)
        for i, name in enumerate(self.baselines):
            if name not in known:
                raise field_error(
                    "EvaluationConfig", ("baselines", i),
                    f"unknown strategy {name!r}; available: {', '.join(sorted(known))}", name,
                )
        for name, params in self.strategy_params.items():
            if name not in self.baselines:
                raise field_error(
                    "EvaluationConfig", ("strategy_params", name),
                    f"{name!r} is not in evaluation.baselines {self.baselines}; add it there "
                    "or remove its parameters", params,
                )
            valid = strategy_defaults(known[name])
            for key in params:
                if key not in valid:
                    raise field_error(
                        "EvaluationConfig", ("strategy_params", name, key),
                        f"strategy {name!r} has no parameter {key!r}; valid: {', '.join(valid)}",
                        params[key],
                    )
        return self


class TrackingConfig(BaseModel):
    """Where the run is logged (MLflow)."""

    model_config = _STRICT

    enabled: bool = True
    """Log the run to MLflow (`fin-meta run --no-track` turns it off for one run)."""
    experiment: str | None = None
    """MLflow experiment name (None: the experiment's `name`)."""
    tracking_uri: str | None = None
    """MLflow store (None: $MLFLOW_TRACKING_URI, else `sqlite:///mlflow.db` in the working folder)."""


class ExperimentConfig(BaseModel):
    """One experiment: data and splits, regimes, environment, agent, evaluation, tracking."""

    model_config = _STRICT

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Experiment name (letters, digits, `_.-`): the MLflow experiment unless `tracking.experiment`
    says otherwise. Default when loading a file: the file's stem."""
    description: str = ""
    """Free text shown with the run."""
    seed: int = Field(0, ge=0)
    """The one seed of the run: task sampling, network initialisation, rollouts, bootstrap."""
    data: DataConfig
    """Prices and the train / test split."""
    features: list[str] = Field(default_factory=list)
    """Extra causal per-bar observation features after the log return (e.g. realised_vol,
    volume_z); copied into `env.features`."""
    regimes: RegimeConfig = Field(default_factory=RegimeConfig)
    """Regime detection (tasks are regime segments)."""
    env: EnvConfig = Field(default_factory=EnvConfig)
    """Trading environment: observation window, fees, slippage, position limits, reward."""
    agent: AgentSection
    """Algorithm, budget, device and hyperparameters."""
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    """Baselines and meta-test settings."""
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    """MLflow settings."""

    @field_validator("features")
    @classmethod
    def _known_features(cls, value: list[str]) -> list[str]:
        try:
            EnvConfig(features=value)
        except ValidationError as exc:
            raise ValueError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
        return value

    @model_validator(mode="after")
    def _defaults_from_other_keys(self) -> ExperimentConfig:
        if not self.features:
            self.features = list(self.env.features)
        elif not self.env.features:
            self.env = self.env.model_copy(update={"features": list(self.features)})
        elif self.env.features != self.features:
            raise field_error(
                "ExperimentConfig", ("env", "features"),
                f"{self.env.features} differs from the top-level features {self.features}; "
                "keep only the top-level `features`", self.env.features,
            )
        if self.tracking.experiment is None:
            self.tracking = self.tracking.model_copy(update={"experiment": self.name})
        return self


def agent_hparams(config: ExperimentConfig) -> BaseModel:
    """The agent's hyperparameter model (`RL2Config`, `MAMLConfig`, `PPOConfig`) with the
    experiment's seed and the section's device: what `fin_meta.agents.make_agent` takes."""
    model = hparams_model(config.agent.algo)
    values: dict[str, Any] = dict(config.agent.hparams)
    for key, value in (("device", config.agent.device), ("iterations", config.agent.iterations),
                       ("seed", config.seed)):
        if key in model.model_fields:
            values[key] = value
    return model.model_validate(values)


def parse_config(
    data: Mapping[str, Any],
    overrides: Sequence[str] = (),
    *,
    doc: YamlDoc | None = None,
) -> ExperimentConfig:
    """Validate a config mapping after applying `--set` style overrides (`agent.lr=1e-3`).
    Any problem -> `ConfigError`, one line per problem with the dotted key path."""
    parsed = [parse_override(text) for text in overrides]
    merged = apply_overrides(dict(data), parsed)
    check_override_paths(ExperimentConfig, merged, parsed)
    try:
        return ExperimentConfig.model_validate(merged)
    except ValidationError as exc:
        lines = format_errors(exc, root=ExperimentConfig, data=merged, doc=doc, overrides=parsed)
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load an experiment file (YAML), apply `--set` overrides such as `agent.lr=1e-3` or
    `evaluation.baselines=[buy_and_hold, momentum]` (values read as YAML), and validate.

    `name` defaults to the file's stem. A missing file, bad YAML, an unknown key or a bad value
    -> `ConfigError` with one line per problem: `file:line: dotted.key: what is wrong`."""
    doc = read_yaml(path)
    data = dict(doc.data)
    data.setdefault("name", Path(path).stem)
    return parse_config(data, overrides, doc=doc)


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The config as plain JSON-able data (dates as YYYY-MM-DD): for MLflow params and the
    saved config artifact. `ExperimentConfig.model_validate(config_to_dict(c)) == c`."""
    return config.model_dump(mode="json")


def dump_config(config: ExperimentConfig, path: str | Path) -> Path:
    """Write the config as YAML (atomically) that `load_config` reads back to an equal config."""
    header = f"# fin-meta experiment {config.name!r}: the fully resolved config (defaults included)\n"
    text = header + yaml.safe_dump(config_to_dict(config), sort_keys=False, allow_unicode=True)
    atomic_write_text(path, text)
    return Path(path)
