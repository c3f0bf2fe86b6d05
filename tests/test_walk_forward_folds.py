"""Walk-forward folds (issue 13, item 2): `fin_meta.splits.walk_forward_folds` tiles the test
period with consecutive trade blocks, trains each fold only on bars at least `embargo` bars before
its block (expanding or rolling windows), takes its defaults in the data's bars; the
`evaluation.walk_forward` config section; bad settings are one line (exit 2 at the CLI) before any
training and before any store is created."""

from __future__ import annotations

import pandas as pd
import pytest

from fin_meta.config.sections import EvaluationConfig, WalkForwardConfig
from fin_meta.errors import ConfigError, DataError
from fin_meta.splits import walk_forward_folds
from tests.pipeline_data import QUICKSTART
from tests.test_cli import cli, one_line_error
from tests.test_cli_run import SETS

DAYS = pd.bdate_range("2000-01-03", periods=1000, name="date")
"""A constructed daily calendar: 1,000 business days."""
TEST_START, TEST_END = DAYS[600], DAYS[949]  # a 350-bar test period, 50 bars after it


def _blocks(folds):
    return [f.trade for f in folds]


@pytest.mark.parametrize("refit", [1, 7, 100, 349, 350, 1000])
def test_trade_blocks_tile_the_test_period_exactly(refit):
    folds = walk_forward_folds(DAYS, test_start=TEST_START, test_end=TEST_END, refit_every=refit, embargo=5)
    traded = [i for a, b in _blocks(folds) for i in range(a, b)]
    assert traded == list(range(600, 950))  # every test bar once, in order, nothing outside
    assert all(b - a == refit for a, b in _blocks(folds)[:-1]) and 0 < folds[-1].trade[1] - folds[-1].trade[0] <= refit
    assert [f.number for f in folds] == list(range(len(folds))) and len(folds) == -(-350 // refit)


@pytest.mark.parametrize("embargo", [0, 1, 21, 300])
def test_no_fold_trains_on_a_bar_within_the_embargo_of_its_block(embargo):
    folds = walk_forward_folds(DAYS, test_start=TEST_START, test_end=TEST_END, refit_every=60, embargo=embargo)
    for fold in folds:
        (a, b), (c, _) = fold.train, fold.trade
        assert b == c - embargo and a < b  # the last training bar is b - 1: embargo bars strictly between


def test_expanding_window_grows_from_the_first_training_bar():
    folds = walk_forward_folds(DAYS, test_start=TEST_START, test_end=TEST_END, refit_every=100, embargo=10,
                               train_start=DAYS[50])
    assert [f.train for f in folds] == [(50, 590), (50, 690), (50, 790), (50, 890)]


def test_rolling_window_keeps_the_latest_bars_and_is_cut_at_the_first_training_bar():
    folds = walk_forward_folds(DAYS, test_start=TEST_START, test_end=TEST_END, refit_every=100, embargo=10,
                               train_bars=250)
    assert [f.train for f in folds] == [(340, 590), (440, 690), (540, 790), (640, 890)]
    cut = walk_forward_folds(DAYS, test_start=TEST_START, test_end=TEST_END, refit_every=100, embargo=10,
                             train_bars=560, train_start=DAYS[40])
    assert [f.train for f in cut] == [(40, 590), (130, 690), (230, 790), (330, 890)]


def test_defaults_are_a_year_and_a_month_of_the_datas_bars():
    daily = walk_forward_folds(DAYS, test_start=TEST_START)  # to the last bar: 400 test bars
    assert _blocks(daily) == [(600, 852), (852, 1000)] and daily[0].train == (0, 579)  # 252-bar blocks, 21 embargo
    weeks = pd.date_range("2000-01-07", periods=400, freq="W-FRI", name="date")
    weekly = walk_forward_folds(weeks, test_start=weeks[300])
    assert _blocks(weekly) == [(300, 352), (352, 400)] and weekly[0].train == (0, 296)  # 52 and 4 weekly bars
    given = walk_forward_folds(weeks, test_start=weeks[300], refit_every=30, embargo=2, per_year=252)
    assert _blocks(given)[0] == (300, 330) and given[0].train == (0, 298)  # given: bars, whatever the frequency
    as_daily = walk_forward_folds(weeks, test_start=weeks[300], per_year=252)  # an override of bars per year
    assert _blocks(as_daily) == [(300, 400)] and as_daily[0].train == (0, 279)


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"refit_every": 0}, ConfigError, "evaluation.walk_forward.refit_every=0 must be >= 1 bar"),
        ({"train_bars": 0}, ConfigError, "evaluation.walk_forward.train_bars=0 must be >= 1 bar"),
        ({"embargo": -1}, ConfigError, "evaluation.walk_forward.embargo=-1 must be >= 0 bars"),
        ({"embargo": 600}, ConfigError, "lower evaluation.walk_forward.embargo or start the test period later"),
        ({"embargo": 550, "train_start": DAYS[50]}, ConfigError, "only 550 bars lie between"),
        ({"test_start": DAYS[-1] + pd.Timedelta(days=30)}, DataError, "the test period is empty"),
    ],
    ids=["refit-0", "train-bars-0", "embargo-negative", "embargo-too-big", "embargo-too-big-after-start",
         "empty-test"],
)
def test_bad_settings_are_one_line(kwargs, error, needle):
    args = {"test_start": TEST_START, "test_end": TEST_END, **kwargs}
    with pytest.raises(error) as info:
        walk_forward_folds(DAYS, **args)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_describe_names_dates_and_bars():
    fold = walk_forward_folds(DAYS, test_start=TEST_START, test_end=TEST_END, refit_every=100, embargo=10)[1]
    assert fold.describe(DAYS) == (f"train {DAYS[0].date()} .. {DAYS[689].date()} (690 bars), "
                                   f"trade {DAYS[700].date()} .. {DAYS[799].date()} (100 bars)")


def test_config_section_takes_defaults_and_rejects_bad_values():
    assert EvaluationConfig().walk_forward is None  # off unless asked
    wf = EvaluationConfig.model_validate({"walk_forward": {}}).walk_forward
    assert wf == WalkForwardConfig(refit_every=None, train_bars=None, embargo=None, warm_start=True)
    for bad in ({"refit_every": 0}, {"train_bars": 0}, {"embargo": -1}, {"refit": 5}, {"warm_start": "maybe"},
                {"refit_iterations": 0}):
        with pytest.raises(ValueError):
            EvaluationConfig.model_validate({"walk_forward": bad})
    with pytest.raises(ValueError, match="refit_iterations shortens warm-started refits: set warm_start: true"):
        EvaluationConfig.model_validate({"walk_forward": {"warm_start": False, "refit_iterations": 5}})


@pytest.mark.parametrize(
    ("sets", "needle"),
    [
        (["evaluation.walk_forward={refit_every: 0}"],
         "evaluation.walk_forward.refit_every: input should be greater than or equal to 1"),
        (["evaluation.walk_forward={refit: 63}"], "did you mean 'refit_every'"),
        (["evaluation.walk_forward={embargo: 5000}"], "lower evaluation.walk_forward.embargo"),
        (["evaluation.walk_forward={}", "data.train_end=2008-12-31", "data.val_start=2009-02-03"],
         "a validation period is not used: remove data.val_start"),
    ],
    ids=["refit-0", "unknown-key", "embargo-too-big", "with-validation"],
)
def test_bad_walk_forward_settings_exit_2_in_one_line_before_training(capsys, tmp_path, monkeypatch, sets, needle):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "run", str(QUICKSTART), *SETS, *[a for s in sets for a in ("--set", s)])
    assert code == 2 and needle in one_line_error(err)
    assert "[3/5]" not in out  # training never started
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no run left FAILED
