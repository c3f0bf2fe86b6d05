"""The probability of backtest overfitting by combinatorially symmetric cross-validation (CSCV;
Bailey, Borwein, López de Prado & Zhu 2015).

Given the per-bar returns of N strategies (trials, configurations) over the same T bars:
cut the bars into S equal blocks (S even), and for each of the C(S, S/2) ways to pick half of
the blocks as the in-sample set (the other half is out-of-sample): take the strategy with the
best in-sample Sharpe, its relative rank w among the N out-of-sample Sharpes (rank / (N + 1),
1 = worst), and the logit log(w / (1 - w)). PBO is the share of splits whose logit is <= 0:
how often the in-sample winner ends in the bottom half out of sample. Noise strategies give
PBO near 0.5; a real edge gives PBO near 0.

Vectorised: the blocks' sums of returns and squares (S x N) are combined per split by one
matrix product with the splits' 0/1 block indicators; no loop over splits or bars.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fin_meta.errors import ConfigError, DataError

__all__ = ["DEFAULT_BLOCKS", "MAX_BLOCKS", "PBOResult", "check_blocks", "probability_of_backtest_overfitting"]

DEFAULT_BLOCKS = 16
"""S: the paper's suggestion (12,870 splits)."""
MAX_BLOCKS = 20
"""The most blocks accepted: C(20, 10) = 184,756 splits."""


@dataclass(frozen=True)
class PBOResult:
    """pbo: share of splits whose logit is <= 0 (0..1). logits: one per split (C(S, S/2)).
    is_sharpe / oos_sharpe: per split, the in-sample winner's per-bar Sharpe in and out of
    sample (their gap is the performance degradation). n_blocks (S), n_strategies (N),
    bars_used: the bars cut into blocks (the first T mod S bars are dropped: the most recent
    bars are kept)."""

    pbo: float
    logits: np.ndarray
    is_sharpe: np.ndarray
    oos_sharpe: np.ndarray
    n_blocks: int
    n_strategies: int
    bars_used: int

    @property
    def n_splits(self) -> int:
        """C(S, S/2): the number of in-sample / out-of-sample splits."""
        return len(self.logits)

    @property
    def prob_oos_loss(self) -> float:
        """Share of splits whose in-sample winner has a negative out-of-sample Sharpe."""
        return float(np.mean(self.oos_sharpe < 0))


def check_blocks(n_blocks: int) -> int:
    """`n_blocks` (S) as an int; `ConfigError` unless it is even, >= 2 and <= `MAX_BLOCKS`."""
    if isinstance(n_blocks, bool) or int(n_blocks) != n_blocks or n_blocks < 2 or n_blocks % 2:
        raise ConfigError(f"PBO blocks (S, --blocks): need an even whole number >= 2 (16 is usual), got {n_blocks!r}")
    if n_blocks > MAX_BLOCKS:
        raise ConfigError(f"PBO blocks (S, --blocks): at most {MAX_BLOCKS} (C(S, S/2) splits grow fast), got {n_blocks}")
    return int(n_blocks)


def _matrix(returns: object, n_blocks: int) -> np.ndarray:
    r = np.asarray(returns.to_numpy() if isinstance(returns, pd.DataFrame) else returns, dtype=np.float64)
    if r.ndim != 2:
        raise DataError(f"PBO returns: expected a 2-D bars x strategies matrix, got {r.ndim}-D")
    if r.shape[1] < 2:
        raise DataError(f"PBO needs at least 2 strategies (columns) to rank, got {r.shape[1]}")
    if r.shape[0] < 2 * n_blocks:
        raise DataError(f"PBO: {r.shape[0]} bars are too few for {n_blocks} blocks (at least 2 bars a block, "
                        f"{2 * n_blocks} bars); use fewer blocks or a longer period")
    if not np.isfinite(r).all():
        raise DataError("PBO returns contain NaN or infinite values; drop or fill them first")
    return r


def _split_indicators(n_blocks: int) -> np.ndarray:
    """0/1 matrix (C(S, S/2) x S): row c marks the in-sample blocks of split c."""
    half = n_blocks // 2
    chosen = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(n_blocks), half)),
                         dtype=np.intp, count=math.comb(n_blocks, half) * half).reshape(-1, half)
    marks = np.zeros((len(chosen), n_blocks))
    np.put_along_axis(marks, chosen, 1.0, axis=1)
    return marks


def _sharpe(total: np.ndarray, squares: np.ndarray, n: int, mean: np.ndarray) -> np.ndarray:
    """Per-bar Sharpe from sums of centred returns and their squares over `n` bars (`mean`: the
    centring); 0 where the returns do not vary."""
    var = (squares - total**2 / n) / (n - 1)
    std = np.sqrt(np.maximum(var, 0.0))
    avg = mean + total / n
    out = np.zeros_like(avg)
    np.divide(avg, std, out=out, where=(std > 0) & (std > 1e-12 * np.abs(avg)))
    return out


def probability_of_backtest_overfitting(returns: pd.DataFrame | np.ndarray, n_blocks: int = DEFAULT_BLOCKS
                                        ) -> PBOResult:
    """CSCV PBO of the strategies in the columns of `returns` (per-bar returns, bars x N >= 2,
    finite, at least 2 bars per block) with `n_blocks` (S, even, <= `MAX_BLOCKS`) blocks; see the
    module docstring. Ties: the first best in-sample column wins; tied out-of-sample Sharpes
    share their mean rank. Raises `DataError` / `ConfigError` (one line) for bad input."""
    s = check_blocks(n_blocks)
    r = _matrix(returns, s)
    length = r.shape[0] // s
    used = r[r.shape[0] - s * length:]
    mean = used.mean(axis=0)
    blocks = (used - mean).reshape(s, length, -1)  # centred: the sums of squares keep their precision
    sums, squares = blocks.sum(axis=1), np.einsum("sln,sln->sn", blocks, blocks)
    marks = _split_indicators(s)
    n_half = length * s // 2
    is_sums, is_squares = marks @ sums, marks @ squares
    is_sr = _sharpe(is_sums, is_squares, n_half, mean)
    oos_sr = _sharpe(sums.sum(axis=0) - is_sums, squares.sum(axis=0) - is_squares, n_half, mean)
    rows = np.arange(len(marks))
    best = np.argmax(is_sr, axis=1)
    oos_best = oos_sr[rows, best]
    below = (oos_sr < oos_best[:, None]).sum(axis=1)
    tied = (oos_sr == oos_best[:, None]).sum(axis=1)
    omega = (below + (tied + 1) / 2.0) / (r.shape[1] + 1)
    logits = np.log(omega / (1.0 - omega))
    return PBOResult(pbo=float(np.mean(logits <= 0)), logits=logits, is_sharpe=is_sr[rows, best],
                     oos_sharpe=oos_best, n_blocks=s, n_strategies=r.shape[1], bars_used=len(used))
