"""Rule strategies: hand-computed positions, the registry, user strategies, no look-ahead."""

from __future__ import annotations

import inspect
import textwrap

import numpy as np
import pandas as pd
import pytest

import strategies
from fin_meta.errors import DataError, StrategyError
from strategies import available_strategies, get_strategy, strategy_defaults, strategy_positions

BUILTIN = ["buy_and_hold", "mean_reversion", "momentum", "sma_cross", "vol_target"]


def frame(close) -> pd.DataFrame:
    """A prices frame (DESIGN.md shape) whose OHLC all equal `close`."""
    close = np.asarray(close, dtype="float64")
    index = pd.bdate_range("2021-01-04", periods=len(close), name="date")
    return pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1e6}, index=index
    )


@pytest.fixture(scope="module")
def walk() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return frame(100 * np.exp(np.cumsum(rng.normal(2e-4, 0.012, 400))))


def test_builtins_are_registered():
    assert sorted(available_strategies()) == BUILTIN


@pytest.mark.parametrize("name", BUILTIN)
def test_module_contract(name, walk):
    module = get_strategy(name)
    assert module.__doc__ and len(module.__doc__) > 40
    signature = inspect.signature(module.positions).parameters
    assert list(module.DEFAULTS) == list(signature)[1:]
    for key, default in module.DEFAULTS.items():
        assert signature[key].default == default
    pos = strategy_positions(name, walk)
    assert pos.dtype == np.float64 and pos.name == name
    assert pos.index.equals(walk.index)
    assert pos.between(-1, 1).all()
    if name != "buy_and_hold":
        assert pos.iloc[0] == 0.0  # warm-up


@pytest.mark.parametrize("name", sorted(available_strategies()))
def test_no_look_ahead(name, walk):
    rng = np.random.default_rng(11)
    base = strategy_positions(name, walk)
    for t in (60, 199, 330):
        future = walk.copy()
        shock = np.exp(rng.normal(0, 0.05, len(walk) - t - 1))
        for col in ("open", "high", "low", "close"):
            future.iloc[t + 1 :, future.columns.get_loc(col)] *= shock
        moved = strategy_positions(name, future)
        pd.testing.assert_series_equal(moved.iloc[: t + 1], base.iloc[: t + 1])


def test_sma_cross_on_a_ramp():
    prices = frame([1, 2, 3, 4, 5, 4, 3, 2])
    # sma2: -, 1.5, 2.5, 3.5, 4.5, 4.5, 3.5, 2.5 ; sma3: -, -, 2, 3, 4, 4.33, 4, 3
    long_short = strategy_positions("sma_cross", prices, {"fast": 2, "slow": 3, "allow_short": True})
    assert long_short.tolist() == [0, 0, 1, 1, 1, 1, -1, -1]
    long_only = strategy_positions("sma_cross", prices, {"fast": 2, "slow": 3})
    assert long_only.tolist() == [0, 0, 1, 1, 1, 1, 0, 0]


def test_momentum_hand_computed():
    prices = frame([1, 2, 4, 3, 3, 2, 3])
    # close[t]/close[t-2]-1: -, -, 3, 0.5, -0.25, -0.33, 0
    pos = strategy_positions("momentum", prices, {"lookback": 2})
    assert pos.tolist() == [0, 0, 1, 1, -1, -1, 0]
    flat = strategy_positions("momentum", prices, {"lookback": 2, "allow_short": False})
    assert flat.tolist() == [0, 0, 1, 1, 0, 0, 0]
    skipped = strategy_positions("momentum", prices, {"lookback": 3, "skip": 1})
    # close[t-1]/close[t-3]-1: -, -, -, 3, 0.5, -0.25, -0.33
    assert skipped.tolist() == [0, 0, 0, 1, 1, -1, -1]


def test_mean_reversion_hand_computed():
    prices = frame([10, 11, 12, 11, 10, 9, 10, 11, 9, 10])
    # z over 3 bars: -, -, 1, -0.58, -1, -1, 0.58, 1, -1, 0
    pos = strategy_positions("mean_reversion", prices, {"window": 3, "entry_z": 0.9, "exit_z": 0.25})
    assert pos.tolist() == [0, 0, -1, -1, 1, 1, 1, -1, 1, 0]
    no_short = strategy_positions(
        "mean_reversion", prices, {"window": 3, "entry_z": 0.9, "allow_short": False}
    )
    assert no_short.tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 1, 0]


def test_vol_target_hand_computed():
    a = 0.004
    prices = frame(100 * np.exp(np.cumsum([0, a, -a, a, -a, a, -a])))
    pos = strategy_positions("vol_target", prices, {"window": 2, "target_vol": 0.05})
    vol = a * np.sqrt(2) * np.sqrt(252)  # std (ddof=1) of {a, -a}, annualised
    expected = [0, 0] + [0.05 / vol] * 5
    np.testing.assert_allclose(pos.to_numpy(), expected, rtol=1e-9)
    capped = strategy_positions("vol_target", prices, {"window": 2, "target_vol": 2.0})
    assert capped.tolist() == [0, 0, 1, 1, 1, 1, 1]


def test_buy_and_hold_exposure():
    pos = strategy_positions("buy_and_hold", frame([1, 2, 3]), {"exposure": 0.5})
    assert pos.tolist() == [0.5, 0.5, 0.5]


def test_unknown_strategy_lists_available(walk):
    with pytest.raises(StrategyError, match="unknown strategy 'nope'; available: buy_and_hold, mean_reversion"):
        strategy_positions("nope", walk)


def test_unknown_param_lists_valid(walk):
    with pytest.raises(StrategyError, match="no parameter.*'window'.*valid: fast, slow, allow_short"):
        strategy_positions("sma_cross", walk, {"window": 5})


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("sma_cross", {"fast": 50, "slow": 20}, "'fast' \\(50\\) must be smaller than 'slow'"),
        ("sma_cross", {"fast": 0}, "'fast' must be an integer >= 1"),
        ("momentum", {"lookback": 2.5}, "'lookback' must be an integer"),
        ("momentum", {"allow_short": "maybe"}, "'allow_short' must be a bool"),
        ("mean_reversion", {"entry_z": 0.5, "exit_z": 0.6}, "'exit_z' .* must be smaller"),
        ("vol_target", {"max_position": 1.5}, "'max_position' must be in \\[0.0, 1.0\\]"),
        ("buy_and_hold", {"exposure": "x"}, "'exposure' must be a float"),
    ],
)
def test_bad_params(name, params, message, walk):
    with pytest.raises(StrategyError, match=message):
        strategy_positions(name, walk, params)


def test_text_params_are_converted(walk):
    text = strategy_positions("sma_cross", walk, {"fast": "5", "slow": "30", "allow_short": "true"})
    typed = strategy_positions("sma_cross", walk, {"fast": 5, "slow": 30, "allow_short": True})
    pd.testing.assert_series_equal(text, typed)
    assert (text == -1).any()


def test_bad_prices():
    with pytest.raises(DataError, match="'close'"):
        strategy_positions("momentum", pd.DataFrame({"price": [1.0, 2.0]}))
    with pytest.raises(DataError, match="non-positive"):
        strategy_positions("momentum", frame([1.0, -2.0, 3.0]))


def test_user_strategies_dir(tmp_path, walk):
    (tmp_path / "half_long.py").write_text(
        textwrap.dedent(
            '''
            """Half long after the first bar."""
            import pandas as pd
            DEFAULTS = {"level": 0.5}
            def positions(prices, level=0.5):
                out = pd.Series(level, index=prices.index, dtype="float64")
                out.iloc[0] = 0.0
                return out
            '''
        )
    )
    (tmp_path / "helpers.py").write_text("X = 1\n")  # no positions(): not a strategy
    (tmp_path / "_private.py").write_text("raise RuntimeError('never imported')\n")
    found = available_strategies(tmp_path)
    assert sorted(found) == sorted([*BUILTIN, "half_long"])
    pos = strategy_positions("half_long", walk, {"level": "0.25"}, strategies_dir=tmp_path)
    assert pos.name == "half_long" and pos.iloc[0] == 0 and (pos.iloc[1:] == 0.25).all()
    with pytest.raises(StrategyError, match="available: .*half_long"):
        get_strategy("full_long", tmp_path)


def test_user_strategy_without_defaults_uses_signature(tmp_path, walk):
    (tmp_path / "scaled.py").write_text(
        "def positions(prices, k=0.3):\n    return prices['close'] * 0 + k\n"
    )
    module = get_strategy("scaled", tmp_path)
    assert strategy_defaults(module) == {"k": 0.3}
    assert strategy_positions("scaled", walk, {"k": 0.7}, tmp_path).eq(0.7).all()


def test_user_strategy_errors(tmp_path, walk):
    with pytest.raises(StrategyError, match="does not exist"):
        available_strategies(tmp_path / "missing")
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(StrategyError, match="broken.py failed to import: ModuleNotFoundError"):
        available_strategies(tmp_path)
    (tmp_path / "broken.py").unlink()
    (tmp_path / "momentum.py").write_text("def positions(prices):\n    return prices['close'] * 0\n")
    with pytest.raises(StrategyError, match="built-in strategy 'momentum'; rename"):
        available_strategies(tmp_path)
    (tmp_path / "momentum.py").unlink()
    (tmp_path / "levered.py").write_text("def positions(prices):\n    return prices['close'] * 0 + 2\n")
    with pytest.raises(StrategyError, match="'levered' returned a position outside \\[-1, 1\\]"):
        strategy_positions("levered", walk, strategies_dir=tmp_path)
    (tmp_path / "shifted.py").write_text(
        "def positions(prices):\n    return prices['close'].iloc[1:] * 0\n"
    )
    with pytest.raises(StrategyError, match="index differs"):
        strategy_positions("shifted", walk, strategies_dir=tmp_path)


def test_package_docstring_names_every_builtin():
    for name in BUILTIN:
        assert name in strategies.__doc__


def test_user_strategy_that_peeks_is_refused(tmp_path, walk):
    """shift(-1) trades on tomorrow's close: the audit refuses it before any backtest and names
    the first bar whose position changed when only the future changed."""
    (tmp_path / "peek.py").write_text(textwrap.dedent("""
        import numpy as np
        def positions(prices):
            up = prices['close'].shift(-1) > prices['close']
            return up.astype(float).fillna(0.0)
    """))
    with pytest.raises(StrategyError, match=r"strategy 'peek' looks ahead: its position at \d{4}-\d\d-\d\d changed"):
        strategy_positions("peek", walk, strategies_dir=tmp_path)
    verdict = strategies.audit_strategy("peek", walk, strategies_dir=tmp_path)
    assert not verdict.clean and verdict.first_bar <= verdict.cut
    assert strategies.audit_strategy("momentum", walk).clean


def test_user_strategy_that_raises_names_its_file_and_line(tmp_path, walk):
    (tmp_path / "divide.py").write_text("def positions(prices):\n    x = 0\n    return prices['close'] / x / 0\n")
    (tmp_path / "zero.py").write_text("def positions(prices):\n    return prices['close'] * 0 + 1 / 0\n")
    with pytest.raises(StrategyError, match=r"strategy 'zero' \(.*zero.py, line 2\) raised ZeroDivisionError"):
        strategy_positions("zero", walk, strategies_dir=tmp_path)


def test_unknown_strategy_suggests_the_closest(walk):
    with pytest.raises(StrategyError, match="did you mean 'momentum'"):
        strategy_positions("momentun", walk)
