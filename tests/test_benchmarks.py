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


def test_adaptation_scale_moves_every_learned_contender_and_set_still_wins() -> None:
    bench = _script("adaptation")
    base, triple = bench.budget(quick=False), bench.budget(quick=False, scale=3)
    assert {k: 3 * v.iterations for k, v in base.learned.items()} == {k: v.iterations for k, v in triple.learned.items()}
    assert bench.apply_overrides(triple, ["iterations.rl2=10"]).learned["rl2"].iterations == 10
    with pytest.raises(SystemExit, match="--scale"):
        bench.main(["--scale", "0"])


def test_adaptation_quick_run_prints_the_table_and_targets(capsys) -> None:
    bench = _script("adaptation")
    bench.main(["--quick", "--seeds", "0", "--resamples", "100", "--agents", "ppo,maml",
                "--set", "iterations.ppo=2", "--set", "iterations.maml=2"])
    out = capsys.readouterr().out
    for needle in ("Bayes filter accuracy", "Net Sharpe", "bayes_full", "classifier", "maml - ppo",
                   "of the full-history Bayes filter", "by true regime", "Honest adaptation curve", "Rise of the curve",
                   "env-steps/s", "wall time", "host: "):
        assert needle in out, needle


def _point(sets: list[str], **val: tuple[float, float]) -> dict:
    """A `cost_defaults.run_point` result: {learned: (validation net Sharpe, turnover/yr)}."""
    rows = {}
    for learned, (sharpe, turnover) in val.items():
        rows[("sp500", learned, "val")] = {"sharpe": sharpe, "gross_sharpe": sharpe + 0.1, "turnover": turnover,
                                           "cost_drag": 0.01}
        rows[("sp500", learned, "train")] = {"sharpe": 9.0, "gross_sharpe": 9.1, "turnover": turnover, "cost_drag": 0.01}
    return {"sets": sets, "rows": rows, "wall_s": 60.0, "algo": "rl2", "timings": {}}


def test_cost_defaults_grid_is_every_combination_and_bad_specs_are_refused() -> None:
    bench = _script("cost_defaults")
    points = bench.grid_points(["env.adjust=1.0,0.2", "env.train_cost_multiplier=1,5"])
    assert points == [["env.adjust=1.0", "env.train_cost_multiplier=1"], ["env.adjust=1.0", "env.train_cost_multiplier=5"],
                      ["env.adjust=0.2", "env.train_cost_multiplier=1"], ["env.adjust=0.2", "env.train_cost_multiplier=5"]]
    with pytest.raises(SystemExit, match="KEY=V1,V2"):
        bench.grid_points(["env.adjust"])


def test_cost_defaults_suggests_the_best_calm_point_and_shows_ppos_own_best() -> None:
    bench = _script("cost_defaults")
    results = [_point(["a=1"], rl2=(0.9, 40.0), ppo=(0.2, 5.0)),   # best Sharpe, but trades too much
               _point(["a=2"], rl2=(0.5, 8.0), ppo=(0.1, 6.0)),
               _point(["a=3"], rl2=(0.3, 4.0), ppo=(0.7, 3.0))]
    text = bench.report(results, max_turnover=12.0)
    assert "suggested (best rl2 validation net Sharpe among points with turnover <= 12/yr): a=2" in text
    assert "pooled PPO's own best point: a=3 (validation net Sharpe 0.70; at the suggested point 0.10)" in text
    assert "9.00" in text  # the in-sample Sharpe beside the validation figures
    loose = bench.report(results[:1], max_turnover=12.0)
    assert "no point kept turnover low" in loose and "a=1" in loose


def test_headline_best_rule_is_chosen_on_validation_else_in_sample_never_on_test() -> None:
    from types import SimpleNamespace

    headline = _script("headline_table")

    def run(**metrics: float):
        return SimpleNamespace(data=SimpleNamespace(metrics={k.replace("__", "."): v for k, v in metrics.items()}))

    columns = ["agent", "ppo", "buy_and_hold", "momentum", "sma_cross"]
    with_val = [run(val__sharpe__momentum=0.2, val__sharpe__sma_cross=0.5, test__sharpe__momentum=2.0,
                    test__sharpe__sma_cross=-1.0, val__sharpe__ppo=9.0, val__sharpe__buy_and_hold=9.0)]
    assert headline.best_rule(with_val, columns) == "sma_cross"
    in_sample = [run(train__sharpe__momentum=0.9, train__sharpe__sma_cross=0.1, test__sharpe__sma_cross=3.0)]
    assert headline.best_rule(in_sample, columns) == "momentum"
    assert headline.best_rule(with_val, ["agent", "ppo", "buy_and_hold"]) is None


def test_headline_without_a_store_says_what_to_run_and_refuses_named_experiments(tmp_path, capsys) -> None:
    headline = _script("headline_table")
    uri = f"sqlite:///{tmp_path}/none/mlflow.db"
    headline.main(["--tracking-uri", uri])  # as `make bench` runs it: nothing to show, not an error
    assert "no finished seed set" in capsys.readouterr().out
    with pytest.raises(SystemExit) as bad:
        headline.main(["sp500_rl2", "--tracking-uri", uri])
    assert bad.value.code == 2 and "no MLflow store" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()  # nothing created
