"""One seed of the adaptation benchmark (`benchmarks/adaptation.py`): generate its training and
test paths, train every learned contender, compute every contender's net per-bar returns on the
test paths (what it really trades, walked forward over whole paths) and the Bayes-filter
accuracies. Split in tasks (`train_contender` per learned contender, then `score_seed`) that
`benchmarks/adaptation.py` hands to worker processes, so everything they return is plain data;
`run_seed` runs them all here."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fin_meta.data import synthetic_regimes
from fin_meta.metrics import annualised_sharpe
from fin_meta.regimes.bayes import filtered_labels, regime_posterior
from fin_meta.regimes.segments import bars_since_change
from fin_meta.seeding import seed_everything
from fin_meta.sources.oracle import oracle_positions
from fin_meta.tasks import TaskSampler
from strategies import available_strategies, strategy_positions

FEES, SLIPPAGE = 5e-4, 5e-4
WINDOW = 32
"""Bars an agent observes (its window); the window-only Bayes ceiling uses the same."""
BASE_FEATURES = ("realised_vol",)
"""The per-bar features every learned contender observes besides the log return (control (a)
adds `regime_probs`)."""
REGIME_FIT_PATHS = 24
"""Control (a)'s HMM is fitted on the first 24 training paths (60k bars: hmmlearn's EM on all
120 took ~6 of a seed's ~11 core-minutes); still 20x the bars of a real training period."""


@dataclass(frozen=True)
class Learned:
    """A learned contender: an algorithm with overrides of the budget's env and hparams."""

    algo: str
    iterations: int
    hparams: dict[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = BASE_FEATURES
    meta: bool = False
    """True for meta-learners (RL², MAML); False for the controls."""


@dataclass(frozen=True)
class Budget:
    """Sizes of one seed's work."""

    n_train: int
    n_test: int
    train_bars: int
    test_bars: int
    learned: dict[str, Learned]


@dataclass
class SeedResult:
    """What one seed hands back: test returns (bars x contenders, paths concatenated, bar 0 of
    each path dropped), the true regime and bars since it changed (per bar), accuracies and
    timings."""

    seed: int
    returns: pd.DataFrame
    since_change: np.ndarray
    regime: np.ndarray
    accuracy: dict[str, float]
    train_s: dict[str, float]
    env_steps_per_s: dict[str, float]
    rule: str
    wall_s: float = 0.0


def path_seeds(seed: int, budget: Budget) -> tuple[list[int], list[int]]:
    """Training and test path seeds of a benchmark seed: disjoint, and disjoint across seeds."""
    base = 100_000 * (seed + 1)
    return [base + i for i in range(budget.n_train)], [base + 50_000 + i for i in range(budget.n_test)]


def bayes_labels(prices: pd.DataFrame, preset: str, window: int | None) -> pd.Series:
    """The Bayes filter's most likely regime per bar (true parameters; last `window` bars or all)."""
    return filtered_labels(regime_posterior(prices, preset, window=window))


def bayes_positions(prices: pd.DataFrame, preset: str, window: int | None) -> pd.Series:
    """The Bayes ceiling as a trader: the oracle's rule applied to the filter's most likely regime."""
    return oracle_positions(prices, bayes_labels(prices, preset, window), preset)


def _window_stats(prices: pd.DataFrame, window: int) -> np.ndarray:
    """Statistics of the last `window` log returns per bar (causal): mean, std, lag-1
    autocorrelation, mean of r[t] * r[t-1], last return."""
    r = pd.Series(np.r_[0.0, np.diff(np.log(prices["close"].to_numpy()))])
    roll = r.rolling(window, min_periods=2)
    cross = (r * r.shift(1)).rolling(window, min_periods=2).mean()
    auto = r.rolling(window, min_periods=3).corr(r.shift(1))
    return np.column_stack([roll.mean(), roll.std(), auto, cross, r]).astype(np.float64)


def classifier_positions(train: list[tuple[pd.DataFrame, pd.Series]], test: list[pd.DataFrame],
                         preset: str, window: int) -> list[pd.Series]:
    """Control (b): a logistic classifier of the true training label on statistics of the last
    `window` bars, then the oracle's rule on its predicted regime (no RL, no memory)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.vstack([_window_stats(p, window)[window:] for p, _ in train])
    y = np.concatenate([lab.to_numpy()[window:] for _, lab in train])
    keep = np.isfinite(x).all(axis=1)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x[keep], y[keep])
    out = []
    for prices in test:
        stats = np.nan_to_num(_window_stats(prices, window))
        labels = pd.Series(model.predict(stats), index=prices.index, name="regime")
        labels.iloc[:window] = -1  # not enough bars yet: flat
        out.append(oracle_positions(prices, labels, preset))
    return out


def best_rule(train: list[tuple[pd.DataFrame, pd.Series]]) -> str:
    """The rule strategy (default parameters) with the best net Sharpe on the TRAINING paths."""
    from fin_meta.backtest.engine import backtest

    names = sorted(available_strategies())
    returns = [backtest(p, pd.DataFrame({n: strategy_positions(n, p) for n in names}), fees=FEES,
                        slippage=SLIPPAGE).returns for p, _ in train]
    return names[int(np.nanargmax(annualised_sharpe(pd.concat(returns).to_numpy())))]


def _train(name: str, spec: Learned, sampler: TaskSampler, train_frames: list[pd.DataFrame],
           device: str, seed: int) -> tuple[Any, float, float]:
    from fin_meta.agents import make_agent
    from fin_meta.envs.config import EnvConfig
    from fin_meta.envs.regime_features import fit_regime_features

    env = EnvConfig(window=WINDOW, features=list(spec.features), fees=FEES, slippage=SLIPPAGE)
    env = fit_regime_features(env, train_frames[:REGIME_FIT_PATHS])  # control (a): HMM on training paths
    agent = make_agent(spec.algo, env, {**spec.hparams, "device": device, "seed": seed})
    t0 = time.perf_counter()
    history = agent.fit(sampler, iterations=spec.iterations, progress=False)
    wall = time.perf_counter() - t0
    return agent, wall, history[-1]["env_steps"] / wall


@dataclass
class Trained:
    """One learned contender of one seed: its positions on every test path (walked forward
    together), its training wall time (s) and throughput (env-steps/s), and the task's wall (s)."""

    name: str
    positions: list[pd.Series]
    train_s: float
    env_steps_per_s: float
    wall_s: float = 0.0


Paths = tuple[list[tuple[pd.DataFrame, pd.Series]], list[tuple[pd.DataFrame, pd.Series]]]
"""A seed's training and test paths, (prices, true labels) each."""


def seed_paths(seed: int, preset: str, budget: Budget) -> Paths:
    """The seed's training and test paths (`path_seeds`). The last seed's are kept: a worker
    usually runs several tasks of one seed in a row (1.7 s a generation at the default sizes)."""
    return _paths(seed, preset, budget.n_train, budget.n_test, budget.train_bars, budget.test_bars)


@functools.lru_cache(maxsize=1)
def _paths(seed: int, preset: str, n_train: int, n_test: int, train_bars: int, test_bars: int) -> Paths:
    sizes = Budget(n_train=n_train, n_test=n_test, train_bars=train_bars, test_bars=test_bars, learned={})
    train_seeds, test_seeds = path_seeds(seed, sizes)
    return ([synthetic_regimes(train_bars, seed=s, preset=preset) for s in train_seeds],
            [synthetic_regimes(test_bars, seed=s, preset=preset) for s in test_seeds])


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def train_contender(seed: int, preset: str, budget: Budget, name: str, device: str = "cpu",
                    threads: int | None = None) -> Trained:
    """Train learned contender `name` of `seed` and walk it over the seed's test paths. Seeded on
    its own (`seed_everything(seed)` first): a contender trains the same whether others were
    trained before it, in another process, or not at all."""
    _set_threads(threads)
    t_start = time.perf_counter()
    seed_everything(seed)
    train, test = seed_paths(seed, preset, budget)
    sampler = TaskSampler([p for p, _ in train], [lab for _, lab in train], episode_length=WINDOW,
                          window=WINDOW, min_segment=40)
    agent, train_s, speed = _train(name, budget.learned[name], sampler, [p for p, _ in train], device, seed)
    positions = agent.positions_batch([p for p, _ in test])  # all test paths walked together
    return Trained(name, positions, train_s, speed, time.perf_counter() - t_start)


def score_seed(seed: int, preset: str, budget: Budget, trained: dict[str, Trained]) -> SeedResult:
    """Score every contender of `seed` on its test paths, one vectorbt backtest a path: the
    learned ones' `trained` positions, and the rules, classifier, oracle and Bayes ceilings
    computed here. `wall_s` counts this and the contenders' training tasks."""
    from fin_meta.backtest.engine import backtest

    t_start = time.perf_counter()
    train, test = seed_paths(seed, preset, budget)
    rule = best_rule(train)
    classifier = classifier_positions(train, [p for p, _ in test], preset, WINDOW)
    frames, since, regime, hits = [], [], [], {"window": [], "full": []}
    for i, ((prices, labels), cls) in enumerate(zip(test, classifier, strict=True)):
        bayes = {"full": bayes_labels(prices, preset, None), "window": bayes_labels(prices, preset, WINDOW)}
        pos = {"oracle": oracle_positions(prices, labels, preset),  # the Bayes ceilings trade the oracle's rule
               "bayes_full": oracle_positions(prices, bayes["full"], preset),
               "bayes_window": oracle_positions(prices, bayes["window"], preset),
               "classifier": cls,
               f"rule:{rule}": strategy_positions(rule, prices),
               "buy_and_hold": pd.Series(1.0, index=prices.index)}
        for key, guess in bayes.items():
            hits[key].append((guess == labels).to_numpy())
        pos.update({name: t.positions[i] for name, t in trained.items()})
        res = backtest(prices, pd.DataFrame(pos), fees=FEES, slippage=SLIPPAGE)
        frames.append(res.returns.iloc[1:].reset_index(drop=True))  # bar 0 has no return yet
        since.append(bars_since_change(labels)[1:])
        regime.append(labels.to_numpy()[1:])
    accuracy = {k: float(np.concatenate(v).mean()) for k, v in hits.items()}
    wall = time.perf_counter() - t_start + sum(t.wall_s for t in trained.values())
    return SeedResult(seed, pd.concat(frames, ignore_index=True), np.concatenate(since), np.concatenate(regime),
                      accuracy,
                      {n: t.train_s for n, t in trained.items()},
                      {n: t.env_steps_per_s for n, t in trained.items()}, rule, wall)


def run_seed(seed: int, preset: str, budget: Budget, device: str = "cpu", threads: int | None = None) -> SeedResult:
    """Everything one benchmark seed measures (see the module docstring), in this process."""
    _set_threads(threads)
    trained = {name: train_contender(seed, preset, budget, name, device) for name in budget.learned}
    return score_seed(seed, preset, budget, trained)
