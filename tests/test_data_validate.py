"""validate_prices: every rule of DESIGN.md's prices convention, on small hand-made frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fin_meta.constants import PRICE_COLUMNS
from fin_meta.data import load_prices, validate_prices
from fin_meta.errors import DataError
from fin_meta.sources.validate import require_bars


def bars(n: int = 6, start: str = "2021-03-01", **overrides: list) -> pd.DataFrame:
    """n business-day bars with Title-case columns as most files have them."""
    close = 100.0 + np.arange(n, dtype=float)
    frame = pd.DataFrame(
        {
            "Open": close - 0.5,
            "High": close + 1.0,
            "Low": close - 1.0,
            "Close": close,
            "Volume": np.full(n, 1000, dtype=np.int64),
        },
        index=pd.bdate_range(start, periods=n, name="Date"),
    )
    for col, values in overrides.items():
        frame[col] = values
    return frame


def test_valid_frame_comes_out_in_the_convention():
    out = validate_prices(bars(), "test:ok")
    assert list(out.columns) == list(PRICE_COLUMNS)
    assert all(out.dtypes == "float64")
    assert out.index.name == "date" and out.index.tz is None
    assert out.index.is_monotonic_increasing and out.index.is_unique
    np.testing.assert_allclose(out["close"], 100.0 + np.arange(6))


def test_input_frame_is_not_modified():
    raw = bars(Close=[100.0, np.nan, 102.0, 103.0, 104.0, 105.0])
    before = raw.copy()
    validate_prices(raw, "test:copy")
    pd.testing.assert_frame_equal(raw, before)


def test_missing_column_is_named():
    with pytest.raises(DataError, match=r"test:m.*missing column\(s\) high, low"):
        validate_prices(bars().drop(columns=["High", "Low"]), "test:m")


def test_missing_volume_becomes_zero():
    out = validate_prices(bars().drop(columns=["Volume"]), "test:v")
    assert (out["volume"] == 0.0).all()


def test_two_columns_with_the_same_meaning_are_rejected():
    frame = bars()
    frame["close"] = frame["Close"]
    with pytest.raises(DataError, match=r"'Close' and 'close' both mean 'close'"):
        validate_prices(frame, "test:dup-col")


def test_unparsable_date_names_the_row_and_value():
    frame = bars().reset_index()
    frame["Date"] = frame["Date"].dt.strftime("%Y-%m-%d").astype(object)
    frame.loc[3, "Date"] = "not a date"
    with pytest.raises(DataError, match=r"test:d.*unparsable date 'not a date'.*row 3"):
        validate_prices(frame, "test:d")


def test_no_date_anywhere_is_an_error():
    with pytest.raises(DataError, match=r"no dates found.*name the date column 'date'"):
        validate_prices(bars().reset_index(drop=True), "test:nodate")


def test_duplicate_dates_are_named():
    frame = bars()
    frame.index = frame.index[[0, 1, 2, 2, 4, 5]]
    with pytest.raises(DataError, match=r"test:dup: duplicate dates 2021-03-03"):
        validate_prices(frame, "test:dup")


def test_unsorted_dates_are_sorted_with_a_warning():
    frame = bars().iloc[::-1]
    with pytest.warns(UserWarning, match="test:rev: dates were not in increasing order"):
        out = validate_prices(frame, "test:rev")
    assert out.index.is_monotonic_increasing
    np.testing.assert_allclose(out["close"], 100.0 + np.arange(6))


def test_short_nan_runs_are_forward_filled_and_counted():
    frame = bars(Close=[100.0, np.nan, np.nan, 103.0, 104.0, 105.0])
    out = validate_prices(frame, "test:nan", ffill_limit=2)
    np.testing.assert_allclose(out["close"], [100, 100, 100, 103, 104, 105])
    assert out.attrs["nans_filled"]["close"] == 2


def test_long_nan_runs_are_an_error_naming_column_and_date():
    frame = bars(Close=[100.0, np.nan, np.nan, np.nan, 104.0, 105.0])
    with pytest.raises(DataError, match=r"'close' has 3 consecutive NaN bars from 2021-03-02"):
        validate_prices(frame, "test:nan", ffill_limit=2)


def test_leading_nan_cannot_be_filled():
    frame = bars(Open=[np.nan, 100.5, 101.5, 102.5, 103.5, 104.5])
    with pytest.raises(DataError, match=r"'open' is NaN in its first 1 bar"):
        validate_prices(frame, "test:lead")


def test_nan_volume_becomes_zero():
    frame = bars(Volume=[1.0, np.nan, 3.0, np.nan, np.nan, np.nan])
    out = validate_prices(frame, "test:vol", ffill_limit=0)
    np.testing.assert_allclose(out["volume"], [1, 0, 3, 0, 0, 0])


@pytest.mark.parametrize("value", [0.0, -3.0, np.inf])
def test_non_positive_or_infinite_prices_are_rejected(value):
    frame = bars(Low=[99.0, 100.0, value, 102.0, 103.0, 104.0])
    with pytest.raises(DataError, match=r"test:neg: column 'low' has .* on 2021-03-03"):
        validate_prices(frame, "test:neg")


def test_negative_volume_is_rejected():
    frame = bars(Volume=[1, 1, 1, -5, 1, 1])
    with pytest.raises(DataError, match=r"'volume' has -5.0 on 2021-03-04"):
        validate_prices(frame, "test:vneg")


def test_non_numeric_value_is_named():
    frame = bars().astype({"High": object})
    frame.iloc[2, frame.columns.get_loc("High")] = "12O.5"
    with pytest.raises(
        DataError, match=r"non-numeric value '12O.5' in column 'high' on 2021-03-03"
    ):
        validate_prices(frame, "test:txt")


def test_adj_close_adjusts_open_high_low_close_by_its_factor():
    # a 2:1 split between bar 2 and bar 3: raw close halves, adjusted close does not
    close = [200.0, 202.0, 204.0, 103.0, 104.0]
    adj = [100.0, 101.0, 102.0, 103.0, 104.0]
    frame = bars(5, Close=close, Open=close, High=close, Low=close)
    frame["Adj Close"] = adj
    out = validate_prices(frame, "test:adj")
    np.testing.assert_allclose(out["close"], adj)
    np.testing.assert_allclose(out[["open", "high", "low"]].to_numpy(), np.tile(adj, (3, 1)).T)
    assert out["close"].pct_change().min() > 0  # no fake crash at the split
    np.testing.assert_allclose(out["volume"], 1000.0)


def test_tz_aware_index_keeps_local_dates():
    frame = bars()
    frame.index = frame.index.tz_localize("America/New_York")
    out = validate_prices(frame, "test:tz")
    assert out.index.tz is None
    assert list(out.index) == list(bars().index)


def test_too_few_bars():
    with pytest.raises(DataError, match=r"test:few: only 1 bars .* at least 2"):
        validate_prices(bars(1), "test:few")
    with pytest.raises(DataError, match=r"only 6 bars.*at least 30 are needed for trend_window"):
        require_bars(bars(), 30, source="x", need="trend_window")


@pytest.mark.parametrize(
    "bad, message",
    [
        (pd.DataFrame(), "no rows"),
        ([1, 2, 3], "expected a pandas DataFrame"),
    ],
)
def test_not_a_frame_or_empty(bad, message):
    with pytest.raises(DataError, match=message):
        validate_prices(bad, "test:bad")


def test_multiindex_columns_are_rejected_with_the_fix():
    frame = pd.concat({"SPY": bars()}, axis=1)
    with pytest.raises(DataError, match=r"MultiIndex.*select one instrument"):
        validate_prices(frame, "test:mi")


def test_bad_ffill_limit():
    with pytest.raises(DataError, match="ffill_limit must be an integer >= 0"):
        validate_prices(bars(), "test:lim", ffill_limit=-1)


def test_csv_with_odd_casing_date_and_adj_close(tmp_path):
    text = (
        "DATE;  open ;HIGH;low;CLOSE;ADJ CLOSE;vOlUmE\n"
        "2020-01-03;10;11;9;10;5;100\n"
        "2020-01-02;10;11;9;10;5;100\n"
        "2020-01-06;12;13;11;12;6;\n"
    )
    path = tmp_path / "prices.csv"
    path.write_text(text)
    with pytest.warns(UserWarning, match="not in increasing order"):
        out = load_prices(f"csv:{path}")
    assert list(out.columns) == list(PRICE_COLUMNS)
    assert [d.strftime("%Y-%m-%d") for d in out.index] == ["2020-01-02", "2020-01-03", "2020-01-06"]
    np.testing.assert_allclose(out["close"], [5, 5, 6])
    np.testing.assert_allclose(out["high"], [5.5, 5.5, 6.5])
    np.testing.assert_allclose(out["volume"], [100, 100, 0])


def test_csv_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"csv:.*nope.csv: file not found"):
        load_prices(f"csv:{tmp_path / 'nope.csv'}")
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,Open,High,Low,Close\n2020-01-02,1,1,1,1\n31/31/2020,1,1,1,1\n")
    with pytest.raises(DataError, match=r"unparsable date '31/31/2020' in column 'date' at row 1"):
        load_prices(f"csv:{bad}")


def test_csv_written_by_pandas_round_trips(tmp_path):
    prices = load_prices("synthetic:regimes", n_bars=50, seed=1)
    path = tmp_path / "saved.csv"
    prices.rename_axis(None).to_csv(path)  # dates in an unnamed first column
    back = load_prices(f"csv:{path}")
    pd.testing.assert_frame_equal(back, prices, check_freq=False)
