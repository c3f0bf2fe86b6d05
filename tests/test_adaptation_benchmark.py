"""The adaptation benchmark's parts (benchmarks/adaptation_seed.py, benchmarks/adaptation.py) on
a micro budget: every contender is scored on the same bars, the ceilings and the classifier
control are causal, and seeds never share paths."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from adaptation import budget, by_regime, main, parse_seeds, sharpe_table, with_features  # noqa: E402
from adaptation_seed import (  # noqa: E402
    Budget,
    Learned,
    bayes_positions,
    classifier_positions,
    path_seeds,
    run_seed,
    score_seed,
    train_contender,
)

from fin_meta.data import synthetic_regimes  # noqa: E402


def _perturbed(prices: pd.DataFrame, t: int) -> pd.DataFrame:
    future = prices.copy()
    noise = np.exp(np.random.default_rng(0).normal(0, 0.03, len(prices) - t - 1))
    future.iloc[t + 1 :, :4] = future.iloc[t + 1 :, :4].to_numpy() * noise[:, None]
    return future


@pytest.mark.parametrize("window", [None, 32])
def test_bayes_ceiling_is_causal(window):
    prices, _ = synthetic_regimes(600, seed=1)
    t = 400
    pos = bayes_positions(prices, "context", window)
    pert = bayes_positions(_perturbed(prices, t), "context", window)
    np.testing.assert_array_equal(pos.iloc[: t + 1].to_numpy(), pert.iloc[: t + 1].to_numpy())
    assert not pos.iloc[t + 1 :].equals(pert.iloc[t + 1 :])


def test_classifier_control_is_causal_and_learns_the_easy_preset():
    train = [synthetic_regimes(1500, seed=s, preset="easy") for s in (1, 2)]
    test, labels = synthetic_regimes(800, seed=3, preset="easy")
    t = 500
    (pos,) = classifier_positions(train, [test], "easy", 32)
    (pert,) = classifier_positions(train, [_perturbed(test, t)], "easy", 32)
    np.testing.assert_array_equal(pos.iloc[: t + 1].to_numpy(), pert.iloc[: t + 1].to_numpy())
    assert (pos.iloc[:32] == 0).all()


def test_seeds_never_share_paths_and_parse():
    b = Budget(n_train=3, n_test=2, train_bars=300, test_bars=300, learned={})
    used = [set(sum(path_seeds(s, b), [])) for s in (0, 1, 4, 100)]
    assert all(len(u) == 5 for u in used)
    assert all(not (a & c) for i, a in enumerate(used) for c in used[i + 1 :])
    assert parse_seeds("0-2,5") == [0, 1, 2, 5] and parse_seeds("7") == [7]


def test_one_seed_scores_every_contender_on_the_same_bars():
    b = Budget(n_train=2, n_test=1, train_bars=500, test_bars=500,
               learned={"ppo": Learned("ppo", 2, {"num_envs": 8})})
    res = run_seed(0, "context", b)
    assert {"oracle", "bayes_full", "bayes_window", "classifier", "buy_and_hold", "ppo"} <= set(res.returns)
    assert len(res.returns) == 499 and res.since_change.shape == (499,)
    assert res.returns.notna().all().all()
    assert 0.0 <= res.accuracy["window"] <= 1.0 and 0.0 <= res.accuracy["full"] <= 1.0
    table = sharpe_table([res, dataclasses.replace(res, seed=1)])
    assert table["sd"].abs().max() == 0.0 and list(table.columns[:2]) == ["mean", "sd"]
    _, labels = synthetic_regimes(500, seed=path_seeds(0, b)[1][0], preset="context")
    np.testing.assert_array_equal(res.regime, labels.to_numpy()[1:])  # the test path's true regime per bar


def test_by_regime_averages_each_contenders_return_within_each_true_regime():
    returns = pd.DataFrame({"oracle": [1e-4, 3e-4, -2e-4, 0.0], "ppo": [0.0, 2e-4, 2e-4, 4e-4]})
    res = dataclasses.replace(_toy_result(returns), regime=np.array([0, 0, 3, 3]))
    table = by_regime([res], "context")
    assert list(table.columns) == ["bull", "reversal"] and set(table.index) == {"oracle", "ppo"}
    np.testing.assert_allclose(table.loc["oracle"].to_numpy(), [2.0, -1.0])  # bp per bar
    np.testing.assert_allclose(table.loc["ppo"].to_numpy(), [1.0, 3.0])


def _toy_result(returns: pd.DataFrame):
    from adaptation_seed import SeedResult

    n = len(returns)
    return SeedResult(0, returns, np.arange(n), np.zeros(n, dtype=int), {"window": 0.5, "full": 0.5}, {}, {},
                      "momentum")


def test_a_contender_trains_the_same_alone_as_after_the_others():
    """The benchmark hands each (seed, contender) to a worker on its own: a contender must not
    depend on which others were trained before it in the same process."""
    learned = {"ppo": Learned("ppo", 2, {"num_envs": 8}), "maml": Learned("maml", 2, {"meta_batch_size": 4})}
    b = Budget(n_train=2, n_test=2, train_bars=400, test_bars=400, learned=learned)
    together = run_seed(0, "context", b)
    alone = train_contender(0, "context", b, "maml")
    scored = score_seed(0, "context", b, {"maml": alone})
    np.testing.assert_array_equal(scored.returns["maml"].to_numpy(), together.returns["maml"].to_numpy())
    assert len(alone.positions) == 2 and alone.wall_s >= alone.train_s > 0
    assert scored.returns["maml"].abs().sum() > 0  # it traded: the equality is not two idle agents


def test_features_option_replaces_the_base_and_keeps_each_contenders_extras():
    b = with_features(budget(False), ("realised_vol", "lag_product"))
    assert b.learned["rl2"].features == ("realised_vol", "lag_product")
    assert b.learned["ppo_regime_probs"].features == ("realised_vol", "lag_product", "regime_probs")
    with pytest.raises(SystemExit, match="unknown"):
        with_features(b, ("lag_produkt",))
    with pytest.raises(SystemExit, match="at least 1"):
        main(["--quick", "--test-paths", "0"])
