"""Bootstrap confidence intervals of per-bar returns, and the resamples they draw, block by block.

A resample is `n_bars` bars laid out in blocks of consecutive bars (wrapping round the end of the
series), each block starting at a uniformly drawn bar: blocks of one bar (the iid bootstrap),
of geometric lengths with mean `block_length` (the stationary bootstrap, Politis & Romano 1994)
or of the fixed length `block_length` (circular). `draw_blocks` draws a few numbers per block,
not per bar; `Blocks.indices` spells the resamples out bar by bar for any statistic, and
`Blocks.sums` gives every resample's column sums from prefix sums in time proportional to the
number of blocks: all that means, variances and Sharpe ratios need (a month-long block makes
that about 20 times less work than indexing every bar). `bootstrap_ci` is the percentile
interval of any statistic (of the Sharpe ratio from sums).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fin_meta.constants import BARS_PER_YEAR
from fin_meta.errors import ConfigError
from fin_meta.metrics import FloatOrArray, annualised_sharpe, as_returns, sharpe_from_sums

__all__ = ["AnnualisedSharpe", "Blocks", "block_length_for", "bootstrap_ci", "draw_blocks", "resample_indices",
           "resampled_sharpe", "resampled_statistic"]

_CELLS = 4_000_000
"""Block sums `Blocks.sums` computes at a time (its temporaries: ~32 MB each)."""


@dataclass(frozen=True)
class Blocks:
    """The blocks of `n_resamples` resamples of `n_bars` bars. Resample j occupies the flat
    positions ``j * n_bars .. (j + 1) * n_bars - 1``; `starts` (ascending, int64) are the flat
    positions where blocks begin (every resample begins one) and `sources` the bar each block
    copies first, continuing with the next bars and wrapping round the end."""

    n_bars: int
    n_resamples: int
    starts: np.ndarray
    sources: np.ndarray

    def lengths(self) -> np.ndarray:
        """Bars in each block."""
        return np.diff(self.starts, append=self.n_bars * self.n_resamples)

    def indices(self) -> np.ndarray:
        """The bar indices of every resample, shape (n_bars, n_resamples), C-contiguous (int32
        where it fits: half the memory of int64 for the gathers it drives)."""
        n, total = self.n_bars, self.n_bars * self.n_resamples
        small = np.int32 if 2 * total < 2**31 else np.int64
        block_of = np.zeros(total, dtype=small)
        block_of[self.starts[1:]] = 1
        np.cumsum(block_of, out=block_of)  # the block each flat position belongs to
        shift = (self.sources - self.starts).astype(small)  # flat position + shift = bar copied
        index = shift.take(block_of)
        index += np.arange(total, dtype=small)
        np.subtract(index, n, out=index, where=index >= n)  # wrap round the end (index < 2 n)
        return np.ascontiguousarray(index.reshape(self.n_resamples, n).T)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Column sums of every resample of `values` (bars, or bars x columns), shape
        (n_resamples,) or (n_resamples, columns): the sum of `values[indices()]` along the bars,
        up to rounding, from prefix sums of the series written out twice (a block wraps)."""
        v = np.asarray(values, dtype=np.float64)
        table = v.reshape(self.n_bars, -1)
        ends = self.sources + self.lengths()
        first_blocks = np.searchsorted(self.starts, np.arange(self.n_resamples) * self.n_bars)
        out = np.empty((self.n_resamples, table.shape[1]))
        step = max(1, _CELLS // self.starts.size)  # columns at a time: temporaries of at most ~_CELLS floats
        for c in range(0, table.shape[1], step):
            part = table[:, c:c + step]
            prefix = np.zeros((2 * self.n_bars + 1, part.shape[1]))
            np.cumsum(np.concatenate([part, part]), axis=0, out=prefix[1:])
            per_block = prefix[ends]
            per_block -= prefix[self.sources]
            out[:, c:c + step] = np.add.reduceat(per_block, first_blocks, axis=0)
        return out[:, 0] if v.ndim == 1 else out


def draw_blocks(n_bars: int, n_resamples: int, rng: np.random.Generator, block_length: float | None,
                block: Literal["stationary", "circular"] = "stationary") -> Blocks:
    """Draw the blocks of `n_resamples` bootstrap resamples of `n_bars` bars: one bar each
    (`block_length` None), geometric lengths of mean `block_length` bars (``stationary``; a block
    running into the next resample is cut there, which leaves its law unchanged, the geometric
    being memoryless) or `int(block_length)` bars (``circular``); each from a uniform bar."""
    n, m = int(n_bars), int(n_resamples)
    total = n * m
    if block_length is not None and not block_length >= 1.0:
        raise ConfigError(f"block_length: must be at least 1 bar (None: the iid bootstrap), got {block_length}")
    if block_length is None:
        starts = np.arange(total, dtype=np.int64)
    elif block == "circular":
        starts = (np.arange(m, dtype=np.int64)[:, None] * n + np.arange(0, n, int(block_length))).ravel()
    else:
        p = 1.0 / float(block_length)
        cuts, reach = [], 0
        while reach < total:  # block ends across all resamples laid end to end (usually one draw)
            ends = reach + np.cumsum(rng.geometric(p, size=int((total - reach) * p * 1.05) + 16))
            cuts.append(ends)
            reach = int(ends[-1])
        ends = np.concatenate(cuts)
        is_start = np.zeros(total, dtype=bool)
        is_start[ends[ends < total]] = True
        is_start[::n] = True  # every resample starts a block at its first bar
        starts = np.flatnonzero(is_start)
    return Blocks(n, m, starts, rng.integers(0, n, size=starts.size))


def resample_indices(n_bars: int, n_resamples: int, rng: np.random.Generator, block_length: float | None,
                     block: Literal["stationary", "circular"] = "stationary") -> np.ndarray:
    """Bootstrap bar indices, shape (n_bars, n_resamples): `draw_blocks` spelled out bar by bar."""
    return draw_blocks(n_bars, n_resamples, rng, block_length, block).indices()


def block_length_for(n_bars: int, periods_per_year: float = BARS_PER_YEAR) -> float:
    """Mean block length (bars) of the stationary bootstrap of every reported CI: a month of bars
    (21 daily, 4 weekly, 1 monthly), at most `n_bars`; blocks keep autocorrelation and clustered
    volatility inside each resample."""
    return float(min(max(1.0, round(periods_per_year / 12.0)), max(1, int(n_bars))))


@dataclass(frozen=True)
class AnnualisedSharpe:
    """`annualised_sharpe` at `periods_per_year` as a statistic of `bootstrap_ci`, which computes
    it from each resample's sum and sum of squares (`resampled_sharpe`) rather than its bars."""

    periods_per_year: float = BARS_PER_YEAR

    def __call__(self, returns: np.ndarray) -> FloatOrArray:
        return annualised_sharpe(returns, self.periods_per_year)


def bootstrap_ci(
    returns: object,
    statistic: Callable[[np.ndarray], FloatOrArray] = annualised_sharpe,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
    block_length: float | None = None,
    block: Literal["stationary", "circular"] = "stationary",
) -> tuple[float, float] | list[tuple[float, float]]:
    """Percentile bootstrap confidence interval ``(low, high)`` of ``statistic`` of one return
    series; for a ``bars x columns`` array, one interval per column from the SAME resampled bars
    (paired across columns, and one index draw instead of one per column).

    ``statistic`` is called on a ``bars x n_resamples`` array and must return one value per
    column (every function of this module does); the Sharpe ratio (`annualised_sharpe`, or
    `AnnualisedSharpe(periods_per_year)`) is computed from each resample's sums instead, the
    same value up to rounding. ``rng`` is required (no hidden global state). ``block_length``
    (bars) switches from the iid bootstrap to a block bootstrap that keeps autocorrelation:
    ``block="stationary"`` (random geometric block lengths, mean ``block_length``) or
    ``"circular"`` (fixed length). Resamples whose statistic is undefined (NaN) are dropped; if
    none is left the interval is (NaN, NaN).
    """
    r = as_returns(returns)
    if not isinstance(rng, np.random.Generator):
        raise ConfigError("rng: pass a numpy Generator, e.g. fin_meta.seeding.numpy_generator(seed)")
    if int(n_resamples) < 1:
        raise ConfigError(f"n_resamples: must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence: must be strictly between 0 and 1, got {confidence}")
    if block not in ("stationary", "circular"):
        raise ConfigError(f"block: must be 'stationary' or 'circular', got {block!r}")
    if block_length is not None and not 1.0 <= block_length <= r.shape[0]:
        raise ConfigError(
            f"block_length: must be between 1 and the number of bars ({r.shape[0]}), got {block_length}"
        )
    blocks = draw_blocks(r.shape[0], int(n_resamples), rng, block_length, block)
    draws = resampled_statistic(r.reshape(r.shape[0], -1), blocks, statistic)
    cis = [_percentiles(values, confidence) for values in draws.T]
    return cis[0] if r.ndim == 1 else cis


def resampled_sharpe(returns: np.ndarray, blocks: Blocks, periods_per_year: float = BARS_PER_YEAR) -> np.ndarray:
    """`annualised_sharpe` of every resample of `blocks` of each column of `returns` (bars x
    columns), shape (n_resamples, columns), from the resamples' sums and sums of squares
    (`fin_meta.metrics.sharpe_from_sums`)."""
    n, k = returns.shape
    both = blocks.sums(np.concatenate([returns, returns * returns], axis=1))
    return sharpe_from_sums(both[:, :k], both[:, k:], n, periods_per_year)


def resampled_statistic(returns: np.ndarray, blocks: Blocks, statistic: Callable[[np.ndarray], FloatOrArray]
                        ) -> np.ndarray:
    """`statistic` of every resample of `blocks` of each column of `returns` (bars x columns),
    shape (n_resamples, columns): the Sharpe ratio (`annualised_sharpe` or `AnnualisedSharpe`)
    from the resamples' sums, any other statistic on the resampled bars."""
    if statistic is annualised_sharpe or isinstance(statistic, AnnualisedSharpe):
        return resampled_sharpe(returns, blocks, getattr(statistic, "periods_per_year", BARS_PER_YEAR))
    idx = blocks.indices()
    return np.stack([np.asarray(statistic(column[idx]), dtype=np.float64).reshape(-1) for column in returns.T],
                    axis=1)


def _percentiles(values: FloatOrArray, confidence: float) -> tuple[float, float]:
    """The central `confidence` interval of the finite `values` (NaN, NaN when none is)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if (values := values[np.isfinite(values)]).size == 0:
        return (float("nan"), float("nan"))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return (float(low), float(high))
