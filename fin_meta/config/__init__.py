"""Experiment files: pydantic models, YAML load with line numbers, `--set` overrides."""

from fin_meta.config.experiment import (
    ExperimentConfig,
    agent_hparams,
    config_to_dict,
    dump_config,
    load_config,
    parse_config,
)

__all__ = ["ExperimentConfig", "agent_hparams", "config_to_dict", "dump_config", "load_config", "parse_config"]
