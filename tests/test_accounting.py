"""The numpy reference accounting of DESIGN.md (fin_meta.accounting)."""

from __future__ import annotations

import numpy as np
import pytest

from fin_meta.accounting import bar_returns, drifted_weights, simulate
from fin_meta.errors import ConfigError, DataError, StrategyError

# Five bars: close moves +10%, -10%, 0%, +10%.
CLOSE5 = np.array([100.0, 110.0, 99.0, 99.0, 108.9])
W5 = np.array([1.0, 0.5, -0.5, -0.5, 0.0])


def test_five_bar_example_without_costs() -> None:
    # r = [0, .1, -.1, 0, .1]
    # E0 = 1 (nothing held before bar 0)
    # E1 = 1     * (1 + 1.0 * 0.1)  = 1.1
    # E2 = 1.1   * (1 + 0.5 * -0.1) = 1.045
    # E3 = 1.045 * (1 - 0.5 * 0.0)  = 1.045
    # E4 = 1.045 * (1 - 0.5 * 0.1)  = 0.99275
    res = simulate(CLOSE5, W5, cost=0.0)
    np.testing.assert_allclose(res.equity, [1.0, 1.1, 1.045, 1.045, 0.99275], rtol=0, atol=1e-14)
    np.testing.assert_allclose(res.returns, [0.0, 0.1, -0.05, 0.0, -0.05], rtol=0, atol=1e-14)
    # drifted: d0 = 0; d1 = 1 * 1.1 / 1.1 = 1; d2 = 0.5 * 0.9 / 0.95 = 9/19;
    #          d3 = -0.5 * 1 / 1 = -0.5; d4 = -0.5 * 1.1 / 0.95 = -11/19
    np.testing.assert_allclose(res.drifted, [0.0, 1.0, 9 / 19, -0.5, -11 / 19], rtol=0, atol=1e-14)
    # traded = |w - d|: 1, 0.5, 0.5 + 9/19 = 37/38, 0, 11/19
    np.testing.assert_allclose(res.traded, [1.0, 0.5, 37 / 38, 0.0, 11 / 19], rtol=0, atol=1e-14)


def test_five_bar_example_with_costs() -> None:
    # cost 1% of traded equity; traded as above
    # E0 = 1                      * (1 - 0.01 * 1)
    # E1 = E0 * (1 + 1.0 * 0.1)   * (1 - 0.01 * 0.5)
    # E2 = E1 * (1 + 0.5 * -0.1)  * (1 - 0.01 * 37/38)
    # E3 = E2 * 1                 * 1
    # E4 = E3 * (1 - 0.5 * 0.1)   * (1 - 0.01 * 11/19)
    e0 = 0.99
    e1 = e0 * 1.1 * 0.995
    e2 = e1 * 0.95 * (1 - 0.37 / 38)
    e4 = e2 * 0.95 * (1 - 0.11 / 19)
    res = simulate(CLOSE5, W5, cost=0.01)
    np.testing.assert_allclose(res.equity, [e0, e1, e2, e2, e4], rtol=1e-13)
    np.testing.assert_allclose(res.returns, [e0 - 1, e1 / e0 - 1, e2 / e1 - 1, 0.0, e4 / e2 - 1], atol=1e-13)


def test_buy_and_hold_tracks_the_close() -> None:
    close = np.array([10.0, 12.0, 9.0, 15.0])
    res = simulate(close, np.ones(4), cost=0.002)
    np.testing.assert_allclose(res.equity, 0.998 * close / 10.0, rtol=1e-14)
    np.testing.assert_array_equal(res.traded, [1.0, 0.0, 0.0, 0.0])


def test_two_dimensional_matches_columns_and_shared_close() -> None:
    rng = np.random.default_rng(3)
    close = 50.0 * np.cumprod(1 + rng.normal(0, 0.02, 200))
    w = rng.uniform(-1, 1, (200, 4))
    both = simulate(close, w, cost=1e-3)
    close_2d = simulate(np.repeat(close[:, None], 4, axis=1), w, cost=1e-3)
    for j in range(4):
        one = simulate(close, w[:, j], cost=1e-3)
        np.testing.assert_allclose(both.equity[:, j], one.equity, rtol=1e-14)
        np.testing.assert_allclose(both.traded[:, j], one.traded, rtol=1e-14)
    np.testing.assert_allclose(close_2d.equity, both.equity, rtol=1e-14)


def test_no_look_ahead_future_prices_do_not_change_the_past() -> None:
    rng = np.random.default_rng(4)
    close = 100.0 * np.cumprod(1 + rng.normal(0, 0.01, 120))
    w = rng.uniform(-1, 1, 120)
    t = 70
    future = close.copy()
    future[t + 1:] *= np.exp(rng.normal(0, 0.2, 120 - t - 1))
    a, b = simulate(close, w, 5e-4), simulate(future, w, 5e-4)
    for name in ("returns", "equity", "traded", "drifted"):
        np.testing.assert_array_equal(getattr(a, name)[: t + 1], getattr(b, name)[: t + 1])
    assert not np.allclose(a.equity[t + 1:], b.equity[t + 1:])


def test_helpers_bar_returns_and_drift() -> None:
    r = bar_returns(CLOSE5)
    np.testing.assert_allclose(r, [0.0, 0.1, -0.1, 0.0, 0.1], atol=1e-15)
    np.testing.assert_allclose(drifted_weights(r, W5)[2], 9 / 19, rtol=1e-14)


@pytest.mark.parametrize(
    ("close", "positions", "cost", "error", "fragment"),
    [
        (CLOSE5, np.array([1.0, np.nan, 0, 0, 0]), 0.0, StrategyError, "NaN"),
        (np.array([100.0, 0.0, 99, 99, 99]), W5, 0.0, DataError, "positive"),
        (CLOSE5, W5[:4], 0.0, DataError, "bars"),
        (CLOSE5, W5, -0.1, ConfigError, "cost"),
        (np.ones((5, 2)), np.ones((5, 3)), 0.0, DataError, "shape"),
    ],
)
def test_bad_inputs_raise_clear_errors(close, positions, cost, error, fragment) -> None:
    with pytest.raises(error, match=fragment):
        simulate(close, positions, cost)


def test_ruin_keeps_equity_at_zero():
    """A short through a price that triples wipes the account out: equity is 0 from that bar on
    and never 'recovers', whatever the positions do afterwards (was: negative equity that came back)."""
    close = np.array([100.0, 100.0, 300.0, 150.0, 100.0, 120.0])
    w = np.array([-1.0, -1.0, -1.0, -1.0, 1.0, 1.0])
    res = simulate(close, w, cost=0.0)
    assert res.ruined_at == 2
    assert res.returns[2] == -1.0 and res.equity[2] == 0.0
    np.testing.assert_array_equal(res.equity[2:], 0.0)
    np.testing.assert_array_equal(res.returns[3:], 0.0)
    np.testing.assert_array_equal(res.traded[3:], 0.0)
    assert (res.equity >= 0).all()
    both = simulate(close, np.stack([w, np.ones_like(w)], axis=1), cost=0.0)
    np.testing.assert_array_equal(both.ruined_at, [2, -1])
    assert simulate(close, np.ones_like(w), cost=0.0).ruined_at == -1
