"""A smoke test for EVERY experiment file in `experiments/` on a tiny budget (parametrised over
the glob, so a new file is covered automatically). The yfinance file runs against injected
frames shaped like `yf.download` output (MultiIndex (Price, Ticker) columns), built from the
`arch` sample data: no network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fin_meta.config.experiment import load_config
from fin_meta.pipeline.run_job import asset_name, run_experiment
from fin_meta.sources import yahoo

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))
BUDGET = {
    "rl2": ["agent.num_envs=8", "agent.hidden_size=16", "agent.encoder_size=16"],
    "maml": ["agent.meta_batch_size=8", "agent.hidden_sizes=[16]"],
    "ppo": ["agent.num_envs=8", "agent.rollout_steps=16", "agent.hidden_sizes=[16]"],
}
"""Per-algorithm overrides that make one iteration cheap."""
TEST_DAYS = 300
"""Calendar days of the test period kept (from its start): about 200 bars."""
SHIFT = pd.Timedelta(weeks=313)
"""The arch sample (1999-2018) moved by whole weeks (weekdays kept) onto 2005-2024."""


def tiny_overrides(path: Path) -> list[str]:
    """One iteration, small nets, 100 bootstrap resamples, no tracking, a short test period."""
    cfg = load_config(path)
    data = cfg.data
    test_end = pd.Timestamp(data.test_start) + pd.Timedelta(days=TEST_DAYS)
    if data.test_end is not None:
        test_end = min(test_end, pd.Timestamp(data.test_end))
    return [
        "agent.iterations=1",
        "evaluation.bootstrap_samples=100",
        "evaluation.min_test_bars=100",  # the short test period below is about 200 bars, under a year
        "tracking.enabled=false",
        f"data.test_end={test_end.date()}",
        *BUDGET[cfg.agent.algo],
    ]


class SampleYahoo:
    """Stands in for `yahoo.yf_download`: the arch sample data (S&P 500 / NASDAQ by turns,
    scaled per ticker), dates shifted by `SHIFT`, laid out like yfinance 1.x `yf.download`
    with `auto_adjust=True, multi_level_index=True`; records the tickers asked for."""

    def __init__(self) -> None:
        from arch.data import nasdaq, sp500

        self.bases = [sp500.load(), nasdaq.load()]
        self.tickers: list[str] = []

    def __call__(self, ticker: str, start: str | None, end: str, interval: str) -> pd.DataFrame:
        assert interval == "1d"
        self.tickers.append(ticker)
        base = self.bases[sum(map(ord, ticker)) % 2]
        scale = 1.0 + (sum(map(ord, ticker)) % 7) / 10.0
        index = (base.index + SHIFT).rename("Date")
        keep = (index < pd.Timestamp(end)) & (index >= pd.Timestamp(start) if start else True)
        fields = {name: base[name].to_numpy()[keep] * (scale if name != "Volume" else 1.0)
                  for name in ("Close", "High", "Low", "Open", "Volume")}  # fmt: skip
        frame = pd.DataFrame({(name, ticker): values for name, values in fields.items()}, index=index[keep])
        frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["Price", "Ticker"])
        return frame


def test_every_experiment_file_is_found():
    names = {path.stem for path in EXPERIMENTS}
    assert {"quickstart", "sp500_rl2", "sp500_maml", "nasdaq_rl2", "multi_asset_yf", "synthetic_rl2"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_experiment_runs_on_a_tiny_budget(path, monkeypatch):
    fake = SampleYahoo()
    monkeypatch.setattr(yahoo, "yf_download", fake)
    cfg = load_config(path, overrides=tiny_overrides(path))
    outcome = run_experiment(cfg, progress=False)

    yf_tickers = [s.split(":", 1)[1] for s in cfg.data.sources if s.startswith("yf:")]
    assert sorted(set(fake.tickers)) == sorted(yf_tickers)  # the network is never reached otherwise
    assert outcome.run_id is None
    assert [ev.name for ev in outcome.evaluations] == [asset_name(s) for s in cfg.data.sources]
    expected_columns = {cfg.agent.algo, "buy_and_hold", *cfg.evaluation.baselines}
    if cfg.evaluation.pooled_ppo and cfg.agent.algo != "ppo":
        expected_columns.add("ppo")
    for ev in outcome.evaluations:
        assert set(ev.positions.columns) == expected_columns
        assert ev.positions.index[0] >= pd.Timestamp(cfg.data.test_start)
        assert ev.positions.index[-1] <= pd.Timestamp(cfg.data.test_end)
        assert np.isfinite(ev.positions.to_numpy()).all()
        assert (ev.positions.abs() <= cfg.env.max_position + 1e-12).all().all()
        assert set(ev.stats.index) == expected_columns
        assert np.isfinite(ev.stats["total_return"]).all()
        assert ev.table["strategy"].tolist() == ev.table.sort_values("sharpe", ascending=False)["strategy"].tolist()
