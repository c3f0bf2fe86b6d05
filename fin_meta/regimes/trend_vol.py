"""The `trend_vol` regime detector (trailing trend x realised volatility against a threshold)
behind `fin_meta.regimes.detect_regimes`; the HMM detector is in `fin_meta.regimes.hmm`.

Timing (DESIGN.md): a causal label at bar t uses closes up to and including t only; models and
thresholds are fitted on the bars up to `fit_end` (the training period), so labels after
`fit_end` are out-of-sample and causal. Hindsight labels use centred windows or smoothed
posteriors and may only group training tasks or break down reports.

Units: log returns per bar; windows in bars. The default windows are durations (a quarter for
the trend and for `min_history`, a month for the volatility: `TrendVolParams.DURATIONS`), turned
into bars with the prices' bars per year by `regimes.base.resolve_windows` (63 / 21 / 63 daily
bars, 3 / 2 / 3 monthly); windows given explicitly stay in bars. The labels compare volatilities
with each other only, so they need no annualisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from fin_meta.errors import ConfigError, DataError
from fin_meta.regimes.base import WARMUP, Duration, check_windows, resolve_windows

__all__ = ["TREND_VOL_NAMES", "TrendVolParams", "trend_vol_labels"]

TREND_VOL_NAMES: dict[int, str] = {
    0: "bear-volatile",
    1: "bear-calm",
    2: "bull-volatile",
    3: "bull-calm",
}
"""trend_vol labels: 2 * (trend > threshold) + (vol <= vol threshold)."""


@dataclass(frozen=True)
class TrendVolParams:
    """Parameters of the `trend_vol` method (windows in bars; None: the default duration)."""

    DURATIONS: ClassVar[dict[str, Duration]] = {
        "trend_window": (0.25, 2),
        "vol_window": (1 / 12, 2),
        "min_history": (0.25, 1),
    }
    """Default of each window as (years, fewest bars): a quarter, a month, a quarter."""

    trend_window: int | None = None
    """Bars of the trailing log return that decides bull (> trend_threshold) or bear
    (None: a quarter of bars, 63 daily, 13 weekly, 3 monthly)."""
    vol_window: int | None = None
    """Bars of trailing realised volatility, the std of log returns per bar (None: a month of
    bars, 21 daily, 4 weekly, 2 monthly)."""
    vol_quantile: float = 0.5
    """Quantile of the fit period's volatility that separates calm (<=) from volatile."""
    trend_threshold: float = 0.0
    """Trailing log return above which a bar is bull."""
    min_history: int | None = None
    """With no fit_end (expanding threshold): volatility values needed before labelling
    (None: a quarter of bars, 63 daily)."""

    def check(self) -> None:
        """`ConfigError` naming the first invalid parameter."""
        check_windows("trend_vol", self, self.DURATIONS)
        for key in ("vol_quantile", "trend_threshold"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ConfigError(f"trend_vol: {key!r} must be a number, got {value!r}")
        if not 0.0 < self.vol_quantile < 1.0:
            raise ConfigError(f"trend_vol: 'vol_quantile' must be in (0, 1), got {self.vol_quantile!r}")


def trend_vol_labels(
    close: pd.Series, p: TrendVolParams, fit: np.ndarray | None, causal: bool
) -> np.ndarray:
    """trend_vol labels (int array, WARMUP where undefined); default windows (None) become bars
    of the close's frequency (`regimes.base.resolve_windows`). Causal: trailing windows, the
    volatility threshold a quantile of the fit bars (or an expanding quantile when `fit` is
    None). Hindsight: windows centred on each bar (shrinking at the ends, so every bar is
    labelled), threshold a quantile of the fit bars (all bars when `fit` is None)."""
    p = resolve_windows(p, "trend_vol", close)
    log_close = np.log(close.to_numpy())
    log_ret = pd.Series(np.diff(log_close, prepend=np.nan), index=close.index)
    n = len(close)
    if causal:
        trend = pd.Series(log_close, index=close.index).diff(p.trend_window).to_numpy()
        vol = log_ret.rolling(p.vol_window, min_periods=p.vol_window).std()
        if fit is None:
            threshold = vol.expanding(min_periods=p.min_history).quantile(p.vol_quantile).to_numpy()
        else:
            fitted = vol[fit].dropna()
            if len(fitted) < p.min_history:
                raise DataError(
                    f"regimes: trend_vol has only {len(fitted)} volatility values up to fit_end; "
                    f"it needs {p.min_history} (move fit_end later or lower min_history)"
                )
            threshold = np.full(n, fitted.quantile(p.vol_quantile))
    else:
        pos = np.arange(n)
        ahead = p.trend_window // 2
        trend = log_close[np.minimum(pos + ahead, n - 1)] - log_close[
            np.maximum(pos - (p.trend_window - ahead), 0)
        ]
        vol = log_ret.rolling(p.vol_window, center=True, min_periods=max(2, p.vol_window // 2)).std()
        threshold = np.full(n, (vol if fit is None else vol[fit]).quantile(p.vol_quantile))
    vol_a = vol.to_numpy()
    labels = 2 * (trend > p.trend_threshold) + (vol_a <= threshold)
    valid = np.isfinite(trend) & np.isfinite(vol_a) & np.isfinite(threshold)
    return np.where(valid, labels, WARMUP).astype(np.int64)
