"""Bar frequency end to end: a monthly CSV is loaded with 12 bars a year (or the override), and
regime windows, regime statistics, the embargo and vol_target follow it; daily defaults stay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fin_meta.config.experiment import load_config
from fin_meta.data import describe_prices, load_prices
from fin_meta.errors import ConfigError, DataError
from fin_meta.frequency import ATTR
from fin_meta.regimes import WARMUP, detect_regimes, regime_stats, regime_summary
from fin_meta.regimes.hmm import HMMParams, hmm_features
from fin_meta.splits import split_periods
from strategies import strategy_positions
from tests.config_data import MINIMAL, write

N_MONTHS = 48


def _ohlcv(index: pd.DatetimeIndex, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.01, 0.06, len(index))))
    return pd.DataFrame(
        {"open": close, "high": close * 1.02, "low": close * 0.98, "close": close, "volume": 1e6},
        index=pd.DatetimeIndex(index, name="date"),
    )


@pytest.fixture
def monthly_csv(tmp_path: Path) -> Path:
    """48 month-end bars written as a user's CSV (Date, Open, ..., Volume)."""
    frame = _ohlcv(pd.date_range("2015-01-31", periods=N_MONTHS, freq="ME"), seed=0)
    path = tmp_path / "monthly.csv"
    frame.rename(columns=str.title).rename_axis("Date").to_csv(path)
    return path


@pytest.fixture
def monthly(monthly_csv: Path) -> pd.DataFrame:
    return load_prices(f"csv:{monthly_csv}")


def test_monthly_csv_records_12_bars_a_year(monthly: pd.DataFrame):
    assert len(monthly) == N_MONTHS
    assert monthly.attrs[ATTR] == 12.0
    info = describe_prices(monthly)  # what `fin-meta data show` prints
    assert (info["bars_per_year"], info["frequency"]) == (12.0, "monthly")
    sliced = load_prices(f"csv:{monthly.attrs['source'][4:]}", start="2018-06-01")
    assert len(sliced) == 7 and sliced.attrs[ATTR] == 12.0  # inferred before the cut


def test_bars_per_year_override_wins(monthly_csv: Path):
    given = load_prices(f"csv:{monthly_csv}", bars_per_year=6)
    assert given.attrs[ATTR] == 6.0
    assert describe_prices(given)["bars_per_year"] == 6.0
    both = load_prices([f"csv:{monthly_csv}", "synthetic:regimes"], bars_per_year=24,
                       **{"synthetic:regimes": {"n_bars": 300}})
    assert [frame.attrs[ATTR] for frame in both.values()] == [24.0, 24.0]
    with pytest.raises(DataError, match="bars_per_year=0"):
        load_prices(f"csv:{monthly_csv}", bars_per_year=0)


def test_daily_sources_record_252():
    assert load_prices("sample:sp500", start="2010-01-01", end="2010-12-31").attrs[ATTR] == 252.0


def test_trend_vol_defaults_are_durations_in_monthly_bars(monthly: pd.DataFrame):
    labels = detect_regimes(monthly)
    params = labels.attrs["params"]
    # a quarter of monthly bars for the trend and the history, a month (at least 2 bars) for vol
    assert (params["trend_window"], params["vol_window"], params["min_history"]) == (3, 2, 3)
    assert labels.attrs["bars_per_year"] == 12.0
    explicit = detect_regimes(monthly, trend_window=3, vol_window=2, min_history=3)
    pd.testing.assert_series_equal(labels, explicit)
    # volatility from bar 2, 3 of them by bar 4: the first label; the 63-bar default had none
    assert (labels.iloc[:4] == WARMUP).all() and (labels.iloc[4:] != WARMUP).all()


def test_daily_defaults_are_unchanged():
    prices = load_prices("sample:sp500", start="2010-01-01", end="2011-12-31")
    labels = detect_regimes(prices)
    assert {k: labels.attrs["params"][k] for k in ("trend_window", "vol_window", "min_history")} == {
        "trend_window": 63, "vol_window": 21, "min_history": 63,
    }
    pd.testing.assert_series_equal(labels, detect_regimes(prices, trend_window=63, vol_window=21, min_history=63))


def test_a_window_too_long_for_the_data_is_one_line_in_time_units(monthly: pd.DataFrame):
    with pytest.raises(DataError) as info:
        detect_regimes(monthly, trend_window=63)
    message = str(info.value)
    assert "\n" not in message
    assert message.endswith(
        "monthly bars: trend_window=63 is 5.25 years, longer than the 48 bars given; "
        "give a window in bars, e.g. trend_window=3"
    )
    with pytest.raises(DataError, match="the default trend_window=3 is 3 months, longer than the 2 bars"):
        detect_regimes(monthly.iloc[:2])
    with pytest.raises(DataError, match="monthly bars: vol_window=48 is 4 years, as long as the 48 bars"):
        detect_regimes(monthly, "hmm", vol_window=48)


def test_regime_stats_and_summary_annualise_with_12(monthly: pd.DataFrame):
    labels = pd.Series(np.r_[[WARMUP] * 4, np.tile([0, 1], 22)], index=monthly.index, name="regime")
    ret = monthly["close"].pct_change()
    stats = regime_stats(monthly, labels)
    for k in (0, 1):
        r = ret[labels == k]
        assert stats.loc[k, "annual_return"] == pytest.approx(r.mean() * 12, rel=1e-12)
        assert stats.loc[k, "annual_volatility"] == pytest.approx(r.std() * np.sqrt(12), rel=1e-12)
    summary = regime_summary(monthly, pd.Series(np.r_[[0] * 24, [1] * 24], index=monthly.index))
    assert summary["annual_volatility"].iloc[1] == pytest.approx(ret.iloc[24:].std() * np.sqrt(12), rel=1e-12)


def test_hmm_volatility_feature_annualises_with_12(monthly: pd.DataFrame):
    x = hmm_features(monthly["close"], HMMParams())  # default vol_window: a month, 2 monthly bars
    log_ret = np.log(monthly["close"]).diff()
    expected = np.log(log_ret.rolling(2).std() * np.sqrt(12))
    np.testing.assert_allclose(x[2:, 1], expected.iloc[2:], rtol=1e-12)
    assert np.isnan(x[:2, 1]).all()


def test_weekly_default_embargo_is_4_bars():
    weekly = _ohlcv(pd.date_range("2018-01-05", periods=120, freq="W-FRI"), seed=1)
    idx = weekly.index
    parts = split_periods(weekly, train_end=idx[49], test_start=idx[54])  # 4 bars between
    assert (len(parts["train"]), parts["test"].index[0]) == (50, idx[54])
    with pytest.raises(ConfigError, match="embargo needs 4 \\(the default: one month of weekly bars\\)"):
        split_periods(weekly, train_end=idx[49], test_start=idx[53])
    split_periods(weekly, train_end=idx[49], test_start=idx[51], embargo=1)  # given: in bars
    daily = _ohlcv(pd.bdate_range("2018-01-01", periods=120), seed=1)
    with pytest.raises(ConfigError, match="embargo needs 21 "):
        split_periods(daily, train_end=daily.index[49], test_start=daily.index[70])


def test_vol_target_on_monthly_data_annualises_with_sqrt_12(monthly: pd.DataFrame):
    pos = strategy_positions("vol_target", monthly, {"window": 6, "target_vol": 0.1, "max_position": 1.0})
    vol = np.log(monthly["close"]).diff().rolling(6).std() * np.sqrt(12)
    expected = (0.1 / vol).clip(upper=1.0).fillna(0.0)
    np.testing.assert_allclose(pos.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert (pos.iloc[6:] < 1.0).any()  # sqrt(252) would have scaled every bar down far more


def test_experiment_file_takes_bars_per_year_and_default_windows(tmp_path: Path):
    path = write(tmp_path, MINIMAL, "tiny.yaml")
    cfg = load_config(path, ["data.bars_per_year=12", "regimes.params.trend_window=null"])
    assert cfg.data.bars_per_year == 12.0 and cfg.data.embargo is None
    assert cfg.data.split_kwargs()["embargo"] is None
    with pytest.raises(ConfigError, match="data.bars_per_year"):
        load_config(path, ["data.bars_per_year=0"])
    with pytest.raises(ConfigError, match="trend_window"):
        load_config(path, ["regimes.params.trend_window=1"])
