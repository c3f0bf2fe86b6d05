"""What `run_experiment` checks before it trains (issue 10, items 2 and 8): a test period cut short
by the data is refused, the shortest test period follows the bar frequency, a bad strategy or
regime parameter fails before training and before any MLflow run exists, and a meta-test without
held-out segments says why.
"""

from __future__ import annotations

import pytest

from fin_meta.errors import ConfigError, DataError, StrategyError
from fin_meta.pipeline import run_job as pipeline
from fin_meta.pipeline.checks import check_test_length, held_out
from fin_meta.pipeline.run_job import run_experiment
from fin_meta.pipeline.stages import detect_labels, load_sources
from tests.pipeline_data import tiny_config

USER_STRATEGY = '''"""Long when the close is above its mean over `lookback` bars."""
DEFAULTS = {"lookback": 10}


def positions(prices, lookback=10):
    if lookback < 2:
        raise ValueError(f"lookback must be >= 2 bars, got {lookback}")
    close = prices["close"]
    return (close > close.rolling(lookback).mean()).astype(float)
'''


@pytest.fixture
def no_training(monkeypatch):
    """Make training (and so everything after it) fail loudly if it is ever reached."""

    def trained(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(pipeline, "train", trained)


def test_a_test_period_cut_short_by_the_data_is_refused(tmp_path, no_training):
    cfg = tiny_config("data.test_start=2018-11-01", "data.test_end=2020-12-31", uri=f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(ConfigError) as info:
        run_experiment(cfg, progress=False)
    assert str(info.value).startswith(
        "the test period of sample:sp500 has 40 bars (2018-11-01 .. 2018-12-31; test_end 2020-12-31 is after the "
        "last bar (2018-12-31): the test period is cut), fewer than evaluation.min_test_bars=252 (one year of "
        "daily bars)")
    assert list(tmp_path.iterdir()) == []  # no store, no run


def test_the_shortest_test_period_is_a_year_of_the_data_bars():
    periods = {"train_start": "2006-01-03", "train_end": "2010-12-31", "test_start": "2018-11-01",
               "test_end": None, "embargo": 21}
    monthly = load_sources(["sample:sp500"], periods, start="2006-01-03", bars_per_year=12)
    assert monthly[0].describe().startswith("sample:sp500: monthly bars (12 a year); train 2006-01-03 .. 2010-12-31")
    check_test_length(monthly, None)  # 40 bars >= a year of monthly bars
    daily = load_sources(["sample:sp500"], periods, start="2006-01-03")
    with pytest.raises(ConfigError, match="has 40 bars .* fewer than evaluation.min_test_bars=252"):
        check_test_length(daily, None)
    check_test_length(daily, 40)
    with pytest.raises(ConfigError, match=r"min_test_bars=41: move data.test_start earlier"):
        check_test_length(daily, 41)


@pytest.mark.parametrize("where", ["built-in", "user"])
def test_a_bad_strategy_parameter_fails_before_training(tmp_path, no_training, where):
    if where == "user":
        (tmp_path / "strategies").mkdir()
        (tmp_path / "strategies" / "above_mean.py").write_text(USER_STRATEGY)
        extra = [f"evaluation.strategies_dir={tmp_path / 'strategies'}", "evaluation.baselines=[above_mean]",
                 "evaluation.strategy_params={above_mean: {lookback: 1}}"]
        needle = r"strategy 'above_mean' \(.*above_mean.py, line 7\) raised ValueError: lookback must be >= 2"
    else:
        extra = ["evaluation.strategy_params={sma_cross: {fast: 60}}"]
        needle = "sma_cross"
    store = tmp_path / "store"
    store.mkdir()
    with pytest.raises(StrategyError, match=needle) as info:
        run_experiment(tiny_config(*extra, uri=f"sqlite:///{store}/mlflow.db"), progress=False)
    assert "\n" not in str(info.value)
    assert list(store.iterdir()) == []  # no store, no run left FAILED


def test_a_regime_window_too_long_for_the_data_fails_before_any_run(tmp_path, no_training):
    cfg = tiny_config("regimes.params={trend_window: 3000}", uri=f"sqlite:///{tmp_path}/mlflow.db")
    with pytest.raises(DataError, match="trend_window=3000 is 11.9 years"):
        run_experiment(cfg, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_meta_test_without_segments_says_why():
    lines: list[str] = []
    outcome = run_experiment(tiny_config("evaluation.adaptation_steps=[0, 30]"), echo=lines.append, progress=False)
    assert outcome.adaptation is None
    note = ("meta-test: no held-out segment of >= 651 bars in the test period (longest: "
            f"{outcome.meta_test_note.split('longest: ')[1].split(')')[0]}); it needs 630 bars of adaptation context")
    assert outcome.meta_test_note.startswith(note)
    step = next(i for i, line in enumerate(lines) if line.startswith("[2/5]"))
    assert lines[step + 1].strip() == outcome.meta_test_note  # said before training
    report: list[str] = []
    outcome.print_report(report.append)
    assert f"\n{outcome.meta_test_note}" in report

    cfg = tiny_config()  # the other reason: regimes.min_length longer than the test period
    sources = pipeline._load_sources(cfg)
    labels = [detect_labels(src, "trend_vol", {}, 20, hindsight_tasks=True).causal for src in sources]
    held = held_out(pipeline._make_agents(cfg), sources, labels, [0], min_length=400, episode_length=21)
    assert held.count == 0 and held.note.endswith("lower regimes.min_length or lengthen the test period")
    longest = int(held.note.split("longest: ")[1].split(")")[0])
    assert 0 < longest < 400
    assert held_out(pipeline._make_agents(cfg), sources, labels, [0], min_length=20, episode_length=21).note is None
