"""The perturb-the-future check: finds a peeking function, passes a causal one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fin_meta.lookahead import audit_look_ahead, scramble_after
from tests.test_envs_support import make_prices


def test_scramble_changes_only_the_future():
    prices = make_prices(100, seed=3)
    out = scramble_after(prices, 40, np.random.default_rng(0))
    pd.testing.assert_frame_equal(out.iloc[:41], prices.iloc[:41])
    assert (out["close"].iloc[41:] != prices["close"].iloc[41:]).all()
    assert (out["high"].iloc[41:] >= out["low"].iloc[41:]).all()


def test_audit_finds_the_first_peeking_bar():
    prices = make_prices(300, seed=4)

    def causal(p: pd.DataFrame) -> pd.Series:
        return np.sign(p["close"].pct_change(20)).fillna(0.0)

    def peeks_at_the_last_bar(p: pd.DataFrame) -> pd.Series:  # uses the final close everywhere
        return pd.Series(np.sign(p["close"].iloc[-1] - p["close"]), index=p.index)

    def tomorrow(p: pd.DataFrame) -> pd.Series:  # shift(-1): trades on the next close
        return np.sign(p["close"].shift(-1) - p["close"]).fillna(0.0)

    assert audit_look_ahead(causal, prices, name="causal").clean
    verdict = audit_look_ahead(peeks_at_the_last_bar, prices, name="peek")
    assert not verdict.clean and verdict.first_bar <= verdict.cut and verdict.before != verdict.after
    assert "peek looks ahead" in verdict.message() and str(verdict.cut.date()) in verdict.message()
    shifted = audit_look_ahead(tomorrow, prices, name="tomorrow")
    assert not shifted.clean and shifted.first_bar == shifted.cut  # the last bar before the change
