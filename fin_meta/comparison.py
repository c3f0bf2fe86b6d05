"""Paired comparisons of two strategies' per-bar returns over one or several seeds.

A claim "A beats B" is the difference of a statistic (Sharpe by default) between A and B on the
SAME bars. `paired_difference_ci` resamples bars in blocks (the stationary bootstrap of
`fin_meta.bootstrap`, so autocorrelation and volatility clusters stay inside each resample), the
same bars for A and B, within each seed; over several seeds it also resamples the seeds
(hierarchical bootstrap), so the interval reflects both the test-path noise and how much the
result moves from one training seed to the next. Units: those of `statistic` (annualised Sharpe
with the default and `periods_per_year` bars a year).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fin_meta.bootstrap import AnnualisedSharpe, block_length_for, draw_blocks, resampled_statistic
from fin_meta.constants import BARS_PER_YEAR
from fin_meta.errors import ConfigError, DataError

__all__ = ["PairedDifference", "paired_difference_ci"]


@dataclass(frozen=True)
class PairedDifference:
    """`statistic(A) - statistic(B)`, averaged over seeds, with its bootstrap interval."""

    diff: float
    """Mean over seeds of the per-seed difference."""
    ci_low: float
    ci_high: float
    per_seed: tuple[float, ...]
    """The difference on each seed, in the order given."""

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero."""
        return bool(self.ci_low > 0 or self.ci_high < 0)


def _series(values: Sequence[np.ndarray] | np.ndarray, what: str) -> list[np.ndarray]:
    seq = [values] if isinstance(values, np.ndarray) and values.ndim == 1 else list(values)
    out = [np.asarray(v, dtype=np.float64).reshape(-1) for v in seq]
    if not out or any(v.size < 2 for v in out):
        raise DataError(f"{what}: give at least one return series of >= 2 bars per seed")
    return out


def paired_difference_ci(
    a: Sequence[np.ndarray] | np.ndarray,
    b: Sequence[np.ndarray] | np.ndarray,
    rng: np.random.Generator,
    *,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    periods_per_year: float = BARS_PER_YEAR,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    block_length: float | None = None,
    resample_seeds: bool = True,
) -> PairedDifference:
    """CI of `statistic(a) - statistic(b)`; `a` and `b` are one per-bar return series, or one
    per seed (seed i of `a` and of `b` on the same bars). `statistic` takes a `bars x resamples`
    array and returns one value per column (default: `annualised_sharpe` at `periods_per_year`).
    `block_length`: mean block (bars) of the stationary bootstrap (default a month of bars).
    `resample_seeds` (with >= 2 seeds) also draws the seeds with replacement."""
    a_s, b_s = _series(a, "a"), _series(b, "b")
    if len(a_s) != len(b_s) or any(x.size != y.size for x, y in zip(a_s, b_s, strict=False)):
        raise DataError("a and b must hold the same number of seeds, each pair on the same bars")
    if not isinstance(rng, np.random.Generator):
        raise ConfigError("rng: pass a numpy Generator, e.g. fin_meta.seeding.numpy_generator(seed)")
    stat = statistic or AnnualisedSharpe(periods_per_year)
    per_seed = np.array([float(np.asarray(stat(x[:, None]))[0] - np.asarray(stat(y[:, None]))[0])
                         for x, y in zip(a_s, b_s, strict=True)])
    draws = np.empty((len(a_s), int(n_resamples)))
    for s, (x, y) in enumerate(zip(a_s, b_s, strict=True)):
        block = block_length if block_length is not None else block_length_for(x.size, periods_per_year)
        blocks = draw_blocks(x.size, int(n_resamples), rng, min(block, x.size), "stationary")
        both = resampled_statistic(np.column_stack([x, y]), blocks, stat)  # the Sharpe ratio from sums
        draws[s] = both[:, 0] - both[:, 1]
    if resample_seeds and len(a_s) > 1:
        pick = rng.integers(0, len(a_s), size=draws.shape)
        draws = np.take_along_axis(draws, pick, axis=0)
    pooled = np.nanmean(draws, axis=0)
    pooled = pooled[np.isfinite(pooled)]
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(pooled, [alpha, 1.0 - alpha]) if pooled.size else (np.nan, np.nan)
    return PairedDifference(float(per_seed.mean()), float(low), float(high), tuple(per_seed.tolist()))
