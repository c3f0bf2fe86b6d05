"""load_prices: schemes, date selection, lists of sources, the data folder, describe_prices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fin_meta.constants import PRICE_COLUMNS
from fin_meta.data import describe_prices, load_prices, resolve_data_dir, synthetic_regimes
from fin_meta.errors import DataError


@pytest.mark.parametrize("name", ["sp500", "nasdaq"])
def test_samples_load_real_daily_bars_1999_to_2018(name):
    prices = load_prices(f"sample:{name}")
    assert list(prices.columns) == list(PRICE_COLUMNS)
    assert all(prices.dtypes == "float64")
    assert prices.index.name == "date" and prices.index.tz is None
    assert prices.index[0].year == 1999 and prices.index[-1].year == 2018
    assert 5000 < len(prices) < 5100  # ~252 trading days x 20 years
    assert prices.index.is_monotonic_increasing and prices.index.is_unique
    assert (prices["high"] >= prices["low"]).all()


def test_start_end_are_inclusive_dates():
    prices = load_prices("sample:sp500", start="2008-09-15", end="2008-09-19")
    assert [d.day for d in prices.index] == [15, 16, 17, 18, 19]
    full = load_prices("sample:sp500")
    pd.testing.assert_frame_equal(prices, full.loc["2008-09-15":"2008-09-19"])


def test_empty_range_says_what_the_data_covers():
    with pytest.raises(
        DataError,
        match=r"sample:sp500: no bars in 2030-01-01..end; the data covers 1999-01-04..2018-12-31",
    ):
        load_prices("sample:sp500", start="2030-01-01")


def test_start_after_end_and_bad_dates():
    with pytest.raises(DataError, match="start 2010-01-01 is after end 2009-01-01"):
        load_prices("sample:sp500", start="2010-01-01", end="2009-01-01")
    with pytest.raises(DataError, match="cannot read start='soon' as a date"):
        load_prices("sample:sp500", start="soon")


def test_min_bars():
    with pytest.raises(DataError, match=r"only 5 bars .* at least 20"):
        load_prices("sample:sp500", start="2008-09-15", end="2008-09-19", min_bars=20)


@pytest.mark.parametrize(
    "source, message",
    [
        (
            "ftp:SPY",
            r"unknown scheme in data source 'ftp:SPY'; use one of: sample:sp500.*yf:TICKER.*csv:PATH.*synthetic:regimes",
        ),
        ("SPY", r"invalid source in data source 'SPY'"),
        ("yf:", r"invalid source"),
        ("sample:dax", r"unknown sample 'dax'; available: sample:sp500, sample:nasdaq"),
        ("synthetic:walk", r"unknown synthetic source 'synthetic:walk'"),
    ],
)
def test_bad_sources_list_what_exists(source, message):
    with pytest.raises(DataError, match=message):
        load_prices(source)


def test_unknown_source_parameters_are_named():
    with pytest.raises(DataError, match="sample:sp500 takes no parameters, got seed"):
        load_prices("sample:sp500", seed=1)
    with pytest.raises(
        DataError, match=r"unknown parameter\(s\) n_steps; valid: initial_price, n_bars"
    ):
        load_prices("synthetic:regimes", n_steps=10)


def test_scheme_is_case_insensitive_and_trimmed():
    a = load_prices(" SAMPLE:sp500", end="1999-03-01")
    b = load_prices("sample:sp500", end="1999-03-01")
    pd.testing.assert_frame_equal(a, b, check_like=False)


def test_list_of_sources_returns_dict_in_order():
    out = load_prices(
        ["synthetic:regimes", "sample:nasdaq", "sample:sp500"],
        end="2000-12-29",
        **{"synthetic:regimes": {"n_bars": 300, "seed": 4}},
    )
    assert list(out) == ["synthetic:regimes", "sample:nasdaq", "sample:sp500"]
    assert len(out["synthetic:regimes"]) == 260  # 300 bars from 2000-01-03, cut at end of 2000
    assert out["sample:sp500"].index[-1] == pd.Timestamp("2000-12-29")
    expected, _ = synthetic_regimes(300, 4)
    pd.testing.assert_frame_equal(out["synthetic:regimes"], expected.loc[:"2000-12-29"])


def test_list_errors():
    with pytest.raises(DataError, match="listed twice: sample:sp500"):
        load_prices(["sample:sp500", "sample:sp500"])
    with pytest.raises(DataError, match="non-empty list"):
        load_prices([])


def test_synthetic_through_load_prices_is_the_generator_output():
    prices = load_prices("synthetic:regimes", n_bars=500, seed=9)
    expected, _ = synthetic_regimes(500, seed=9)
    pd.testing.assert_frame_equal(prices, expected)


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FIN_META_DATA_DIR", raising=False)
    assert resolve_data_dir() == tmp_path / "data"
    monkeypatch.setenv("FIN_META_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir("explicit") == tmp_path / "explicit"
    assert resolve_data_dir(Path("~/x")) == Path.home() / "x"


def test_describe_prices_counts_gaps_nans_and_closes():
    index = pd.DatetimeIndex(["2021-03-01", "2021-03-02", "2021-03-08", "2021-03-09"], name="date")
    frame = pd.DataFrame(
        {"open": 1.0, "high": 2.0, "low": 0.5, "close": [3.0, np.nan, 5.0, 4.0], "volume": 1.0},
        index=index,
    )
    info = describe_prices(frame)
    assert info["rows"] == 4
    assert (info["start"], info["end"]) == ("2021-03-01", "2021-03-09")
    assert info["missing_business_days"] == 3  # Wed, Thu, Fri of the first week
    assert (info["largest_gap_days"], info["largest_gap_after"]) == (6, "2021-03-02")
    assert info["nan_counts"]["close"] == 1 and info["nan_counts"]["open"] == 0
    assert (info["min_close"], info["max_close"]) == (3.0, 5.0)


def test_describe_reports_values_filled_by_validation(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(
        "date,open,high,low,close\n2020-01-02,1,1,1,1\n2020-01-03,,1,1,\n2020-01-06,1,1,1,1\n"
    )
    info = describe_prices(load_prices(f"csv:{path}"))
    assert info["nan_counts"]["close"] == 0
    assert info["nans_filled"]["close"] == 1 and info["nans_filled"]["open"] == 1
