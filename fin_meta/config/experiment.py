"""Experiment files: the root model `ExperimentConfig` (its sections are in
`fin_meta.config.sections` and `fin_meta.config.agent`), `load_config` / `parse_config` with `--set` overrides, and
`config_to_dict` / `dump_config` for logging and saving a run's config.

An experiment file has the sections `data`, `features`, `regimes`, `env`, `agent`,
`evaluation` and `tracking` (see `experiments/quickstart.yaml`, commented key by key). Every
section rejects unknown keys; every problem is reported as one line
`file:line: dotted.key: what is wrong`, in a `ConfigError`.

Units: dates are calendar dates (YYYY-MM-DD, inclusive); `embargo`, `min_length` and `window`
are in bars of the data's frequency (`data.bars_per_year`, inferred from the dates unless given:
252 a year for daily bars); fees and slippage are fractions of the traded value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fin_meta.agents import hparams_model
from fin_meta.config.agent import AgentSection
from fin_meta.config.sections import (
    DataConfig,
    EvaluationConfig,
    RegimeConfig,
    TrackingConfig,
)
from fin_meta.config.yaml_io import (
    YamlDoc,
    apply_overrides,
    check_override_paths,
    field_error,
    format_errors,
    parse_override,
    read_yaml,
)
from fin_meta.envs.config import EnvConfig
from fin_meta.errors import ConfigError
from fin_meta.fileio import atomic_write_text

__all__ = [
    "ExperimentConfig",
    "agent_hparams",
    "load_config",
    "parse_config",
    "config_to_dict",
    "dump_config",
]


class ExperimentConfig(BaseModel):
    """One experiment: data and splits, regimes, environment, agent, evaluation, tracking."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Experiment name (letters, digits, `_.-`): the MLflow experiment unless `tracking.experiment`
    says otherwise. Default when loading a file: the file's stem."""
    description: str = ""
    """Free text shown with the run."""
    seed: int = Field(0, ge=0)
    """The one seed of the run: task sampling, network initialisation, rollouts, bootstrap."""
    seeds: list[Annotated[int, Field(ge=0)]] | None = Field(None, min_length=1, exclude_if=lambda v: v is None)
    """Several seeds (`fin-meta run --seeds 0-4` sets it): one MLflow parent run with a child run
    per seed, each run with that `seed` (`fin_meta.pipeline.run_seeds`); replaces `seed`. One
    seed is a plain run with that `seed`; null (the default): the one `seed`."""
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

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int] | None) -> list[int] | None:
        twice = sorted({s for s in value or [] if value.count(s) > 1})
        if twice:
            raise ValueError(f"seed {twice[0]} appears more than once; list each seed once, e.g. [0, 1, 2, 3, 4]")
        return value

    @model_validator(mode="after")
    def _one_seed_is_a_plain_run(self) -> ExperimentConfig:
        if self.seeds is not None and len(self.seeds) == 1:
            self.seed, self.seeds = self.seeds[0], None
        return self

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

    @model_validator(mode="after")
    def _validation_needs_a_period(self) -> ExperimentConfig:
        for key in ("eval_every", "patience"):
            value = getattr(self.agent, key)
            if value is not None and self.data.val_start is None:
                raise field_error(
                    "ExperimentConfig", ("agent", key),
                    f"needs a validation period: set data.val_start (agent.{key} evaluates the agent "
                    "on it; nothing is chosen on the test period)", value,
                )
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
