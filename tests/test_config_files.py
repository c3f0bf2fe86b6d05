"""Experiment files: the shipped files load, date order, YAML problems with line numbers,
round trips. (Overrides and key errors: `test_config.py`.)"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from fin_meta.config.experiment import (
    ExperimentConfig,
    agent_hparams,
    config_to_dict,
    dump_config,
    load_config,
    parse_config,
)
from fin_meta.envs.config import EnvConfig
from fin_meta.errors import ConfigError
from tests.config_data import EXPERIMENTS, MINIMAL, error_lines, write


@pytest.fixture
def minimal(tmp_path: Path) -> Path:
    return write(tmp_path, MINIMAL, "tiny.yaml")


# --------------------------------------------------------------------------- shipped files


def test_every_experiment_file_is_found():
    names = {p.stem for p in EXPERIMENTS}
    assert {"quickstart", "sp500_rl2", "sp500_maml", "nasdaq_rl2", "multi_asset_yf", "synthetic_rl2"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_file_validates(path: Path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    assert cfg.data.train_end < cfg.data.test_start
    assert isinstance(cfg.env, EnvConfig)
    assert cfg.env.features == cfg.features
    hp = agent_hparams(cfg)
    assert type(hp).__name__ == {"rl2": "RL2Config", "maml": "MAMLConfig", "ppo": "PPOConfig"}[cfg.agent.algo]
    assert hp.seed == cfg.seed
    assert cfg.tracking.experiment == cfg.name


def test_quickstart_is_the_documented_setup():
    cfg = load_config(next(p for p in EXPERIMENTS if p.stem == "quickstart"))
    assert cfg.data.sources == ["sample:sp500"]
    assert cfg.data.train_start.year == 1999 and cfg.data.train_end.year == 2012
    assert cfg.data.test_start.year == 2013 and cfg.data.test_end.year == 2018
    assert cfg.agent.algo == "rl2"


def test_yfinance_file_says_it_needs_network():
    text = next(p for p in EXPERIMENTS if p.stem == "multi_asset_yf").read_text()
    cfg = load_config(next(p for p in EXPERIMENTS if p.stem == "multi_asset_yf"))
    assert len(cfg.data.sources) >= 3 and all(s.startswith("yf:") for s in cfg.data.sources)
    assert "network" in text.lower()


# --------------------------------------------------------------------------- date order


@pytest.mark.parametrize(
    ("overrides", "later", "earlier"),
    [
        (["data.train_end=2011-06-30"], "test_start (2011-03-01)", "train_end (2011-06-30)"),
        (["data.train_start=2011-01-01"], "train_end (2010-12-31)", "train_start (2011-01-01)"),
        (["data.val_start=2011-04-01"], "test_start (2011-03-01)", "val_start (2011-04-01)"),
        (["data.val_start=2010-06-01"], "val_start (2010-06-01)", "train_end (2010-12-31)"),
        (["data.test_end=2011-01-01"], "test_end (2011-01-01)", "test_start (2011-03-01)"),
        (["data.end=2011-02-01"], "end (2011-02-01)", "test_start (2011-03-01)"),
        (["data.start=2011-01-05"], "train_end (2010-12-31)", "start (2011-01-05)"),
        (["data.test_start=2010-12-31"], "test_start (2010-12-31)", "train_end (2010-12-31)"),
    ],
)
def test_date_order_errors_name_keys_and_dates(minimal: Path, overrides, later, earlier):
    (line,) = error_lines(minimal, overrides)
    assert f"{later} must be" in line and f"after {earlier}" in line
    assert ": data." in line


def test_dates_in_order_pass(minimal: Path):
    cfg = load_config(
        minimal,
        ["data.start=2000-01-03", "data.train_start=2000-01-03", "data.val_start=2011-01-20",
         "data.test_start=2011-06-01", "data.test_end=2018-12-31", "data.end=2018-12-31"],
    )
    assert cfg.data.val_start == dt.date(2011, 1, 20)


def test_split_kwargs_cut_prices_with_the_embargo(minimal: Path):
    import pandas as pd

    from fin_meta.splits import split_periods

    prices = pd.DataFrame(
        {"close": 1.0}, index=pd.bdate_range("2010-01-01", "2012-12-31", name="date")
    )
    cfg = load_config(minimal, ["data.test_end=2011-12-30"])
    parts = split_periods(prices, **cfg.data.split_kwargs())
    assert parts["train"].index[-1] == pd.Timestamp("2010-12-31")
    assert parts["test"].index[0] == pd.Timestamp("2011-03-01")
    assert parts["test"].index[-1] == pd.Timestamp("2011-12-30")
    too_close = load_config(minimal, ["data.test_start=2011-01-10"])  # 5 bars after train_end
    with pytest.raises(ConfigError, match="embargo"):
        split_periods(prices, **too_close.data.split_kwargs())


def test_bad_date_value(minimal: Path):
    (line,) = error_lines(minimal, ["data.train_end=last year"])
    assert "data.train_end:" in line and "date" in line


# --------------------------------------------------------------------------- files & YAML


def test_missing_file_suggests_the_close_name(tmp_path: Path, minimal: Path):
    with pytest.raises(ConfigError, match=r"not found; did you mean .*tiny\.yaml"):
        load_config(tmp_path / "tiny.yml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nowhere" / "x.yaml")


def test_bad_yaml_shows_line_number(tmp_path: Path):
    path = write(tmp_path, "name: x\ndata:\n  sources: [sample:sp500\n  train_end: 2010-01-01\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml:4:\d+: invalid YAML"):
        load_config(path)


def test_bad_indentation_shows_line_number(tmp_path: Path):
    path = write(tmp_path, "name: x\ndata:\n  sources: a\n    train_end: 2\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml:4:\d+: invalid YAML"):
        load_config(path)


def test_duplicate_key_is_an_error(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"exp\.yaml:9:\d+: .*duplicate key 'iterations' \(first given on line 8\)"):
        load_config(write(tmp_path, MINIMAL + "  iterations: 4\n"))


@pytest.mark.parametrize(("text", "words"), [("", "empty"), ("- a\n- b\n", "mapping")])
def test_empty_or_non_mapping_file(tmp_path: Path, text, words):
    with pytest.raises(ConfigError, match=words):
        load_config(write(tmp_path, text))


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_config_to_dict_round_trip(path: Path):
    cfg = load_config(path)
    data = config_to_dict(cfg)
    yaml.safe_dump(data)  # plain data only (JSON/YAML-able)
    assert isinstance(data["data"]["train_end"], str)
    again = ExperimentConfig.model_validate(data)
    assert again == cfg
    assert config_to_dict(again) == data


def test_dump_config_round_trip(tmp_path: Path, minimal: Path):
    cfg = load_config(minimal, ["agent.lr=2e-4", "evaluation.baselines=[momentum]"])
    out = dump_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(out) == cfg
    assert not [p for p in out.parent.iterdir() if p.name != "config.yaml"]  # no temp files left


def test_parse_config_from_a_mapping():
    data = yaml.safe_load(MINIMAL)
    cfg = parse_config(data, ["agent.iterations=9"])
    assert cfg.agent.iterations == 9
    assert data["agent"]["iterations"] == 3  # the caller's mapping is not modified
    with pytest.raises(ConfigError, match=r"^<config> \(--set agent.iterations=0\): agent.iterations: "):
        parse_config(data, ["agent.iterations=0"])
    data["agent"]["iterations"] = 0
    with pytest.raises(ConfigError, match=r"^<config>: agent.iterations: input should be greater"):
        parse_config(data)
