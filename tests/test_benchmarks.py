"""The benchmark scripts run (smoke, tiny budgets) and parse their options; their figures are
printed by `make bench`, never asserted on here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def test_adaptation_overrides_set_hparams_and_budgets() -> None:
    bench = _script("adaptation")
    b = bench.apply_overrides(bench.budget(quick=True), ["rl2.deploy_context=trial", "iterations.maml=7",
                                                         "maml.hidden_sizes=[8, 8]"])
    assert b.learned["rl2"].hparams["deploy_context"] == "trial"
    assert b.learned["maml"].iterations == 7 and b.learned["maml"].hparams["hidden_sizes"] == [8, 8]
    assert b.learned["maml_no_adapt"].iterations != 7  # only the named contender moves
    for bad in ("rl2", "rl2.x", "sac.lr=1"):
        with pytest.raises(SystemExit, match="--set"):
            bench.apply_overrides(bench.budget(quick=True), [bad])


def test_adaptation_quick_run_prints_the_table_and_targets(capsys) -> None:
    bench = _script("adaptation")
    bench.main(["--quick", "--seeds", "0", "--resamples", "100", "--agents", "ppo,maml",
                "--set", "iterations.ppo=2", "--set", "iterations.maml=2"])
    out = capsys.readouterr().out
    for needle in ("Bayes filter accuracy", "Net Sharpe", "bayes_full", "classifier", "maml - ppo",
                   "of the full-history Bayes filter", "Honest adaptation curve", "Rise of the curve",
                   "env-steps/s", "wall time"):
        assert needle in out, needle
