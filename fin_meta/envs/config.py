"""`EnvConfig`: the settings shared by `TradingEnv` and `VectorTradingEnv` (torch-free).

Both environments take these fields as keyword arguments; `make_config(**kw)` validates them
and turns a pydantic error into a one-line `ConfigError`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from fin_meta.envs.features import KNOWN_FEATURES, feature_names
from fin_meta.envs.regime_features import RegimeModel
from fin_meta.envs.rewards import REWARDS
from fin_meta.errors import ConfigError

__all__ = ["DEFAULT_EPISODE_LENGTH", "EnvConfig", "make_config", "observation_size"]

DEFAULT_EPISODE_LENGTH = 63
"""Decisions per training episode when `EnvConfig.episode_length` is None (a quarter of daily
bars): the one default shared by the pipeline's task sampler and an agent before `fit`."""


class EnvConfig(BaseModel):
    """How an environment turns prices into observations, actions into positions, and
    positions into equity and rewards (see DESIGN.md: Positions and time)."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    window: int = Field(32, ge=1, le=4096)
    """Bars of per-bar features in one observation (the last `window` bars up to close t)."""

    fees: float = Field(5e-4, ge=0.0, lt=0.5)
    """Proportional fee per unit of traded weight (5e-4 = 5 basis points of the traded value)."""

    slippage: float = Field(5e-4, ge=0.0, lt=0.5)
    """Proportional slippage per unit of traded weight; charged like `fees`."""

    max_position: float = Field(1.0, gt=0.0, le=10.0)
    """Largest absolute target exposure, as a fraction of equity (1.0 = fully invested)."""

    allow_short: bool = True
    """Whether negative targets are allowed; when False, targets are clipped to [0, max_position]."""

    reward: str = "log_return"
    """Name of the reward in `fin_meta.envs.rewards.REWARDS` ("log_return", "differential_sharpe")."""

    episode_length: int | None = Field(None, ge=1)
    """Decisions per episode when windows are drawn at random; None = the whole series of the asset."""

    features: list[str] = Field(default_factory=list)
    """Extra causal per-bar features after the log return (see `fin_meta.envs.features`:
    `FEATURES`, and `regime_probs`, which needs `regime_model`)."""

    regime_model: RegimeModel | None = None
    """The HMM that the `regime_probs` feature filters with, fitted on the training period only
    (`fin_meta.envs.regime_features.fit_regime_features`; `fin-meta run` fits it, replacing any
    given here): plain floats, saved with the agent. None without that feature."""

    action: Literal["continuous", "discrete", "discrete_hold"] = "continuous"
    """"continuous": a target in [-max_position, max_position]; "discrete": {0, 1, 2} = short, flat,
    long; "discrete_hold": {0, 1, 2, 3} = short, flat, long, hold (keep the drifted weight)."""

    adjust: float = Field(1.0, gt=0.0, le=1.0)
    """kappa of partial adjustment: the position held is `w_drift + kappa * (aim - w_drift)`, a
    fraction kappa of the way from the drifted weight to the action's aim (1.0 = all the way)."""

    no_trade_band: bool = False
    """Continuous actions only: the action is (target, half-width h in [0, max_position]) and the
    aim is the drifted weight clamped into [target - h, target + h] (no trade inside the band)."""

    train_cost_multiplier: float = Field(1.0, ge=1.0)
    """m: rewards of training envs charge costs x m (deployment and backtests charge the true costs)."""

    turnover_penalty: float = Field(0.0, ge=0.0)
    """lambda: rewards of training envs lose lambda x |traded weight| (reward units per unit traded)."""

    dsr_eta: float = Field(0.01, gt=0.0, lt=1.0)
    """Adaptation rate of the differential Sharpe ratio's moving moments (per bar)."""

    @field_validator("reward")
    @classmethod
    def _known_reward(cls, value: str) -> str:
        if value not in REWARDS:
            raise ValueError(f"unknown reward {value!r}; choose one of {sorted(REWARDS)}")
        return value

    @field_validator("no_trade_band")
    @classmethod
    def _band_needs_continuous(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("action", "continuous") != "continuous":
            raise ValueError("no_trade_band needs action='continuous' (its action is a target and a half-width)")
        return value

    @field_validator("features")
    @classmethod
    def _known_features(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in KNOWN_FEATURES]
        if unknown:
            raise ValueError(f"unknown features {unknown}; choose from {list(KNOWN_FEATURES)}")
        if len(set(value)) != len(value):
            raise ValueError(f"features {value} name a feature twice")
        return value

    @property
    def cost(self) -> float:
        """Cost per unit of traded weight: fees + slippage."""
        return self.fees + self.slippage

    @property
    def shapes_reward(self) -> bool:
        """Whether training rewards differ from the true ones (cost multiplier or turnover penalty)."""
        return self.train_cost_multiplier != 1.0 or self.turnover_penalty != 0.0

    @property
    def position_bounds(self) -> tuple[float, float]:
        """(lowest, highest) target position after clipping."""
        return (-self.max_position if self.allow_short else 0.0, self.max_position)


def make_config(config: EnvConfig | None = None, **kwargs: Any) -> EnvConfig:
    """Validate environment settings: an `EnvConfig`, keyword fields, or both (keywords win).

    Raises `ConfigError` naming the field and the problem."""
    base = config.model_dump() if config is not None else {}
    base.update(kwargs)
    try:
        return EnvConfig(**base)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid environment settings: {problems}") from None


def observation_size(config: EnvConfig) -> int:
    """Length of one observation vector: window * F + 1 (the position), F = 1 + one per extra
    feature (K for `regime_probs`; without a fitted `regime_model` it is a one-line `ConfigError`)."""
    return config.window * len(feature_names(config.features, config.regime_model)) + 1
