"""Shared set-up of the experiment-config tests: the shipped files, a minimal experiment and
helpers that write a file or collect the error lines of loading one (each test module
makes its own `minimal` fixture: `write(tmp_path, MINIMAL, "tiny.yaml")`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fin_meta.config.experiment import load_config
from fin_meta.errors import ConfigError

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))

MINIMAL = """\
name: tiny
data:
  sources: sample:sp500
  train_end: 2010-12-31
  test_start: 2011-03-01
agent:
  algo: rl2
  iterations: 3
"""


def error_lines(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The lines of the ConfigError that loading `path` with `overrides` raises."""
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value).splitlines()


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    """`text` written to `tmp_path / name`."""
    path = tmp_path / name
    path.write_text(text)
    return path
