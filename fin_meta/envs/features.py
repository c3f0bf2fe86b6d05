"""Per-bar observation features: the single place that turns prices into what an agent sees.

`observation_features(prices, window, features, regime_model)` returns an array [T, F] whose
row t uses data up to and including close t only (causal). Column 0 is always the log return of
close, log(close[t] / close[t-1]) (0.0 on the first bar); the extra columns follow in the order
asked: one per `FEATURES` name, K for `regime_probs` (the filtered probabilities of the HMM in
`EnvConfig.regime_model`, fitted on the training period: `fin_meta.envs.regime_features`).

An observation at decision bar t (layout shared by `TradingEnv`, `VectorTradingEnv` and the
agents' walk-forward `positions(prices)`) is a flat vector of `window * F + 1` numbers:
`obs[k * F + f]` = feature f of bar `t - window + 1 + k` (oldest bar first, k = 0..window-1),
and `obs[window * F]` = the position held into the decision (the drifted weight). The first bar
that can be decided on is `first_decision_bar(window) == window`, so every row in the window
has a real log return.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from fin_meta.envs.regime_features import (
    REGIME_FEATURE,
    RegimeModel,
    regime_feature_names,
    regime_probabilities,
)
from fin_meta.errors import DataError

__all__ = [
    "FEATURES",
    "MODEL_FEATURES",
    "KNOWN_FEATURES",
    "feature_names",
    "observation_features",
    "observation_table",
    "first_decision_bar",
    "log_close_returns",
    "simple_returns",
]

FeatureFn = Callable[[pd.DataFrame, int], np.ndarray]


def log_close_returns(prices: pd.DataFrame) -> np.ndarray:
    """log(close[t] / close[t-1]) per bar, 0.0 on the first bar; shape [T], float64."""
    close = prices["close"].to_numpy(dtype=np.float64)
    out = np.zeros_like(close)
    out[1:] = np.diff(np.log(close))
    return out


def simple_returns(prices: pd.DataFrame) -> np.ndarray:
    """r[t] = close[t] / close[t-1] - 1 per bar (0.0 on the first bar); shape [T], float64.
    The one formula lives in `fin_meta.accounting.bar_returns`."""
    from fin_meta.accounting import bar_returns

    return bar_returns(prices["close"].to_numpy(dtype=np.float64))


def _rolling_std(values: np.ndarray, window: int) -> np.ndarray:
    """Population std of the last `window` values up to each row (fewer at the start), 0 if one."""
    std = pd.Series(values).rolling(window, min_periods=1).std(ddof=0)
    return std.fillna(0.0).to_numpy(dtype=np.float64)


def _realised_vol(prices: pd.DataFrame, window: int) -> np.ndarray:
    """Std of the last `window` log returns up to bar t (per bar, not annualised)."""
    return _rolling_std(log_close_returns(prices), window)


def _volume_z(prices: pd.DataFrame, window: int) -> np.ndarray:
    """z-score of log(1 + volume) at bar t against the last `window` bars up to t (0 if flat)."""
    logv = pd.Series(np.log1p(prices["volume"].to_numpy(dtype=np.float64)))
    roll = logv.rolling(window, min_periods=1)
    mean = roll.mean().to_numpy()
    std = roll.std(ddof=0).fillna(0.0).to_numpy()
    dev = logv.to_numpy() - mean
    return np.divide(dev, std, out=np.zeros_like(dev), where=std > 1e-12)


def _hl_range(prices: pd.DataFrame, window: int) -> np.ndarray:
    """log(high / low) of bar t: the bar's own range (window unused)."""
    del window
    return np.log(prices["high"].to_numpy(dtype=np.float64) / prices["low"].to_numpy(dtype=np.float64))


def _lag_product(prices: pd.DataFrame, window: int) -> np.ndarray:
    """r[t] * r[t-1] / realised vol of the last `window` log returns up to t: the bar's evidence
    on the sign of lag-1 autocorrelation (positive: trends follow on, negative: they reverse),
    in return units (0 where the vol is 0)."""
    r = log_close_returns(prices)
    product = r * np.r_[0.0, r[:-1]]
    vol = _rolling_std(r, window)
    return np.divide(product, vol, out=np.zeros_like(product), where=vol > 1e-12)


FEATURES: dict[str, FeatureFn] = {
    "realised_vol": _realised_vol,
    "volume_z": _volume_z,
    "hl_range": _hl_range,
    "lag_product": _lag_product,
}
"""Extra causal per-bar features by name: fn(prices, window) -> array [T]. Add one here."""

MODEL_FEATURES: dict[str, str] = {
    REGIME_FEATURE: "K columns: filtered HMM state probabilities (EnvConfig.regime_model, fitted on training prices)",
}
"""Extra features computed with a model fitted on the training period (travels in the EnvConfig)."""

KNOWN_FEATURES: tuple[str, ...] = tuple(sorted([*FEATURES, *MODEL_FEATURES]))
"""Every name `features` may hold."""

_NEEDS: dict[str, tuple[str, ...]] = {"volume_z": ("volume",), "hl_range": ("high", "low")}


def feature_names(features: Sequence[str] = (), regime_model: RegimeModel | None = None) -> list[str]:
    """Column names of `observation_features`: "log_return" then the extras in order
    (`regime_probs`: `regime_p0..regime_p{K-1}`, which needs `regime_model`)."""
    names = ["log_return"]
    for name in features:
        names += regime_feature_names(regime_model) if name == REGIME_FEATURE else [name]
    return names


def first_decision_bar(window: int) -> int:
    """Index of the first bar whose observation window holds `window` real log returns."""
    return int(window)


def _check_prices(prices: pd.DataFrame, window: int, features: Sequence[str]) -> None:
    if not isinstance(prices, pd.DataFrame):
        raise DataError(f"prices must be a pandas DataFrame with a 'close' column, got {type(prices).__name__}")
    unknown = [name for name in features if name not in KNOWN_FEATURES]
    if unknown:
        raise DataError(f"unknown features {unknown}; choose from {list(KNOWN_FEATURES)}")
    needed = {"close"}.union(*(_NEEDS.get(name, ()) for name in features))
    missing = sorted(needed - set(prices.columns))
    if missing:
        raise DataError(f"prices lack column(s) {missing} needed for features {list(features)}")
    for column in sorted(needed):
        values = prices[column].to_numpy(dtype=np.float64)
        floor = 0.0 if column == "volume" else 1e-300
        bad = ~np.isfinite(values) | (values < floor)
        if bad.any():
            row = prices.index[int(np.argmax(bad))]
            raise DataError(f"prices column {column!r} has a non-finite or non-positive value at {row}")
    if len(prices) < window + 2:
        raise DataError(
            f"prices have {len(prices)} bars; an episode with window={window} needs at least "
            f"{window + 2} (use a smaller window or more data)"
        )


def observation_features(prices: pd.DataFrame, window: int, features: Sequence[str] = (),
                         regime_model: RegimeModel | None = None) -> np.ndarray:
    """Per-bar features [T, F] (F = `len(feature_names(features, regime_model))`), float64, row t
    from data up to close t only. `regime_model`: the fitted HMM that `regime_probs` needs."""
    features = list(features)
    if REGIME_FEATURE in features:
        regime_feature_names(regime_model)  # the one-line error before any work
    _check_prices(prices, window, features)
    columns = [log_close_returns(prices)[:, None]]
    for name in features:
        if name == REGIME_FEATURE:
            columns.append(regime_probabilities(prices, regime_model))
        else:
            columns.append(FEATURES[name](prices, window)[:, None])
    return np.concatenate(columns, axis=1)


def observation_table(features_TF: np.ndarray, window: int) -> np.ndarray:
    """Every bar's flattened observation window [T, window * F + 1] (last column 0.0: the slot
    for the position). Rows before `window - 1` are 0.0 (no full window there)."""
    n_bars, n_feat = features_TF.shape
    table = np.zeros((n_bars, window * n_feat + 1), dtype=np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(features_TF, window, axis=0)  # [T-W+1, F, W]
    table[window - 1 :, :-1] = windows.transpose(0, 2, 1).reshape(n_bars - window + 1, window * n_feat)
    return table
