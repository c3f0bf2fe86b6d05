"""The sections of an experiment file, one pydantic model each: `data` (DataConfig), `regimes`
(RegimeConfig), `evaluation` (EvaluationConfig) and `tracking` (TrackingConfig); `agent` is
`fin_meta.config.agent.AgentSection`, `env` is `fin_meta.envs.EnvConfig`.

Choices come from their one home: algorithms from the registry `fin_meta.agents.ALGOS` (with
their hyperparameter models, `hparams_model`), regime methods from `fin_meta.regimes.METHODS`,
sources from `fin_meta.sources.SCHEMES`, strategies from `strategies`. Dates are read by
`fin_meta.sources.dates.parse_date`.

Units: dates are calendar dates (YYYY-MM-DD, inclusive); `embargo`, `min_length` and `ffill_limit`
are in bars of the data's frequency (`data.bars_per_year`: inferred from the dates, 252 a year
for daily bars, or given). Left out, `embargo` and the regime windows are durations (a month, a
quarter) converted to bars of that frequency.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import fields as dataclass_fields
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fin_meta.agents import hparams_model
from fin_meta.config.yaml_io import field_error, unknown_key_message
from fin_meta.regimes import METHODS
from fin_meta.regimes.base import parse_params
from fin_meta.sources import parse_source
from fin_meta.sources.dates import parse_date
from strategies import available_strategies, strategy_defaults

__all__ = [
    "DEFAULT_BASELINES",
    "one_of",
    "DataConfig",
    "RegimeConfig",
    "EvaluationConfig",
    "TrackingConfig",
    "WalkForwardConfig",
]

DEFAULT_BASELINES: tuple[str, ...] = ("buy_and_hold", "sma_cross", "momentum", "mean_reversion", "vol_target")
"""The built-in rule strategies every experiment compares against unless told otherwise."""

_STRICT = ConfigDict(extra="forbid", use_attribute_docstrings=True)


def one_of(value: Any, choices: Iterable[str]) -> Any:
    """`value` if it is one of `choices`, else a ValueError naming them all (one line): for
    pydantic validators of every section."""
    names = list(choices)
    if value not in names:
        listed = ", ".join(map(repr, names[:-1])) + f" or {names[-1]!r}" if len(names) > 1 else repr(names[0])
        raise ValueError(f"input should be {listed}, got {value!r}")
    return value


def _read_date(value: Any, info: ValidationInfo) -> Any:
    """A date given as text, read by `parse_date` (dates and None pass to pydantic as they are)."""
    if not isinstance(value, str):
        return value
    ts = parse_date(value, info.field_name or "date")  # DataError is a ValueError: one line
    if ts != ts.normalize():
        raise ValueError(f"{info.field_name}={value!r} has a time of day; give a date, YYYY-MM-DD")
    return ts.date()


Date = Annotated[dt.date, BeforeValidator(_read_date)]
"""A calendar date; text is read by `parse_date`."""


def _known_method(value: str) -> str:
    return one_of(value, METHODS)


def _check_source(value: str) -> str:
    parse_source(value)  # DataError listing the schemes
    return value


class DataConfig(BaseModel):
    """Which prices to load and how to cut them into train / (validation) / test periods."""

    model_config = _STRICT

    sources: list[Annotated[str, AfterValidator(_check_source)]] = Field(min_length=1)
    """Price sources (a single string is accepted): `sample:sp500`, `sample:nasdaq` (shipped,
    offline), `yf:TICKER` (yfinance, cached under `data_dir`), `csv:PATH`, `synthetic:regimes`.
    Several sources pool their training tasks; each is backtested on its own."""
    start: Date | None = None
    """First date loaded (None: the first bar of the source)."""
    end: Date | None = None
    """Last date loaded (None: the last bar of the source)."""
    train_start: Date | None = None
    """First training date (None: `start`, else the first bar)."""
    train_end: Date
    """Last training date (inclusive): models, thresholds and scalers see nothing later."""
    val_start: Date | None = None
    """Optional validation period from here until `embargo` bars before `test_start`."""
    test_start: Date
    """First test date; at least `embargo` bars after `train_end` (checked on the data)."""
    test_end: Date | None = None
    """Last test date (None: `end`, else the last bar)."""
    embargo: int | None = Field(None, ge=0)
    """Bars that must lie strictly between consecutive periods (so rolling windows of one
    period never see the next). None: one month of bars (21 daily, 4 weekly, 1 monthly)."""
    bars_per_year: float | None = Field(None, gt=0, allow_inf_nan=False)
    """Bars per year of the prices, for every annualised figure (Sharpe, CAGR, volatility) and
    every default window given as a duration. None: inferred from the dates (252 daily, 365 for
    daily bars with weekends, 52 weekly, 12 monthly, intraday from the bars per session)."""
    data_dir: str | None = None
    """Price cache folder for `yf:` sources (None: $FIN_META_DATA_DIR, else `./data`)."""
    ffill_limit: int = Field(5, ge=0)
    """Forward-fill at most this many consecutive missing bars; longer gaps are an error."""
    source_params: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments of the loader, e.g. `{n_bars: 5040, seed: 1}` for `synthetic:`."""

    @field_validator("sources", mode="before")
    @classmethod
    def _wrap_single(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("sources")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        dupes = sorted({s for s in value if value.count(s) > 1})
        if dupes:
            raise ValueError(f"sources {dupes} are listed more than once; list each source once")
        return value

    _ORDER: ClassVar[tuple[str, ...]] = (
        "start", "train_start", "train_end", "val_start", "test_start", "test_end", "end",
    )

    @model_validator(mode="after")
    def _dates_in_order(self) -> DataConfig:
        given = [(k, getattr(self, k)) for k in self._ORDER if getattr(self, k) is not None]
        for (k1, d1), (k2, d2) in zip(given, given[1:], strict=False):
            may_equal = k1 == "start" or k2 == "end"
            if d1 > d2 or (d1 == d2 and not may_equal):
                raise field_error(
                    "DataConfig", (k2,),
                    f"{k2} ({d2}) must be {'on or ' if may_equal else ''}after {k1} ({d1}); "
                    "the dates must run start <= train_start < train_end < val_start < "
                    "test_start < test_end <= end",
                    d2.isoformat(),
                )
        return self

    def split_kwargs(self) -> dict[str, Any]:
        """The period keys as keyword arguments of `fin_meta.splits.split_periods` (ISO dates)."""
        keys = ("train_start", "train_end", "val_start", "test_start", "test_end")
        return {k: (None if getattr(self, k) is None else getattr(self, k).isoformat()) for k in keys} | {
            "embargo": self.embargo
        }


class RegimeConfig(BaseModel):
    """How bars are labelled with market regimes (each regime segment is a task)."""

    model_config = _STRICT

    method: Annotated[str, AfterValidator(_known_method)] = "trend_vol"
    """A method of `fin_meta.regimes.METHODS`: `trend_vol` (trailing trend x realised volatility,
    4 labels) or `hmm` (a Gaussian hidden Markov model fitted on the training period only)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Parameters of the method (trend_vol: trend_window, vol_window, vol_quantile, ...;
    hmm: n_states, vol_window, n_init, ...); unknown ones are rejected. Windows given are in
    bars; left out, they are durations (trend: a quarter, volatility: a month) in bars of the
    data's frequency."""
    min_length: int = Field(20, ge=1)
    """Regime runs shorter than this many bars are merged into a neighbour."""
    task_labels: Literal["hindsight", "causal"] = "hindsight"
    """Labels that group training tasks: `hindsight` (smoothed; allowed for grouping only) or
    `causal` (the labels an agent could know at the time). Test-time labels are always causal."""
    task_windows: Literal["start", "inside"] = "start"
    """Where a training window may lie: `start` (conditioned only on the label at its start; it
    runs on through whatever follows) or `inside` (legacy: the whole window inside one segment,
    which conditions on the future and teaches that trends persist; only to reproduce old runs)."""

    @model_validator(mode="after")
    def _check_params(self) -> RegimeConfig:
        params_cls = METHODS[self.method]
        valid = [f.name for f in dataclass_fields(params_cls)]
        for key in self.params:
            if key not in valid:
                raise field_error(
                    "RegimeConfig", ("params", key),
                    f"method {self.method!r} has no parameter {key!r}; valid: {', '.join(valid)}",
                    self.params[key],
                )
        parse_params(params_cls, self.method, dict(self.params))  # value checks
        return self


def _check_steps(value: list[int]) -> list[int]:
    if any(k < 0 for k in value) or value != sorted(set(value)):
        raise ValueError(f"{value} must be increasing, distinct and >= 0, e.g. [0, 1, 2, 5]")
    return value


class WalkForwardConfig(BaseModel):
    """A walk-forward with refits over the test period (rolling origin): each fold meta-trains on
    the bars up to `embargo` bars before its block, then trades the next `refit_every` bars; the
    blocks' positions are stitched into one test series (`fin_meta.splits.walk_forward_folds`)."""

    model_config = _STRICT

    refit_every: int | None = Field(None, ge=1)
    """Bars traded by each fold before the agent is trained again. None: a year of the data's
    bars (252 daily, 12 monthly)."""
    train_bars: int | None = Field(None, ge=1)
    """Training bars of each fold: None expands the window from the first training bar; N rolls
    it (the latest N bars before the embargo)."""
    embargo: int | None = Field(None, ge=0)
    """Bars strictly between a fold's last training bar and its first traded bar. None: a month
    of the data's bars (21 daily)."""
    warm_start: bool = True
    """Each fold continues training the previous fold's agent (True), or trains a fresh one
    seeded per fold (False)."""
    refit_iterations: int | None = Field(None, ge=1)
    """Iterations of each warm-started refit after the first fold (the first trains
    `agent.iterations`). None: `agent.iterations` every fold. Needs `warm_start: true`."""

    @model_validator(mode="after")
    def _refits_continue_an_agent(self) -> WalkForwardConfig:
        if self.refit_iterations is not None and not self.warm_start:
            raise ValueError("refit_iterations shortens warm-started refits: set warm_start: true, or drop "
                             "refit_iterations (a fresh agent per fold trains agent.iterations)")
        return self


class EvaluationConfig(BaseModel):
    """What the agent is compared with on the test period, and how."""

    model_config = _STRICT

    baselines: list[str] = Field(default_factory=lambda: list(DEFAULT_BASELINES))
    """Rule strategies backtested beside the agent (names from `fin-meta strategies`)."""
    strategy_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Parameters per baseline, e.g. `{sma_cross: {fast: 20, slow: 100}}` (defaults otherwise)."""
    strategies_dir: str | None = None
    """A folder of your own strategy modules (`*.py` with `positions(prices, **params)`)."""
    pooled_ppo: bool = True
    """Also train the pooled (non-meta) PPO baseline with the same budget and compare."""
    adaptation_steps: Annotated[list[int], AfterValidator(_check_steps)] = Field(
        default_factory=lambda: [0, 1, 2, 5]
    )
    """Meta-test adaptation curve points: gradient steps (maml) or context episodes (rl2)."""
    bootstrap_samples: int = Field(1000, ge=100)
    """Bootstrap resamples of the 95% confidence intervals of Sharpe ratios."""
    min_test_bars: int | None = Field(None, ge=2)
    """Fewest bars a scored period (the test period, and the validation period when
    `data.val_start` is set) may have; shorter is refused before training (a Sharpe over a few
    dozen bars means little). None: one year of the data's bars (252 daily, 12 monthly)."""
    walk_forward: WalkForwardConfig | None = None
    """Walk-forward with refits over the test period (`{refit_every, train_bars, embargo,
    warm_start}`; `{}` takes the defaults); None: one agent trained once on the training period."""
    ppo: dict[str, Any] = Field(default_factory=dict)
    """Hyperparameters of the pooled PPO baseline (`PPOConfig` keys, e.g. `{num_envs: 512,
    lr: 1.0e-4}`; defaults otherwise). Its seed and device are the experiment's, its budget
    `agent.iterations`."""

    @model_validator(mode="after")
    def _check_ppo(self) -> EvaluationConfig:
        model = hparams_model("ppo")
        allowed = [k for k in model.model_fields if k not in ("seed", "device")]
        for key in self.ppo:
            if key not in allowed:
                raise field_error("EvaluationConfig", ("ppo", key),
                                  unknown_key_message(key, ("evaluation", "ppo"), allowed), self.ppo[key])
        try:
            model.model_validate(self.ppo)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise field_error("EvaluationConfig", ("ppo", *err["loc"]), err["msg"], err.get("input")) from None
        return self

    @model_validator(mode="after")
    def _check_strategies(self) -> EvaluationConfig:
        known = available_strategies(self.strategies_dir)
        for i, name in enumerate(self.baselines):
            if name not in known:
                raise field_error(
                    "EvaluationConfig", ("baselines", i),
                    f"unknown strategy {name!r}; available: {', '.join(sorted(known))}", name,
                )
        for name, params in self.strategy_params.items():
            if name not in self.baselines:
                raise field_error(
                    "EvaluationConfig", ("strategy_params", name),
                    f"{name!r} is not in evaluation.baselines {self.baselines}; add it there "
                    "or remove its parameters", params,
                )
            valid = strategy_defaults(known[name])
            for key in params:
                if key not in valid:
                    raise field_error(
                        "EvaluationConfig", ("strategy_params", name, key),
                        f"strategy {name!r} has no parameter {key!r}; valid: {', '.join(valid)}",
                        params[key],
                    )
        return self


class TrackingConfig(BaseModel):
    """Where the run is logged (MLflow)."""

    model_config = _STRICT

    enabled: bool = True
    """Log the run to MLflow (`fin-meta run --no-track` turns it off for one run)."""
    experiment: str | None = None
    """MLflow experiment name (None: the experiment's `name`)."""
    tracking_uri: str | None = None
    """MLflow store (None: $MLFLOW_TRACKING_URI, else `sqlite:///mlflow.db` in the working folder)."""
    offline_html: bool = False
    """Embed plotly.js in the interactive HTML charts (about 4.5 MB each, open offline); False
    loads it from its CDN when a chart is opened (`fin-meta run --offline-html` for one run)."""
