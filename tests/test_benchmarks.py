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
    b = bench.apply_overrides(bench.budget(quick=True), ["rl2.deploy_context=trial", "iterations.maml=3",
                                                         "maml.hidden_sizes=[8, 8]"])
    assert b.hparams["rl2"]["deploy_context"] == "trial"
    assert b.iterations["maml"] == 3 and b.hparams["maml"]["hidden_sizes"] == [8, 8]
    for bad in ("rl2", "rl2.x", "sac.lr=1"):
        with pytest.raises(SystemExit, match="--set"):
            bench.apply_overrides(bench.budget(quick=True), [bad])


def test_adaptation_quick_run_prints_the_table_and_targets(capsys) -> None:
    bench = _script("adaptation")
    bench.main(["--quick", "--agents", "ppo,maml", "--set", "iterations.ppo=2", "--set", "iterations.maml=2"])
    out = capsys.readouterr().out
    for needle in ("Held-out test Sharpe", "oracle", "maml: Sharpe / oracle", "maml - ppo Sharpe",
                   "adaptation curves", "env-steps/s", "wall time"):
        assert needle in out, needle
