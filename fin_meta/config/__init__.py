"""Experiment files: the section models (`sections`), the root model and its load / dump
(`experiment`), YAML with line numbers and `--set` overrides (`yaml_io`, the only KEY=VALUE
parser)."""

from fin_meta.config.experiment import (
    ExperimentConfig,
    agent_hparams,
    config_to_dict,
    dump_config,
    load_config,
    parse_config,
)

__all__ = ["ExperimentConfig", "agent_hparams", "config_to_dict", "dump_config", "load_config", "parse_config"]
