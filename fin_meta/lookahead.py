"""The perturb-the-future check (DESIGN.md: No look-ahead), for anything that maps prices to
positions: a rule strategy, a user's strategy file, a trained agent.

A position at bar t may use data up to and including close t only. `audit_look_ahead` changes
every price and volume after a cut bar t, recomputes the positions and compares them with the
original ones up to t: any change means the positions peeked at the future. At each of a few
cut bars spread over the series it tries three futures (every later price x1.5, x0.5, and a
random scramble), so a peek at the very next bar flips one way or the other; each costs one
extra call of the positions function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["LookAheadVerdict", "audit_look_ahead", "scramble_after"]

PositionsFn = Callable[[pd.DataFrame], pd.Series]
_PRICE_COLUMNS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class LookAheadVerdict:
    """The result of `audit_look_ahead`: `clean` when no past position moved; otherwise the
    first bar whose position changed (`first_bar`, a date), the cut after which prices were
    scrambled (`cut`), and the position before / after."""

    name: str
    clean: bool
    cuts: tuple[pd.Timestamp, ...]
    first_bar: pd.Timestamp | None = None
    cut: pd.Timestamp | None = None
    before: float = float("nan")
    after: float = float("nan")

    def message(self) -> str:
        """One line for the terminal."""
        if self.clean:
            dates = ", ".join(str(c.date()) for c in self.cuts)
            return f"{self.name}: no look-ahead found (prices scrambled after {dates}; past positions unchanged)"
        return (
            f"{self.name} looks ahead: its position at {self.first_bar.date()} changed from "
            f"{self.before:.6g} to {self.after:.6g} when only prices after {self.cut.date()} changed; "
            "a position at bar t may use data up to close t only (e.g. no shift(-1))"
        )


def scramble_after(prices: pd.DataFrame, bar: int, rng: np.random.Generator,
                   level: float | None = None) -> pd.DataFrame:
    """A copy of `prices` whose OHLC (one random factor per bar, kept consistent; or every bar
    times `level`) and volume after position `bar` are changed; bars up to `bar` are unchanged."""
    out = prices.copy()
    n = len(out) - bar - 1
    if n <= 0:
        return out
    factor = np.full(n, level) if level is not None else np.exp(rng.normal(0.0, 0.2, n))
    for column in _PRICE_COLUMNS:
        if column in out.columns:
            out.iloc[bar + 1 :, out.columns.get_loc(column)] *= factor
    if "volume" in out.columns:
        out.iloc[bar + 1 :, out.columns.get_loc("volume")] *= rng.uniform(0.1, 10.0, n)
    return out


def audit_look_ahead(
    positions_fn: PositionsFn,
    prices: pd.DataFrame,
    *,
    name: str = "positions",
    n_cuts: int = 3,
    seed: int = 0,
    atol: float = 1e-9,
    reference: pd.Series | None = None,
) -> LookAheadVerdict:
    """Check `positions_fn(prices)` for look-ahead at `n_cuts` cut bars spread over the second
    half of the series, three futures each (see the module docstring). `reference`: the positions already computed
    on `prices` (saves one call). Positions that differ by more than `atol` count as changed."""
    base = positions_fn(prices) if reference is None else reference
    base_values = np.asarray(base, dtype=np.float64)
    n = len(prices)
    if n < 4:
        return LookAheadVerdict(name=name, clean=True, cuts=())
    cut_bars = np.unique(np.linspace(n // 2, n - 2, num=max(1, n_cuts)).astype(int))
    rng = np.random.default_rng(seed)
    worst: LookAheadVerdict | None = None
    futures = [(bar, level) for bar in cut_bars for level in (1.5, 0.5, None)]
    for bar, level in futures:
        moved = np.asarray(positions_fn(scramble_after(prices, int(bar), rng, level)), dtype=np.float64)
        past_base, past_new = base_values[: bar + 1], moved[: bar + 1]
        changed = ~np.isclose(past_base, past_new, rtol=0.0, atol=atol, equal_nan=True)
        if changed.any():
            first = int(np.argmax(changed))
            if worst is None or prices.index[first] < worst.first_bar:
                worst = LookAheadVerdict(
                    name=name, clean=False, cuts=tuple(prices.index[cut_bars]), first_bar=prices.index[first],
                    cut=prices.index[int(bar)], before=float(past_base[first]), after=float(past_new[first]),
                )
    return worst or LookAheadVerdict(name=name, clean=True, cuts=tuple(prices.index[cut_bars]))
