"""`synthetic:regimes`: a seeded Markov-switching price generator whose regimes are known.

Each regime has its own daily log-return process `r[t] = drift + x[t]`,
`x[t] = phi * x[t-1] + e[t]`, `e ~ N(0, vol^2 (1 - phi^2))`, so `vol` is the stationary daily
standard deviation of log returns and `phi` their lag-1 autocorrelation. Visits last a
geometric number of bars with mean `mean_duration`; on leaving, the next regime is drawn
uniformly from the others. This is the controlled benchmark for adaptation.

Two presets (`preset=` / `source_params: {preset: ...}`):

* `context` (the default): four regimes with the SAME volatility that differ only in the sign
  of their drift (bull: long, bear: short) or of their autocorrelation (momentum: follow,
  reversal: fade), visits of ~1000 bars. The evidence per bar is weak, so the regime is barely
  readable from a short observation window and well readable from the whole past: memory
  (context) is what pays. `benchmarks/adaptation.py` prints both Bayes-filter ceilings.
* `easy`: the original four regimes (calm, mean-reverting, trending, volatile) that differ in
  volatility too, so the last 32 bars already reveal the regime.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd

from fin_meta.errors import DataError
from fin_meta.seeding import numpy_generator
from fin_meta.sources.dates import parse_date
from fin_meta.sources.validate import validate_prices

__all__ = ["RegimeSpec", "SYNTHETIC_REGIMES", "EASY_REGIMES", "CONTEXT_REGIMES", "PRESETS", "DEFAULT_PRESET",
           "regime_specs", "synthetic_regimes", "load"]

SOURCE = "synthetic:regimes"


@dataclass(frozen=True)
class RegimeSpec:
    """One regime of the generator (daily log returns)."""

    label: int
    """Integer label used in the ground-truth series."""
    name: str
    """Human name."""
    drift: float
    """Mean daily log return."""
    vol: float
    """Stationary standard deviation of daily log returns."""
    phi: float
    """AR(1) coefficient = lag-1 autocorrelation of daily returns."""
    mean_duration: float
    """Expected length of one visit, in bars."""
    best_policy: str
    """What an oracle does: 'follow' (sign of the last return), 'fade' (its opposite),
    'long' (a steady long), 'short' (a steady short) or 'flat'."""


EASY_REGIMES: Mapping[int, RegimeSpec] = MappingProxyType(
    {
        0: RegimeSpec(
            0, "calm", drift=0.0004, vol=0.006, phi=0.0, mean_duration=250, best_policy="long"
        ),
        1: RegimeSpec(
            1,
            "mean_reverting",
            drift=0.0,
            vol=0.010,
            phi=-0.3,
            mean_duration=150,
            best_policy="fade",
        ),
        2: RegimeSpec(
            2, "trending", drift=0.0003, vol=0.014, phi=0.3, mean_duration=150, best_policy="follow"
        ),
        3: RegimeSpec(
            3, "volatile", drift=-0.0006, vol=0.024, phi=0.0, mean_duration=100, best_policy="flat"
        ),
    }
)
"""The `easy` preset, by label, ordered by volatility (calm < mean-reverting < trending <
volatile): the volatility alone nearly gives the regime away."""

_VOL, _DRIFT, _PHI, _DURATION = 0.010, 0.001, 0.2, 1000.0
CONTEXT_REGIMES: Mapping[int, RegimeSpec] = MappingProxyType(
    {
        0: RegimeSpec(0, "bull", drift=_DRIFT, vol=_VOL, phi=0.0, mean_duration=_DURATION, best_policy="long"),
        1: RegimeSpec(1, "bear", drift=-_DRIFT, vol=_VOL, phi=0.0, mean_duration=_DURATION, best_policy="short"),
        2: RegimeSpec(2, "momentum", drift=0.0, vol=_VOL, phi=_PHI, mean_duration=_DURATION, best_policy="follow"),
        3: RegimeSpec(3, "reversal", drift=0.0, vol=_VOL, phi=-_PHI, mean_duration=_DURATION, best_policy="fade"),
    }
)
"""The `context` preset: equal volatility (1 % a day), drift +-0.1 % a day or lag-1
autocorrelation +-0.2, ~1000-bar visits. Bayes filter with the true parameters (seeds 0-4, 5040
bars, `benchmarks/adaptation.py` prints it per run): 53 % accuracy on the last 32 bars vs 82 %
on all past bars; the `easy` preset: 92 % vs 93 %."""

PRESETS: Mapping[str, Mapping[int, RegimeSpec]] = MappingProxyType({"context": CONTEXT_REGIMES, "easy": EASY_REGIMES})
DEFAULT_PRESET = "context"
SYNTHETIC_REGIMES = PRESETS[DEFAULT_PRESET]
"""The default preset's regimes."""


def regime_specs(regimes: Mapping[int, RegimeSpec] | Sequence[RegimeSpec] | str | None = None) -> list[RegimeSpec]:
    """The regimes as a checked list: given specs, a preset name, or None (the default preset)."""
    if regimes is None:
        regimes = DEFAULT_PRESET
    if isinstance(regimes, str):
        if regimes not in PRESETS:
            raise DataError(f"{SOURCE}: unknown preset {regimes!r}; use one of {sorted(PRESETS)}")
        regimes = PRESETS[regimes]
    return _check_specs(regimes)


def synthetic_regimes(
    n_bars: int = 2520,
    seed: int = 0,
    *,
    start: str | pd.Timestamp = "2000-01-03",
    regimes: Mapping[int, RegimeSpec] | Sequence[RegimeSpec] | str | None = None,
    preset: str | None = None,
    initial_price: float = 100.0,
) -> tuple[pd.DataFrame, pd.Series]:
    """Generate `n_bars` business-day bars from `start` and their true regime labels.

    Returns `(prices, labels)`: prices in DESIGN.md's convention (open = previous close, high
    and low spread around the bar by its regime's volatility, volume in shares), labels an
    int64 Series named `regime` on the same index. Deterministic for a given `seed`; all draws
    come from one numpy Generator. `preset` names a preset (`context`, the default, or `easy`);
    `regimes` gives specs (or a preset name) instead.
    """
    if preset is not None and regimes is not None:
        raise DataError(f"{SOURCE}: give either preset or regimes, not both")
    specs = regime_specs(preset if regimes is None else regimes)
    n_bars = _check_int(n_bars, "n_bars", minimum=2)
    if not np.isfinite(initial_price) or initial_price <= 0:
        raise DataError(f"{SOURCE}: initial_price must be > 0, got {initial_price!r}")
    first = parse_date(start, "start", source=SOURCE)
    if first is None:
        raise DataError(f"{SOURCE}: start must be a date (YYYY-MM-DD), got None")
    index = pd.bdate_range(first, periods=n_bars, name="date")
    rng = numpy_generator(seed)
    state = _regime_path(n_bars, specs, rng)
    log_ret = _returns(state, specs, rng)
    prices = _bars(log_ret, state, specs, float(initial_price), rng)
    prices.index = index
    labels = pd.Series(
        np.array([s.label for s in specs], dtype=np.int64)[state], index=index, name="regime"
    )
    return validate_prices(prices, SOURCE), labels


def load(name: str, **params: object) -> pd.DataFrame:
    """Prices only of `synthetic:<name>` (only `regimes` exists); params go to
    `synthetic_regimes` (n_bars, seed, preset, regimes, initial_price)."""
    if name != "regimes":
        raise DataError(f"unknown synthetic source 'synthetic:{name}'; available: {SOURCE}")
    allowed = {"n_bars", "seed", "preset", "regimes", "initial_price"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise DataError(
            f"{SOURCE}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))} "
            "(use load_prices' start/end to select dates)"
        )
    return synthetic_regimes(**params)[0]  # type: ignore[arg-type]


def _check_int(value: object, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise DataError(f"{SOURCE}: {what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_specs(
    regimes: Mapping[int, RegimeSpec] | Sequence[RegimeSpec] | None,
) -> list[RegimeSpec]:
    if regimes is None:
        regimes = SYNTHETIC_REGIMES
    specs = list(regimes.values()) if isinstance(regimes, Mapping) else list(regimes)
    if not specs or not all(isinstance(s, RegimeSpec) for s in specs):
        raise DataError(f"{SOURCE}: regimes must be a non-empty list of RegimeSpec")
    for s in specs:
        if not (s.vol > 0 and abs(s.phi) < 1 and s.mean_duration >= 1 and np.isfinite(s.drift)):
            raise DataError(
                f"{SOURCE}: regime {s.name!r} needs vol > 0, -1 < phi < 1 and mean_duration >= 1"
            )
    if len({s.label for s in specs}) != len(specs):
        raise DataError(f"{SOURCE}: regime labels must be unique")
    return specs


def _regime_path(n_bars: int, specs: list[RegimeSpec], rng: np.random.Generator) -> np.ndarray:
    """Index into `specs` of each bar (a Python loop over visits, not bars)."""
    k = len(specs)
    durations = np.array([s.mean_duration for s in specs], dtype=float)
    state = np.empty(n_bars, dtype=np.int64)
    current = int(rng.choice(k, p=durations / durations.sum()))
    pos = 0
    while pos < n_bars:
        length = int(rng.geometric(1.0 / durations[current]))
        state[pos : pos + length] = current
        pos += length
        if k > 1:
            step = int(rng.integers(1, k))
            current = (current + step) % k
    return state


def _returns(state: np.ndarray, specs: list[RegimeSpec], rng: np.random.Generator) -> np.ndarray:
    """Daily log returns: per-regime AR(1) deviations around the drift, filtered per visit."""
    from scipy.signal import lfilter  # slow to import: only when generating

    drift = np.array([s.drift for s in specs])[state]
    phi = np.array([s.phi for s in specs])[state]
    vol = np.array([s.vol for s in specs])[state]
    shocks = rng.standard_normal(state.size) * vol * np.sqrt(1.0 - phi**2)
    dev = np.empty_like(shocks)
    bounds = np.r_[0, np.flatnonzero(np.diff(state)) + 1, state.size]
    prev = 0.0
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        a = phi[lo]
        dev[lo:hi], _ = lfilter([1.0], [1.0, -a], shocks[lo:hi], zi=[a * prev])
        prev = dev[hi - 1]
    return drift + dev


def _bars(
    log_ret: np.ndarray,
    state: np.ndarray,
    specs: list[RegimeSpec],
    initial_price: float,
    rng: np.random.Generator,
) -> pd.DataFrame:
    vol = np.array([s.vol for s in specs])[state]
    close = initial_price * np.exp(np.cumsum(log_ret))
    open_ = np.r_[initial_price, close[:-1]]
    wick = np.abs(rng.standard_normal((2, close.size))) * 0.5 * vol
    volume = np.round(1e6 * (vol / 0.01) * np.exp(0.25 * rng.standard_normal(close.size)))
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * np.exp(wick[0]),
            "low": np.minimum(open_, close) * np.exp(-wick[1]),
            "close": close,
            "volume": volume,
        }
    )
