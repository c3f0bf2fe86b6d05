"""The `regime_probs` observation feature: the causal FILTERED state probabilities of a Gaussian
HMM fitted on the training period only, so any agent can be regime-aware without meta-learning.

    env = fit_regime_features(env, [train_prices])   # EnvConfig with its regime_model
    agent = make_agent("ppo", env, ...)               # observations gain K columns

The fitted HMM travels with the agent as plain floats (`RegimeModel` in `EnvConfig.regime_model`,
written to agent.json), so `agent.positions(prices)` on new data computes the same features.
`fin-meta run` fits it on the sources' training periods (`pipeline.stages.fit_env_features`);
the benchmarks and notebooks call `fit_regime_features` too.

The HMM is `fin_meta.regimes.hmm`'s: per bar, the log return and the log of the trailing
`vol_window`-bar volatility (annualised with the training prices' bars per year, both stored),
standardised by the training period's mean and std; full covariances; states ordered by mean
log return (column k = label k, 0 = lowest), as the `hmm` regime detector orders them. Several
training frames (sources) give ONE model: each frame is its own sequence (no transition across
a seam) and they share the standardisation, so an agent sees the same feature on any asset.

Feature row t is P(state_t | bars up to close t) (causal). The filter starts at the first bar
of the prices given (which may be anywhere in a market's history) from the stationary
distribution of the fitted transitions; warm-up bars (fewer than `vol_window` returns) carry no
evidence, so the belief only moves through the transitions there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fin_meta.errors import ConfigError, DataError
from fin_meta.frequency import bars_per_year_of
from fin_meta.regimes.base import close_series, parse_params, resolve_windows
from fin_meta.regimes.hmm import HMMParams, filtered_state_probabilities, fit_hmm, trailing_features

if TYPE_CHECKING:
    from fin_meta.envs.config import EnvConfig

__all__ = [
    "REGIME_FEATURE",
    "RegimeModel",
    "fit_regime_model",
    "fit_regime_features",
    "missing_model_error",
    "regime_feature_names",
    "regime_probabilities",
]

REGIME_FEATURE = "regime_probs"
"""The feature's name in `EnvConfig.features` / an experiment's `features`."""


def missing_model_error() -> ConfigError:
    """The one-line error of `regime_probs` without a fitted `EnvConfig.regime_model`."""
    return ConfigError(
        "regime_probs needs a fitted regime model: fit it on the training period with "
        "fin_meta.envs.regime_features.fit_regime_features(env_config, train_prices) "
        "(fin-meta run does this), or drop regime_probs from features"
    )


class RegimeModel(BaseModel):
    """A Gaussian HMM fitted on a training period, as plain floats (states in label order: by
    mean log return, 0 = lowest). Means and covariances are of the standardised features."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    n_states: int = Field(ge=2)
    """K: hidden states, and the feature's columns."""
    vol_window: int = Field(ge=2)
    """Bars of the trailing volatility feature."""
    bars_per_year: float = Field(gt=0)
    """Annualisation of the volatility feature: the training prices' bars per year."""
    start: list[float]
    """The belief before the first bar given (K): the stationary distribution of `transition`."""
    transition: list[list[float]]
    """Transition probabilities (K x K), from row to column, per bar."""
    means: list[list[float]]
    """State means (K x 2) of the standardised (log return, log volatility)."""
    covariances: list[list[list[float]]]
    """State covariances (K x 2 x 2) of the standardised features."""
    center: list[float]
    """Training mean of (log return, log volatility), subtracted before scaling."""
    scale: list[float]
    """Training std of (log return, log volatility), the divisor."""
    params: dict[str, int | None] = Field(default_factory=dict)
    """The `HMMParams` of the fit (n_states, vol_window, seed, n_init, n_iter, min_fit_bars)."""
    fit_periods: list[str] = Field(default_factory=list)
    """The training frames it was fitted on, `first..last` date each."""
    fit_bars: int = Field(0, ge=0)
    """Bars with full features that the fit used, over all frames."""

    @model_validator(mode="after")
    def _shapes(self) -> RegimeModel:
        k = self.n_states
        expected = {"start": (k,), "transition": (k, k), "means": (k, 2), "covariances": (k, 2, 2),
                    "center": (2,), "scale": (2,)}
        for name, shape in expected.items():
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"{name} must have shape {shape} for n_states={k}, got {value.shape}")
            if not np.isfinite(value).all():
                raise ValueError(f"{name} holds a non-finite number")
        for name in ("start", "transition"):
            value = np.asarray(getattr(self, name))
            if (value < 0).any() or not np.allclose(value.sum(axis=-1), 1.0, atol=1e-6):
                raise ValueError(f"{name} must hold probabilities that sum to 1 (per row)")
        if min(self.scale) <= 0:
            raise ValueError("scale must be positive")
        return self


def regime_feature_names(model: RegimeModel | None) -> list[str]:
    """Column names of the feature: `regime_p0` .. `regime_p{K-1}`; `missing_model_error` without a model."""
    if model is None:
        raise missing_model_error()
    return [f"regime_p{k}" for k in range(model.n_states)]


def regime_probabilities(prices: pd.DataFrame, model: RegimeModel | None) -> np.ndarray:
    """Filtered state probabilities [T, K] of `prices` under `model`, float64; row t uses
    closes up to and including t only; rows sum to 1."""
    if model is None:
        raise missing_model_error()
    x = trailing_features(prices["close"].astype("float64"), model.vol_window, model.bars_per_year)
    z = (x - np.asarray(model.center)) / np.asarray(model.scale)
    return filtered_state_probabilities(z, np.asarray(model.start), np.asarray(model.transition),
                                        np.asarray(model.means), np.asarray(model.covariances))


def _stationary(trans: np.ndarray) -> np.ndarray:
    """The stationary distribution pi = pi @ trans of a transition matrix (K,); one of them
    when there are several, uniform if none is found."""
    k = len(trans)
    system = np.vstack([trans.T - np.eye(k), np.ones((1, k))])
    pi = np.clip(np.linalg.lstsq(system, np.r_[np.zeros(k), 1.0], rcond=None)[0], 0.0, None)
    return pi / pi.sum() if pi.sum() > 0 else np.full(k, 1.0 / k)


def _frames(train_prices: pd.DataFrame | Sequence[pd.DataFrame]) -> list[pd.DataFrame]:
    frames = [train_prices] if isinstance(train_prices, pd.DataFrame) else list(train_prices)
    if not frames:
        raise DataError("regime_probs: no training prices to fit the regime model on")
    return frames


def fit_regime_model(train_prices: pd.DataFrame | Sequence[pd.DataFrame], **params: Any) -> RegimeModel:
    """Fit the HMM of `regime_probs` on training prices only (one frame, or several: one model,
    each frame its own sequence). `params`: `fin_meta.regimes.hmm.HMMParams` fields (n_states,
    vol_window, seed, n_init, n_iter, min_fit_bars); windows in bars, vol_window defaults to a
    month of the prices' bars. Frames of different bar frequencies are a `DataError`."""
    frames = _frames(train_prices)
    p = parse_params(HMMParams, "hmm", dict(params))
    closes = [close_series(frame) for frame in frames]
    per_year = {bars_per_year_of(close) for close in closes}
    if len(per_year) > 1:
        raise DataError(f"regime_probs: the training frames have different bar frequencies ({sorted(per_year)} "
                        "bars a year); fit one regime model per frequency")
    bars_per_year = per_year.pop()
    p = resolve_windows(p, "hmm", closes[0])
    # full features from bar vol_window on (validated closes: no NaN after the warm-up)
    rows = [x for close in closes if len(x := trailing_features(close, p.vol_window, bars_per_year)[p.vol_window:])]
    lengths = [len(x) for x in rows]
    if sum(lengths) < p.min_fit_bars:
        raise DataError(f"regime_probs: the training period has {sum(lengths)} bars with full features, the "
                        f"regime model needs {p.min_fit_bars} (more training data, a shorter vol_window, "
                        "or a lower min_fit_bars)")
    fitted = fit_hmm(np.concatenate(rows), p, lengths=lengths)
    model, order = fitted.model, fitted.order
    transition = model.transmat_[np.ix_(order, order)]
    return RegimeModel(
        n_states=p.n_states,
        vol_window=p.vol_window,
        bars_per_year=float(bars_per_year),
        start=_stationary(transition).tolist(),
        transition=transition.tolist(),
        means=model.means_[order].tolist(),
        covariances=model.covars_[order].tolist(),
        center=fitted.center.tolist(),
        scale=fitted.scale.tolist(),
        params=asdict(p),
        fit_periods=[f"{c.index[0].date()}..{c.index[-1].date()}" for c in closes],
        fit_bars=int(sum(lengths)),
    )


def fit_regime_features(env_config: EnvConfig, train_prices: pd.DataFrame | Sequence[pd.DataFrame],
                        **params: Any) -> EnvConfig:
    """`env_config` with the models its features need, fitted on `train_prices` (training
    period only; see `fit_regime_model` for `params`): with `regime_probs` in its features, a
    copy whose `regime_model` is fitted afresh; otherwise `env_config` itself."""
    if REGIME_FEATURE not in env_config.features:
        return env_config
    model = fit_regime_model(train_prices, **params)
    return type(env_config).model_validate({**env_config.model_dump(), "regime_model": model.model_dump()})
