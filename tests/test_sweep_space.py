"""The search-space file of `fin-meta sweep` and the checks made before any trial runs (issue 14):
distributions, seeded draws, every problem of a space file as one `file:line` line (exit 2 at the
CLI, nothing written), an experiment without a validation period refused, Ray missing, the
study's storage beside `mlflow.db`, and a continued sweep whose settings changed refused."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from fin_meta.cli import main
from fin_meta.config import config_to_dict, load_config
from fin_meta.errors import ConfigError
from fin_meta.sweeps.job import RAY_HINT, _existing_parent
from fin_meta.sweeps.objective import SWEEP_TAG
from fin_meta.sweeps.space import load_space, trial_data
from fin_meta.sweeps.study import sampler, storage_url
from fin_meta.tracking import start_run
from fin_meta.tracking.nesting import ROLE_TAG
from fin_meta.tracking.store import open_client
from tests.sweep_data import EXPERIMENT, SPACE, SWEEP_SETS, write_space

ALL_KINDS = """# every distribution
agent.lr: {loguniform: [1.0e-4, 1.0e-2]}
agent.num_envs: {loguniform: [8, 64]}
env.adjust: {uniform: [0.05, 1.0]}
agent.hidden_size: {int: [16, 64]}
agent.epochs: {step: [2, 8, 3]}
env.fees: {step: [0.0, 0.001, 0.0004]}
regimes.min_length: {choice: [10, 20]}
env.action: {choice: [continuous, discrete]}
"""


@pytest.fixture(scope="module")
def base():
    return config_to_dict(load_config(EXPERIMENT, overrides=SWEEP_SETS))


def test_a_space_file_gives_optuna_distributions(tmp_path, base):
    space = load_space(write_space(tmp_path, ALL_KINDS), base)
    assert space.distributions() == {
        "agent.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "agent.num_envs": IntDistribution(8, 64, log=True),
        "env.adjust": FloatDistribution(0.05, 1.0),
        "agent.hidden_size": IntDistribution(16, 64),
        "agent.epochs": IntDistribution(2, 8, step=3),
        "env.fees": FloatDistribution(0.0, 0.0008, step=0.0004),  # the grid's last point
        "regimes.min_length": CategoricalDistribution([10, 20]),
        "env.action": CategoricalDistribution(["continuous", "discrete"]),
    }
    assert [p.line for p in space.params] == list(range(2, 10))
    assert space.describe()["sweep.space.agent.epochs"] == "step[2, 8, 3]"


def draws(space, seed: int, existing: int = 0, n: int = 12) -> list[dict]:
    study = optuna.create_study(sampler=sampler(seed, existing), direction="maximize")
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(space.suggest(trial))
        study.tell(trial, 0.0)
    return out


def test_draws_stay_in_their_distributions_and_repeat_with_the_seed(tmp_path, base):
    space = load_space(write_space(tmp_path, ALL_KINDS), base)
    first = draws(space, seed=3)
    for values in first:
        assert 1e-4 <= values["agent.lr"] <= 1e-2 and 0.05 <= values["env.adjust"] <= 1.0
        assert isinstance(values["agent.hidden_size"], int) and 16 <= values["agent.hidden_size"] <= 64
        assert values["agent.epochs"] in {2, 5, 8} and isinstance(values["agent.num_envs"], int)
        assert min(abs(values["env.fees"] - g) for g in (0.0, 0.0004, 0.0008)) < 1e-12
        assert values["env.action"] in {"continuous", "discrete"}
        trial_cfg = trial_data(base, values)  # the values land in the experiment's config
        assert trial_cfg["agent"]["lr"] == values["agent.lr"] and trial_cfg["env"]["action"] == values["env.action"]
    assert draws(space, seed=3) == first
    assert draws(space, seed=3, existing=12)[0] != first[0]  # a continued sweep draws anew


BAD = [
    ("agent.lr: {logunifrom: [1.0e-4, 1.0e-2]}", "unknown distribution 'logunifrom' (did you mean 'loguniform'?)"),
    ("agent.hiden_size: {int: [16, 64]}", "unknown key 'hiden_size' (did you mean 'hidden_size'?)"),
    ("env.adjust: {uniform: [0.0, 1.0]}", "the low end 0.0 gives an invalid experiment: env.adjust: input should be"),
    ("regimes.method: {choice: [trend_vol, hmm]}", "the choice 'hmm' gives an invalid experiment"),
    ("seed: {int: [0, 4]}", "cannot be swept: the seed decides luck"),
    ("data.val_start: {choice: [2010-02-03]}", "cannot be swept: the data and its periods"),
    ("env.fees: {uniform: [0.001, 0.0]}", "uniform takes [low, high], low < high"),
    ("agent.hidden_size: {int: [16.5, 64]}", "int takes [low, high], integers"),
    ("agent.lr: {loguniform: [0, 0.1]}", "loguniform takes [low, high], 0 < low < high"),
    ("env.action: {choice: [[continuous], discrete]}", "each choice must be a single value"),
    ("agent: {lr: {uniform: [0.1, 0.2]}}", "is a section: write one dotted key a line, e.g. agent.lr:"),
    ("agent.lr: 0.001", "expected one distribution"),
]


@pytest.mark.parametrize(("line", "expected"), BAD, ids=[b[1][:30] for b in BAD])
def test_each_problem_of_a_space_file_is_one_line_with_the_file_and_line(tmp_path, base, line, expected):
    path = write_space(tmp_path, f"# a comment\nagent.lr: {{loguniform: [1.0e-4, 1.0e-2]}}\n{line}\n"
                       if not line.startswith("agent.lr") else f"# a comment\n\n{line}\n")
    with pytest.raises(ConfigError) as err:
        load_space(path, base)
    (message,) = str(err.value).splitlines()
    assert message.startswith(f"{path}:3: {line.split(':')[0]}: ") and expected in message


def cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        main(args)
    return done.value.code


def sets(overrides: list[str]) -> list[str]:
    return [a for s in overrides for a in ("--set", s)]


def test_the_cli_refuses_a_bad_space_file_in_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = write_space(tmp_path, SPACE + "agent.hiden_size: {int: [16, 64]}\n")
    code = cli(["sweep", EXPERIMENT, "--space", str(space), "--tracking-uri", f"{tmp_path}/mlflow.db",
                *sets(SWEEP_SETS)])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and line.startswith(f"error: {space}:3: agent.hiden_size: unknown key 'hiden_size'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]  # no store, no study


def test_the_cli_refuses_an_experiment_without_a_validation_period(tmp_path, capsys):
    space = write_space(tmp_path)
    no_val = [s for s in SWEEP_SETS if not s.startswith(("data.val_start", "agent.eval_every"))]
    assert cli(["sweep", EXPERIMENT, "--space", str(space), *sets(no_val)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "a sweep needs a validation period" in line and "set data.val_start" in line


@pytest.mark.parametrize("extra", [["--address", "auto"], ["--gpus-per-trial", "0.5"], ["--backend", "grid"]])
def test_ray_options_need_the_ray_backend(tmp_path, capsys, extra):
    assert cli(["sweep", EXPERIMENT, "--space", str(write_space(tmp_path)), *extra, *sets(SWEEP_SETS)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_the_ray_backend_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: `import ray` raises ImportError
    monkeypatch.setitem(sys.modules, "ray.tune", None)
    code = cli(["sweep", EXPERIMENT, "--space", str(write_space(tmp_path)), "--backend", "ray",
                "--tracking-uri", f"{tmp_path}/mlflow.db", *sets(SWEEP_SETS)])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and line == f"error: {RAY_HINT}" and 'pip install "fin-meta[ray]"' in line
    assert not (tmp_path / "mlflow.db").exists()


def test_the_study_lives_beside_the_mlflow_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage_url(f"sqlite:///{tmp_path}/runs/mlflow.db") == f"sqlite:///{tmp_path}/runs/optuna.db"
    assert storage_url("http://mlflow.example:5000") == f"sqlite:///{tmp_path}/optuna.db"
    assert storage_url("x", "studies/s.db") == f"sqlite:///{tmp_path}/studies/s.db"
    assert storage_url("x", "postgresql://db/optuna") == "postgresql://db/optuna"


def test_a_continued_sweep_with_other_settings_is_refused(tracking_uri):
    params = {"agent.lr": "0.001", "sweep.space.env.adjust": "uniform[0.2, 1.0]"}
    with start_run("quickstart", params=params, tags={ROLE_TAG: "parent", SWEEP_TAG: "s"},
                   tracking_uri=tracking_uri) as tracker:
        pass
    client = open_client(tracking_uri)
    experiment = client.get_experiment_by_name("quickstart").experiment_id
    assert _existing_parent(client, experiment, "s", params) == tracker.run_id
    assert _existing_parent(client, experiment, "other", params) is None
    changed = {**params, "sweep.space.env.adjust": "uniform[0.1, 1.0]"}
    with pytest.raises(ConfigError, match=r"sweep 's' was started with other settings \(sweep.space.env.adjust: "
                       r"'uniform\[0.2, 1.0\]' -> 'uniform\[0.1, 1.0\]'\).*--name"):
        _existing_parent(client, experiment, "s", changed)


@pytest.mark.parametrize("path", sorted((Path(EXPERIMENT).parent / "spaces").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_space_file_loads_against_the_quickstart(path, base):
    space = load_space(path, base)
    assert space.params and all(p.line for p in space.params)
