"""Experiment config: the shipped files load, overrides, one-line errors with key paths,
date order, YAML problems with line numbers, round trips."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from fin_meta.agents.maml.config import MAMLConfig
from fin_meta.agents.rl2.config import RL2Config
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


@pytest.fixture
def minimal(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(MINIMAL)
    return path


def _error_lines(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value).splitlines()


def _write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


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


# --------------------------------------------------------------------------- defaults & API


def test_minimal_file_gets_documented_defaults(minimal: Path):
    cfg = load_config(minimal)
    assert cfg.data.sources == ["sample:sp500"]  # a single string is wrapped
    assert cfg.data.embargo == 21
    assert cfg.regimes.min_length == 20 and cfg.regimes.task_labels == "hindsight"
    assert cfg.evaluation.baselines == ["buy_and_hold", "sma_cross", "momentum", "mean_reversion", "vol_target"]
    assert cfg.evaluation.bootstrap_samples == 1000
    assert cfg.tracking.enabled is True and cfg.tracking.experiment == "tiny"
    assert cfg.agent.device == "auto"
    assert cfg.agent.hparams["lr"] == RL2Config().lr  # every hyperparameter is filled in


def test_name_defaults_to_the_file_stem(tmp_path: Path):
    path = _write(tmp_path, MINIMAL.replace("name: tiny\n", ""), name="my_exp.yaml")
    assert load_config(path).name == "my_exp"


def test_agent_hparams_carry_seed_and_device(minimal: Path):
    cfg = load_config(minimal, ["seed=7", "agent.device=cpu", "agent.hidden_size=16"])
    hp = agent_hparams(cfg)
    assert isinstance(hp, RL2Config)
    assert (hp.seed, hp.device, hp.hidden_size) == (7, "cpu", 16)


def test_exponent_floats_read_as_numbers(tmp_path: Path):
    # PyYAML alone reads `1e-3` as a string; experiment files read it as a number everywhere
    path = _write(tmp_path, MINIMAL + "  lr: 1e-3\nregimes:\n  params: {vol_quantile: 5e-1}\n")
    cfg = load_config(path)
    assert cfg.agent.hparams["lr"] == pytest.approx(1e-3)
    assert cfg.regimes.params["vol_quantile"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- overrides


def test_overrides_nested_numbers_booleans_lists_dates(minimal: Path):
    cfg = load_config(
        minimal,
        [
            "agent.lr=1e-3",
            "agent.iterations=7",
            "env.allow_short=false",
            "env.fees=0.001",
            "evaluation.baselines=[buy_and_hold, momentum]",
            "evaluation.adaptation_steps=[0, 3]",
            "data.test_end=2012-06-29",
            "regimes.params.trend_window=40",
            "evaluation.strategy_params.momentum.lookback=10",
            "tracking.experiment=other",
        ],
    )
    assert cfg.agent.hparams["lr"] == pytest.approx(1e-3)
    assert cfg.agent.iterations == 7
    assert cfg.env.allow_short is False and cfg.env.fees == pytest.approx(1e-3)
    assert cfg.evaluation.baselines == ["buy_and_hold", "momentum"]
    assert cfg.evaluation.adaptation_steps == [0, 3]
    assert cfg.data.test_end == dt.date(2012, 6, 29)
    assert cfg.regimes.params == {"trend_window": 40}
    assert cfg.evaluation.strategy_params == {"momentum": {"lookback": 10}}
    assert cfg.tracking.experiment == "other"


def test_override_switching_algo_validates_against_the_new_model(minimal: Path):
    cfg = load_config(minimal, ["agent.algo=maml", "agent.inner_steps=2"])
    hp = agent_hparams(cfg)
    assert isinstance(hp, MAMLConfig) and hp.inner_steps == 2


def test_null_override(minimal: Path):
    cfg = load_config(minimal, ["env.episode_length=63"])
    assert cfg.env.episode_length == 63
    assert load_config(minimal, ["env.episode_length=null"]).env.episode_length is None


@pytest.mark.parametrize(
    ("override", "path", "valid"),
    [
        ("nme=x", "nme", "valid keys at the top level: name,"),
        ("data.train_ende=2010-01-01", "data.train_ende", "valid keys in data: sources,"),
        ("env.windw=8", "env.windw", "valid keys in env: window,"),
        ("agent.lrr=0.1", "agent.lrr", "valid keys in agent: algo, iterations, device,"),
    ],
)
def test_override_of_unknown_key_names_path_and_valid_keys(minimal: Path, override, path, valid):
    (line,) = _error_lines(minimal, [override])
    assert line.startswith(f"--set {override}: {path}: unknown key")
    assert valid in line


def test_override_did_you_mean(minimal: Path):
    (line,) = _error_lines(minimal, ["env.windw=8"])
    assert "did you mean 'window'?" in line


@pytest.mark.parametrize("bad", ["agent.lr", "=3", "agent..lr=3"])
def test_malformed_override(minimal: Path, bad):
    (line,) = _error_lines(minimal, [bad])
    assert "KEY=VALUE" in line


def test_override_into_a_non_section(minimal: Path):
    (line,) = _error_lines(minimal, ["data.sources.x=1"])
    assert "data.sources" in line and "not a section" in line


def test_bad_override_value_names_the_override(minimal: Path):
    (line,) = _error_lines(minimal, ["agent.lr=fast"])
    assert "(--set agent.lr=fast)" in line and "agent.lr:" in line and "'fast'" in line


# --------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("snippet", "path", "valid"),
    [
        ("colour: red\n", "colour", "at the top level"),
        ("regimes:\n  methd: hmm\n", "regimes.methd", "in regimes: method, params, min_length, task_labels"),
        ("env:\n  fee: 0.001\n", "env.fee", "in env: window, fees,"),
        ("agent_extra:\n  x: 1\n", "agent_extra", "at the top level"),
        ("tracking:\n  uri: x\n", "tracking.uri", "in tracking: enabled, experiment, tracking_uri"),
    ],
)
def test_unknown_key_in_file_at_several_depths(tmp_path: Path, snippet, path, valid):
    lines = _error_lines(_write(tmp_path, MINIMAL + snippet))
    (line,) = [ln for ln in lines if f": {path}: unknown key" in ln]
    assert valid in line


def test_unknown_agent_hyperparameter_lists_the_algos_keys(tmp_path: Path):
    lines = _error_lines(_write(tmp_path, MINIMAL + "  hiden_size: 32\n"))
    (line,) = lines
    assert ": agent.hiden_size: unknown key 'hiden_size' (did you mean 'hidden_size'?)" in line
    assert "episodes_per_trial" in line  # RL²'s own keys are listed
    assert line.startswith(f"{tmp_path / 'exp.yaml'}:9:")  # with the line number


def test_agent_seed_points_to_the_top_level_seed(tmp_path: Path):
    (line,) = _error_lines(_write(tmp_path, MINIMAL + "  seed: 3\n"))
    assert "agent.seed:" in line and "top-level `seed`" in line


def test_unknown_regime_param_and_strategy_param(tmp_path: Path):
    text = MINIMAL + "regimes:\n  params: {trend_windw: 5}\nevaluation:\n  strategy_params:\n    sma_cross: {fastt: 3}\n"
    lines = _error_lines(_write(tmp_path, text))
    assert any("regimes.params.trend_windw:" in ln and "trend_window" in ln for ln in lines)
    assert any("evaluation.strategy_params.sma_cross.fastt:" in ln and "fast" in ln for ln in lines)


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("override", "path", "words"),
    [
        ("seed=-1", "seed", "greater than or equal to 0"),
        ("data.embargo=ten", "data.embargo", "valid integer"),
        ("data.sources=[sample:sp500, yahoo:SPY]", "data.sources[1]", "unknown scheme"),
        ("data.sources=[]", "data.sources", "at least 1"),
        ("data.sources=[yf:SPY, yf:SPY]", "data.sources", "more than once"),
        ("regimes.method=kmeans", "regimes.method", "'trend_vol' or 'hmm'"),
        ("regimes.params.vol_quantile=2", "regimes", "vol_quantile"),
        ("env.window=0", "env.window", "greater than or equal to 1"),
        ("env.reward=sharpe", "env.reward", "unknown reward"),
        ("agent.algo=dqn", "agent.algo", "'rl2', 'maml' or 'ppo'"),
        ("agent.device=gpu", "agent.device", "pattern"),
        ("agent.num_envs=0", "agent.num_envs", "greater than or equal to 1"),
        ("evaluation.baselines=[buy_and_hold, momentm]", "evaluation.baselines[1]", "unknown strategy 'momentm'"),
        ("evaluation.adaptation_steps=[3, 1]", "evaluation.adaptation_steps", "increasing"),
        ("evaluation.strategy_params.sma_cross.fast=5", "evaluation.strategy_params.sma_cross", "not in evaluation.baselines"),
        ("evaluation=3", "evaluation", "section of keys"),
        ("features=[rsi]", "features", "unknown features"),
        ("name=my run", "name", "pattern"),
    ],
)
def test_bad_values_name_the_key(minimal: Path, override, path, words):
    if override.startswith("evaluation.strategy_params.sma_cross"):
        override_list = ["evaluation.baselines=[buy_and_hold]", override]
    else:
        override_list = [override]
    lines = _error_lines(minimal, override_list)
    assert any(f": {path}: " in ln and words in ln for ln in lines), lines


def test_several_problems_one_line_each(tmp_path: Path):
    text = MINIMAL.replace("iterations: 3", "iterations: 0") + "env:\n  window: -2\n  fees: lots\n"
    lines = _error_lines(_write(tmp_path, text))
    assert len(lines) == 3
    assert {ln.split(": ")[1] for ln in lines} == {"env.window", "env.fees", "agent.iterations"}
    assert all(ln.startswith(str(tmp_path / "exp.yaml") + ":") for ln in lines)


def test_missing_required_keys(tmp_path: Path):
    lines = _error_lines(_write(tmp_path, "name: x\ndata:\n  sources: sample:sp500\n"))
    paths = sorted(ln.split(": ")[1] for ln in lines)
    assert paths == ["agent", "data.test_start", "data.train_end"]
    assert all("required key is missing" in ln for ln in lines)


def test_conflicting_env_features(tmp_path: Path):
    text = MINIMAL + "features: [realised_vol]\nenv:\n  features: [volume_z]\n"
    (line,) = _error_lines(_write(tmp_path, text))
    assert "env.features:" in line and "top-level" in line
    cfg = load_config(_write(tmp_path, MINIMAL + "env:\n  features: [volume_z]\n", "b.yaml"))
    assert cfg.features == ["volume_z"] == cfg.env.features


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
    (line,) = _error_lines(minimal, overrides)
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

    from fin_meta.tasks import split_periods

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
    (line,) = _error_lines(minimal, ["data.train_end=last year"])
    assert "data.train_end:" in line and "date" in line


# --------------------------------------------------------------------------- files & YAML


def test_missing_file_suggests_the_close_name(tmp_path: Path, minimal: Path):
    with pytest.raises(ConfigError, match=r"not found; did you mean .*tiny\.yaml"):
        load_config(tmp_path / "tiny.yml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nowhere" / "x.yaml")


def test_bad_yaml_shows_line_number(tmp_path: Path):
    path = _write(tmp_path, "name: x\ndata:\n  sources: [sample:sp500\n  train_end: 2010-01-01\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml:4:\d+: invalid YAML"):
        load_config(path)


def test_bad_indentation_shows_line_number(tmp_path: Path):
    path = _write(tmp_path, "name: x\ndata:\n  sources: a\n    train_end: 2\n")
    with pytest.raises(ConfigError, match=r"exp\.yaml:4:\d+: invalid YAML"):
        load_config(path)


def test_duplicate_key_is_an_error(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"exp\.yaml:9:\d+: .*duplicate key 'iterations' \(first given on line 8\)"):
        load_config(_write(tmp_path, MINIMAL + "  iterations: 4\n"))


@pytest.mark.parametrize(("text", "words"), [("", "empty"), ("- a\n- b\n", "mapping")])
def test_empty_or_non_mapping_file(tmp_path: Path, text, words):
    with pytest.raises(ConfigError, match=words):
        load_config(_write(tmp_path, text))


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


def test_pooled_ppo_hyperparameters_are_checked_and_reach_the_baseline(minimal: Path, monkeypatch):
    cfg = load_config(minimal, ["evaluation.ppo={num_envs: 32, lr: 1.0e-4}"])
    assert cfg.evaluation.ppo == {"num_envs": 32, "lr": 1.0e-4}
    (line,) = _error_lines(minimal, ["evaluation.ppo={num_env: 32}"])
    assert "evaluation.ppo.num_env" in line and "did you mean 'num_envs'?" in line
    (line,) = _error_lines(minimal, ["evaluation.ppo={lr: -1}"])
    assert "evaluation.ppo.lr" in line
    (line,) = _error_lines(minimal, ["evaluation.ppo={seed: 3}"])
    assert "evaluation.ppo.seed" in line and "unknown key" in line

    from fin_meta.pipeline.run_job import baseline_hparams

    hp = baseline_hparams(cfg, "ppo")
    assert (hp.num_envs, hp.lr, hp.seed, hp.device) == (32, 1.0e-4, cfg.seed, cfg.agent.device)
    assert baseline_hparams(load_config(minimal), "ppo").num_envs == 256  # PPOConfig default
