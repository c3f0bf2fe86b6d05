"""yf: sources against frames shaped like yfinance 1.x `yf.download` output; no network.

`fin_meta.sources.yahoo.yf_download` is the one network call; `FakeYahoo` replaces it.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from fin_meta.constants import PRICE_COLUMNS
from fin_meta.data import fetch_yf, load_prices
from fin_meta.errors import DataError
from fin_meta.sources import yahoo
from fin_meta.sources.yf_cache import merge_ranges, missing_ranges

T = pd.Timestamp


def yf_frame(ticker: str, index: pd.DatetimeIndex, close: np.ndarray) -> pd.DataFrame:
    """A frame laid out like `yf.download(ticker, auto_adjust=True)` in yfinance 1.x:
    MultiIndex columns (Price, Ticker), Price level sorted, index named Date."""
    data = {
        ("Close", ticker): close,
        ("High", ticker): close * 1.01,
        ("Low", ticker): close * 0.99,
        ("Open", ticker): close * 0.995,
        ("Volume", ticker): np.arange(1, len(index) + 1, dtype=np.int64) * 1000,
    }
    frame = pd.DataFrame(data, index=index.rename("Date"))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["Price", "Ticker"])
    return frame


def true_close(index: pd.DatetimeIndex) -> np.ndarray:
    days = (index - T("2000-01-01")).days.to_numpy()
    return 100.0 * np.exp(0.0005 * days)


class FakeYahoo:
    """Business-day bars for known tickers; records every call; `factor` plays the
    back-adjustment Yahoo applies to all history after a split (prices / factor)."""

    def __init__(self, known=("SPY", "QQQ"), listed="1993-01-29", tz=None):
        self.known, self.listed, self.tz = set(known), T(listed), tz
        self.calls: list[tuple[str, str | None, str, str]] = []
        self.factor = 1.0

    def __call__(self, ticker, start, end, interval):
        self.calls.append((ticker, start, end, interval))
        if ticker not in self.known:
            return yf_frame(ticker, pd.DatetimeIndex([]), np.array([]))
        lo = max(T(start), self.listed) if start is not None else self.listed
        index = pd.bdate_range(lo, T(end) - pd.Timedelta(days=1))
        frame = yf_frame(ticker, index, true_close(index) / self.factor)
        if self.tz:
            frame.index = (frame.index + pd.Timedelta(hours=16)).tz_localize(self.tz)
        return frame


@pytest.fixture
def fake(monkeypatch) -> FakeYahoo:
    fake = FakeYahoo()
    monkeypatch.setattr(yahoo, "yf_download", fake)
    return fake


def fetch(tmp_path, start, end, tickers=("SPY",), **kw):
    return fetch_yf(list(tickers), start, end, data_dir=tmp_path, progress=False, **kw)


def test_first_fetch_downloads_validates_and_caches(fake, tmp_path):
    out = fetch(tmp_path, "2020-01-01", "2020-03-31")["SPY"]
    assert fake.calls == [("SPY", "2020-01-01", "2020-04-01", "1d")]
    assert (tmp_path / "yf" / "SPY_1d.parquet").is_file()
    assert list(out.columns) == list(PRICE_COLUMNS) and all(out.dtypes == "float64")
    assert out.index.name == "date" and out.index.tz is None
    assert (out.index[0], out.index[-1]) == (T("2020-01-01"), T("2020-03-31"))
    np.testing.assert_allclose(out["close"], true_close(out.index))


def test_cached_range_is_never_downloaded_again(fake, tmp_path):
    first = fetch(tmp_path, "2020-01-01", "2020-03-31")["SPY"]
    n_calls = len(fake.calls)
    again = fetch(tmp_path, "2020-01-01", "2020-03-31")["SPY"]
    inner = fetch(tmp_path, "2020-02-03", "2020-02-28")["SPY"]
    assert len(fake.calls) == n_calls
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(inner, first.loc["2020-02-03":"2020-02-28"], check_freq=False)


def test_partial_cache_downloads_only_the_missing_parts(fake, tmp_path):
    fetch(tmp_path, "2020-01-01", "2020-06-30")
    fake.calls.clear()
    out = fetch(tmp_path, "2019-10-01", "2020-09-30")["SPY"]
    # each missing part, widened by the one cached bar next to it (for stitching)
    assert fake.calls == [
        ("SPY", "2019-10-01", "2020-01-02", "1d"),
        ("SPY", "2020-06-30", "2020-10-01", "1d"),
    ]
    assert out.index.equals(pd.bdate_range("2019-10-01", "2020-09-30", name="date"))
    np.testing.assert_allclose(out["close"], true_close(out.index))


def test_split_between_downloads_is_stitched_not_a_crash(fake, tmp_path):
    fetch(tmp_path, "2020-01-01", "2020-03-13")
    fake.factor = 2.0  # a 2:1 split after the cached range: Yahoo halves all history
    out = fetch(tmp_path, "2020-01-01", "2020-04-30")["SPY"]
    np.testing.assert_allclose(out["close"], true_close(out.index) / 2.0)
    assert out["close"].pct_change().abs().max() < 0.01
    fake.calls.clear()
    older = fetch(tmp_path, "2019-12-02", "2020-01-31")["SPY"]  # new older history, not split
    fake.factor = 1.0
    np.testing.assert_allclose(older["close"], true_close(older.index) / 2.0)
    assert older["close"].pct_change().abs().max() < 0.01


def test_all_history_then_any_start_makes_no_call(fake, tmp_path):
    fetch(tmp_path, None, "2020-12-31")
    assert fake.calls == [("SPY", None, "2021-01-01", "1d")]
    out = fetch(tmp_path, "2010-01-04", "2010-01-08")["SPY"]
    assert len(fake.calls) == 1 and len(out) == 5


def test_gap_of_only_weekend_days_makes_no_call(fake, tmp_path):
    fetch(tmp_path, "2020-01-06", "2020-01-10")  # Monday..Friday
    fetch(tmp_path, "2020-01-06", "2020-01-12")  # + Saturday, Sunday
    assert len(fake.calls) == 1


def test_end_is_capped_at_yesterday(fake, tmp_path):
    today = pd.Timestamp.now().normalize()
    fetch(tmp_path, today - pd.Timedelta(days=20), None)
    assert fake.calls[-1][2] == today.strftime("%Y-%m-%d")
    with pytest.raises(DataError, match="empty date range"):
        fetch(tmp_path, today, today + pd.Timedelta(days=3))
    with pytest.raises(DataError, match="cannot read end='next week' as a date"):  # the one date parser
        fetch(tmp_path, today - pd.Timedelta(days=20), "next week")


def test_unknown_ticker_is_a_clear_error_and_caches_nothing(fake, tmp_path):
    with pytest.raises(DataError, match="yfinance has no data for ticker NOSUCH"):
        fetch(tmp_path, "2020-01-01", "2020-03-31", tickers=["nosuch"])
    assert not (tmp_path / "yf" / "NOSUCH_1d.parquet").exists()


def test_range_before_listing_says_what_is_cached(fake, tmp_path):
    fetch(tmp_path, "2020-01-01", "2020-01-31")
    with pytest.raises(
        DataError,
        match=r"no data for ticker SPY in 1980-01-01..1980-12-31; the cache has 2020-01-01",
    ):
        fetch(tmp_path, "1980-01-01", "1980-12-31")


def test_no_network_says_what_to_do_and_keeps_the_cache(monkeypatch, fake, tmp_path):
    fetch(tmp_path, "2020-01-01", "2020-03-31")
    path = tmp_path / "yf" / "SPY_1d.parquet"
    before = path.read_bytes()

    def offline(*args):
        raise ConnectionError("Could not resolve host: query2.finance.yahoo.com")

    monkeypatch.setattr(yahoo, "yf_download", offline)
    with pytest.raises(DataError) as err:
        fetch(tmp_path, "2020-01-01", "2020-12-31")
    message = str(err.value)
    assert "cannot download yf:SPY 2020-04-01..2020-12-31" in message
    assert "holds 2020-01-01..2020-03-31" in message
    assert "sample:sp500" in message and "csv:PATH" in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["SPY_1d.parquet"]  # no temp files
    cached = fetch(tmp_path, "2020-02-01", "2020-02-29")["SPY"]  # offline, inside the cache
    assert len(cached) == 20


def test_no_network_and_no_cache(monkeypatch, tmp_path):
    def offline(*args):
        raise TimeoutError("timed out")

    monkeypatch.setattr(yahoo, "yf_download", offline)
    with pytest.raises(DataError, match=r"nothing is cached for QQQ.*sample:sp500"):
        load_prices("yf:QQQ", start="2020-01-01", end="2020-02-01", data_dir=tmp_path)


def test_yfinance_swallowed_network_error_becomes_connection_error(monkeypatch, tmp_path):
    """yfinance 1.x logs a failed download and returns an empty frame; yf_download turns
    that into ConnectionError, which fetch_yf reports as 'no network'."""
    import yfinance

    def download(tickers, **kwargs):
        logging.getLogger("yfinance").error(
            "['%s']: DNSError('Failed to perform, curl: (6) Could not resolve host')", tickers
        )
        return yf_frame(tickers, pd.DatetimeIndex([]), np.array([]))

    monkeypatch.setattr(yfinance, "download", download)
    with pytest.raises(ConnectionError, match="Could not resolve host"):
        yahoo.yf_download("SPY", "2020-01-01", "2020-02-01", "1d")
    with pytest.raises(DataError, match="no network"):
        fetch(tmp_path, "2020-01-01", "2020-01-31")


def test_yf_download_passes_period_max_for_all_history(monkeypatch):
    import yfinance

    seen = {}

    def download(tickers, **kwargs):
        seen.update(kwargs)
        index = pd.bdate_range("2020-01-01", periods=3)
        return yf_frame(tickers, index, true_close(index))

    monkeypatch.setattr(yfinance, "download", download)
    raw = yahoo.yf_download("SPY", None, "2020-01-04", "1d")
    assert seen["period"] == "max" and "start" not in seen and seen["auto_adjust"] is True
    assert len(yahoo.normalize_yf(raw, "SPY")) == 3


def test_normalize_handles_tz_ticker_first_levels_duplicates_and_adj_close():
    index = pd.DatetimeIndex(
        ["2020-01-02 16:00", "2020-01-03 16:00", "2020-01-03 16:00", "2020-01-06 16:00"]
    ).tz_localize("America/New_York")
    close = np.array([10.0, 11.0, 12.0, np.nan])
    raw = yf_frame("SPY", index, close)
    raw[("Adj Close", "SPY")] = close / 2
    raw.iloc[-1] = np.nan  # yfinance keeps empty rows when tickers are aligned
    raw = raw.swaplevel(axis=1)  # group_by="ticker" layout
    out = yahoo.normalize_yf(raw, "SPY")
    assert out.index.tz is None
    assert list(out.index) == [T("2020-01-02 16:00"), T("2020-01-03 16:00")]
    np.testing.assert_allclose(out["close"], [5.0, 6.0])  # adjusted, last duplicate wins
    assert "adj_close" not in out.columns


def test_multi_ticker_fetch_shows_progress(fake, tmp_path, capsys):
    out = fetch_yf(
        ["spy", "QQQ", "SPY"], "2020-01-01", "2020-01-31", data_dir=tmp_path, progress=True
    )
    assert list(out) == ["SPY", "QQQ"]
    assert "yfinance" in capsys.readouterr().err
    fetch_yf(["SPY", "QQQ"], "2020-01-01", "2020-01-31", data_dir=tmp_path, progress=False)
    assert capsys.readouterr().err == ""


def test_load_prices_yf_and_interval(fake, tmp_path):
    prices = load_prices("yf:spy", "2020-01-01", "2020-01-31", data_dir=tmp_path)
    assert len(prices) == 23 and prices.attrs["source"] == "yf:spy"
    load_prices("yf:SPY", "2020-01-01", "2020-01-31", data_dir=tmp_path, interval="1wk")
    assert fake.calls[-1][3] == "1wk" and (tmp_path / "yf" / "SPY_1wk.parquet").exists()
    with pytest.raises(DataError, match="unknown yfinance interval '7d'"):
        load_prices("yf:SPY", data_dir=tmp_path, interval="7d")
    with pytest.raises(DataError, match="invalid ticker '../etc'"):
        load_prices("yf:../etc", data_dir=tmp_path)


def test_tz_aware_download_is_cached_as_local_dates(tmp_path, monkeypatch):
    fake = FakeYahoo(tz="America/New_York")
    monkeypatch.setattr(yahoo, "yf_download", fake)
    out = fetch(tmp_path, "2020-01-01", "2020-01-10")["SPY"]
    assert out.index.tz is None and out.index[0] == T("2020-01-01 16:00")


def test_corrupt_cache_is_reported(fake, tmp_path):
    path = tmp_path / "yf" / "SPY_1d.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"cache .*SPY_1d.parquet is unreadable.*delete it"):
        fetch(tmp_path, "2020-01-01", "2020-01-31")


def test_range_arithmetic():
    covered = merge_ranges(
        [
            (T("2020-03-01"), T("2020-04-01")),
            (T("2020-01-01"), T("2020-02-01")),
            (T("2020-01-15"), T("2020-02-10")),
        ]
    )
    assert covered == [(T("2020-01-01"), T("2020-02-10")), (T("2020-03-01"), T("2020-04-01"))]
    gaps = missing_ranges((T("2019-12-01"), T("2020-05-01")), covered)
    assert gaps == [
        (T("2019-12-01"), T("2020-01-01")),
        (T("2020-02-10"), T("2020-03-01")),
        (T("2020-04-01"), T("2020-05-01")),
    ]
    assert missing_ranges((T("2020-01-05"), T("2020-02-01")), covered) == []
