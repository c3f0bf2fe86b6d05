"""Experiment config: defaults, overrides, one-line errors with key paths (unknown keys, bad
values), the pooled PPO baseline's hyperparameters. Files, dates and round trips:
`test_config_files.py`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from fin_meta.agents.maml.config import MAMLConfig
from fin_meta.agents.rl2.config import RL2Config
from fin_meta.config.experiment import agent_hparams, load_config
from tests.config_data import MINIMAL, error_lines, write


@pytest.fixture
def minimal(tmp_path: Path) -> Path:
    return write(tmp_path, MINIMAL, "tiny.yaml")


# --------------------------------------------------------------------------- defaults & API


def test_minimal_file_gets_documented_defaults(minimal: Path):
    cfg = load_config(minimal)
    assert cfg.data.sources == ["sample:sp500"]  # a single string is wrapped
    assert cfg.data.embargo is None and cfg.data.bars_per_year is None  # a month of bars, inferred
    assert cfg.regimes.min_length == 20 and cfg.regimes.task_labels == "hindsight"
    assert cfg.evaluation.baselines == ["buy_and_hold", "sma_cross", "momentum", "mean_reversion", "vol_target"]
    assert cfg.evaluation.bootstrap_samples == 1000
    assert cfg.tracking.enabled is True and cfg.tracking.experiment == "tiny"
    assert cfg.agent.device == "auto"
    assert cfg.agent.hparams["lr"] == RL2Config().lr  # every hyperparameter is filled in


def test_name_defaults_to_the_file_stem(tmp_path: Path):
    path = write(tmp_path, MINIMAL.replace("name: tiny\n", ""), name="my_exp.yaml")
    assert load_config(path).name == "my_exp"


def test_agent_hparams_carry_seed_and_device(minimal: Path):
    cfg = load_config(minimal, ["seed=7", "agent.device=cpu", "agent.hidden_size=16"])
    hp = agent_hparams(cfg)
    assert isinstance(hp, RL2Config)
    assert (hp.seed, hp.device, hp.hidden_size) == (7, "cpu", 16)


def test_exponent_floats_read_as_numbers(tmp_path: Path):
    # PyYAML alone reads `1e-3` as a string; experiment files read it as a number everywhere
    path = write(tmp_path, MINIMAL + "  lr: 1e-3\nregimes:\n  params: {vol_quantile: 5e-1}\n")
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
    (line,) = error_lines(minimal, [override])
    assert line.startswith(f"--set {override}: {path}: unknown key")
    assert valid in line


def test_override_did_you_mean(minimal: Path):
    (line,) = error_lines(minimal, ["env.windw=8"])
    assert "did you mean 'window'?" in line


@pytest.mark.parametrize("bad", ["agent.lr", "=3", "agent..lr=3"])
def test_malformed_override(minimal: Path, bad):
    (line,) = error_lines(minimal, [bad])
    assert "KEY=VALUE" in line


def test_override_into_a_non_section(minimal: Path):
    (line,) = error_lines(minimal, ["data.sources.x=1"])
    assert "data.sources" in line and "not a section" in line


def test_bad_override_value_names_the_override(minimal: Path):
    (line,) = error_lines(minimal, ["agent.lr=fast"])
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
    lines = error_lines(write(tmp_path, MINIMAL + snippet))
    (line,) = [ln for ln in lines if f": {path}: unknown key" in ln]
    assert valid in line


def test_unknown_agent_hyperparameter_lists_the_algos_keys(tmp_path: Path):
    lines = error_lines(write(tmp_path, MINIMAL + "  hiden_size: 32\n"))
    (line,) = lines
    assert ": agent.hiden_size: unknown key 'hiden_size' (did you mean 'hidden_size'?)" in line
    assert "episodes_per_trial" in line  # RL²'s own keys are listed
    assert line.startswith(f"{tmp_path / 'exp.yaml'}:9:")  # with the line number


def test_agent_seed_points_to_the_top_level_seed(tmp_path: Path):
    (line,) = error_lines(write(tmp_path, MINIMAL + "  seed: 3\n"))
    assert "agent.seed:" in line and "top-level `seed`" in line


def test_unknown_regime_param_and_strategy_param(tmp_path: Path):
    text = MINIMAL + "regimes:\n  params: {trend_windw: 5}\nevaluation:\n  strategy_params:\n    sma_cross: {fastt: 3}\n"
    lines = error_lines(write(tmp_path, text))
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
        ("agent.algo=dqn", "agent.algo", "'rl2', 'maml', 'ppo' or 'rppo'"),
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
    lines = error_lines(minimal, override_list)
    assert any(f": {path}: " in ln and words in ln for ln in lines), lines


def test_several_problems_one_line_each(tmp_path: Path):
    text = MINIMAL.replace("iterations: 3", "iterations: 0") + "env:\n  window: -2\n  fees: lots\n"
    lines = error_lines(write(tmp_path, text))
    assert len(lines) == 3
    assert {ln.split(": ")[1] for ln in lines} == {"env.window", "env.fees", "agent.iterations"}
    assert all(ln.startswith(str(tmp_path / "exp.yaml") + ":") for ln in lines)


def test_missing_required_keys(tmp_path: Path):
    lines = error_lines(write(tmp_path, "name: x\ndata:\n  sources: sample:sp500\n"))
    paths = sorted(ln.split(": ")[1] for ln in lines)
    assert paths == ["agent", "data.test_start", "data.train_end"]
    assert all("required key is missing" in ln for ln in lines)


def test_conflicting_env_features(tmp_path: Path):
    text = MINIMAL + "features: [realised_vol]\nenv:\n  features: [volume_z]\n"
    (line,) = error_lines(write(tmp_path, text))
    assert "env.features:" in line and "top-level" in line
    cfg = load_config(write(tmp_path, MINIMAL + "env:\n  features: [volume_z]\n", "b.yaml"))
    assert cfg.features == ["volume_z"] == cfg.env.features


def test_pooled_ppo_hyperparameters_are_checked_and_reach_the_baseline(minimal: Path, monkeypatch):
    cfg = load_config(minimal, ["evaluation.ppo={num_envs: 32, lr: 1.0e-4}"])
    assert cfg.evaluation.ppo == {"num_envs": 32, "lr": 1.0e-4}
    (line,) = error_lines(minimal, ["evaluation.ppo={num_env: 32}"])
    assert "evaluation.ppo.num_env" in line and "did you mean 'num_envs'?" in line
    (line,) = error_lines(minimal, ["evaluation.ppo={lr: -1}"])
    assert "evaluation.ppo.lr" in line
    (line,) = error_lines(minimal, ["evaluation.ppo={seed: 3}"])
    assert "evaluation.ppo.seed" in line and "unknown key" in line

    from fin_meta.pipeline.run_job import baseline_hparams

    hp = baseline_hparams(cfg, "ppo")
    assert (hp.num_envs, hp.lr, hp.seed, hp.device) == (32, 1.0e-4, cfg.seed, cfg.agent.device)
    assert baseline_hparams(load_config(minimal), "ppo").num_envs == 256  # PPOConfig default


def test_task_windows_default_to_start_conditioned():
    """Training windows are conditioned on the label at their start unless the legacy,
    future-leaking `inside` is asked for explicitly."""
    from fin_meta.config import load_config

    quickstart = Path(__file__).resolve().parents[1] / "experiments" / "quickstart.yaml"
    assert load_config(quickstart).regimes.task_windows == "start"
    assert load_config(quickstart, ["regimes.task_windows=inside"]).regimes.task_windows == "inside"
