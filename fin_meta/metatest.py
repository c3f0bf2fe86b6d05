"""The meta-test protocol: adaptation curves on held-out segments, averaged with bootstrap CIs.

Like garage's meta-evaluator, for trading: for every held-out test segment (a regime segment of
the test period that no agent trained on), each agent explores / adapts on the first part of the
segment and is evaluated on the rest; `Agent.adaptation_curve` does this for k = 0, 1, 2, ...
adaptation steps (MAML) or episodes of context (RL²) and returns the mean per-bar net log return
of the evaluation part for each k. This module runs it over agents and segments, summarises the
curves across segments (mean and a percentile-bootstrap confidence interval);
`fin_meta.plots.adaptation.plot_adaptation` draws them.

Segments are given as bar ranges `[start, end)` of a prices frame (or of one frame in a list, for
several assets); accepted forms are listed in `segment_bounds`.

That per-segment protocol starts each agent fresh exactly at a regime change, which a live
trader cannot do. The HONEST curve, `curve_by_time_since_change`, scores what an agent really
trades (its walk-forward returns over whole test paths) bucketed by the bars since the regime
last changed (true labels on synthetic data, causal detection dates on real data): if an agent
adapts, its return rises with the time since a change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fin_meta.agents import Agent
from fin_meta.bootstrap import bootstrap_ci, draw_blocks
from fin_meta.envs.features import first_decision_bar
from fin_meta.errors import ConfigError, DataError

__all__ = ["segment_bounds", "adaptation_curves", "adaptation_context", "summarise_curves", "TIME_BUCKETS",
           "curve_by_time_since_change", "curve_rise"]

CURVE_COLUMNS = ["agent", "segment", "asset", "start", "end", "eval_start", "regime", "k", "mean_log_return"]
SUMMARY_COLUMNS = ["agent", "k", "mean", "ci_low", "ci_high", "n_segments"]
TIME_BUCKETS: tuple[int, ...] = (0, 10, 30, 100)
"""Lower edges (bars since the regime changed) of the honest curve's buckets: 0-9, 10-29,
30-99, 100+."""
HONEST_COLUMNS = ["agent", "bucket", "n_bars", "mean", "ci_low", "ci_high"]


def segment_bounds(
    test_segments: Any, prices: Sequence[pd.DataFrame]
) -> pd.DataFrame:
    """Normalise `test_segments` to a frame with int columns `asset, start, end, regime`
    (`[start, end)` bar positions; `regime` -1 when unknown). Accepted:

    * a list of `fin_meta.tasks.Task` (e.g. `held_out_tasks(...)`): bars `start .. start+length`;
    * the frame of `fin_meta.regimes.segments()` (Timestamps `start`, `end` inclusive, `label`),
      for a single prices frame;
    * a sequence of `(start, end)` int pairs (end exclusive), for a single prices frame."""
    rows: list[tuple[int, int, int, int]] = []
    if isinstance(test_segments, pd.DataFrame):
        missing = {"start", "end"} - set(test_segments.columns)
        if missing:
            raise DataError(f"test segments frame lacks columns {sorted(missing)}; "
                            "use fin_meta.regimes.segments()")
        index = prices[0].index
        first = index.get_indexer(pd.DatetimeIndex(test_segments["start"]))
        last = index.get_indexer(pd.DatetimeIndex(test_segments["end"]))
        if (first < 0).any() or (last < 0).any():
            raise DataError("test segment dates are not bars of the prices; build the segments "
                            "from labels of the same prices frame")
        labels = (test_segments["label"].to_numpy(np.int64) if "label" in test_segments
                  else np.full(len(first), -1))
        rows = [(0, int(a), int(b) + 1, int(r)) for a, b, r in zip(first, last, labels, strict=True)]
    else:
        for seg in test_segments:
            if hasattr(seg, "start") and hasattr(seg, "length"):
                rows.append((int(seg.asset), int(seg.start), int(seg.start + seg.length + 1),
                             int(getattr(seg, "regime", -1))))
            else:
                try:
                    a, b = seg
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"cannot read test segment {seg!r}: give Tasks, a segments() "
                                      "frame or (start, end) bar pairs") from exc
                rows.append((0, int(a), int(b), -1))
    out = pd.DataFrame(rows, columns=["asset", "start", "end", "regime"], dtype=np.int64)
    for row in out.itertuples():
        if not 0 <= row.asset < len(prices):
            raise DataError(f"test segment {row.Index} refers to asset {row.asset} but "
                            f"{len(prices)} prices frame(s) were given")
        n_bars = len(prices[row.asset])
        if not 0 <= row.start < row.end <= n_bars:
            raise DataError(f"test segment {row.Index} = bars [{row.start}, {row.end}) does not lie "
                            f"inside the {n_bars} bars of its prices frame")
    return out


def _frames(prices: pd.DataFrame | Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame]) -> list[pd.DataFrame]:
    if isinstance(prices, pd.DataFrame):
        return [prices]
    if isinstance(prices, Mapping):
        return list(prices.values())
    return list(prices)


def adaptation_curves(
    agents: Mapping[str, Agent],
    prices: pd.DataFrame | Sequence[pd.DataFrame] | Mapping[str, pd.DataFrame],
    test_segments: Any,
    steps: Sequence[int],
) -> pd.DataFrame:
    """Run every agent's `adaptation_curve` on every held-out segment.

    Every agent is scored on the same bars of a segment: its evaluation part starts
    `adaptation_context(agents, steps)` bars after the segment's start (after the
    warm-up `window - 1` for a segment at the start of the data), and each agent adapts on
    the bars just before it. Returns a long frame with one row per (agent, segment, k): columns
    `agent, segment, asset, start, end, eval_start, regime, k, mean_log_return` (mean per-bar
    log return net of costs on the evaluation part after k adaptation steps / context
    episodes)."""
    frames = _frames(prices)
    steps = sorted({int(k) for k in steps})
    if not steps or steps[0] < 0:
        raise ConfigError(f"steps={steps} must be a non-empty list of k >= 0")
    if not agents:
        raise ConfigError("adaptation_curves needs at least one agent")
    bounds = segment_bounds(test_segments, frames)
    if bounds.empty:
        raise DataError("no held-out test segments to evaluate on; lower min_length or use a "
                        "longer test period")
    warm_up = max(first_decision_bar(agent.env_config.window) for agent in agents.values())
    context = adaptation_context(agents, steps)
    records: list[tuple[Any, ...]] = []
    for seg in bounds.itertuples():
        eval_start = max(seg.start, warm_up) + context
        if eval_start >= seg.end - 1:
            raise DataError(f"held-out segment [{seg.start}, {seg.end}) cannot hold the {context} bars "
                            "the agents adapt on before evaluation plus 2 evaluated bars; give longer "
                            "segments (or fewer adaptation steps)")
        for name, agent in agents.items():
            curve = agent.adaptation_curve(frames[seg.asset], seg.start, seg.end, steps, eval_start=eval_start)
            for k in steps:
                records.append((name, seg.Index, seg.asset, seg.start, seg.end, eval_start, seg.regime,
                                k, float(curve[k])))
    return pd.DataFrame.from_records(records, columns=CURVE_COLUMNS)


def adaptation_context(agents: Mapping[str, Agent], steps: Sequence[int]) -> int:
    """Bars every agent may adapt on before the shared evaluation part of a segment: the
    longest `Agent.context_bars(steps)`. A held-out segment (past the warm-up) needs at least
    this plus 2 bars."""
    return max(agent.context_bars(steps) for agent in agents.values())


def summarise_curves(
    df: pd.DataFrame,
    rng: np.random.Generator,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
) -> pd.DataFrame:
    """Mean across segments and its percentile-bootstrap `confidence` interval (segments
    resampled with replacement) per agent and k. Columns `agent, k, mean, ci_low, ci_high,
    n_segments`; the values are mean per-bar net log returns."""
    missing = {"agent", "k", "mean_log_return"} - set(df.columns)
    if missing:
        raise DataError(f"curves frame lacks columns {sorted(missing)}; use adaptation_curves()")
    rows = []
    for (agent, k), group in df.groupby(["agent", "k"], sort=True):
        values = group["mean_log_return"].to_numpy(np.float64)
        if len(values) >= 2:
            low, high = bootstrap_ci(values, statistic=_column_means, n_resamples=n_resamples,
                                     confidence=confidence, rng=rng)
        else:  # one segment: no spread to resample
            low = high = float(values[0])
        rows.append((agent, int(k), float(values.mean()), float(low), float(high), len(values)))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _column_means(x: np.ndarray) -> np.ndarray:
    """Mean of each resample (bootstrap_ci passes `segments x n_resamples`)."""
    return np.mean(x, axis=0)


def _buckets(since_change: np.ndarray, n_bars: int, buckets: Sequence[int]) -> tuple[list[int], np.ndarray]:
    """The sorted lower edges and each bar's bucket index (checked: one value per bar, edges from 0)."""
    since = np.asarray(since_change)
    if since.shape != (n_bars,):
        raise DataError(f"since_change has shape {since.shape}; it needs one value per bar of returns ({n_bars})")
    edges = sorted(int(b) for b in buckets)
    if not edges or edges[0] != 0:
        raise ConfigError(f"buckets {list(buckets)}: give lower edges starting at 0, e.g. {list(TIME_BUCKETS)}")
    return edges, np.searchsorted(edges, since, side="right") - 1


def curve_by_time_since_change(
    returns: pd.DataFrame,
    since_change: np.ndarray,
    rng: np.random.Generator,
    *,
    buckets: Sequence[int] = TIME_BUCKETS,
    block_length: float = 21.0,
    n_resamples: int = 2000,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The honest adaptation curve: mean per-bar return of each column of `returns` (bars x
    agents, what they really traded, in time order) over the bars whose `since_change` (bars since
    the regime changed, same length) falls in each bucket, with a stationary-block-bootstrap CI
    (mean block `block_length` bars) resampling the bucket's bars, paired across agents. Columns
    `agent, bucket, n_bars, mean, ci_low, ci_high` (returns in the units given, per bar)."""
    edges, which = _buckets(since_change, len(returns), buckets)
    rows = []
    for i, lo in enumerate(edges):
        name = f"{lo}+" if i == len(edges) - 1 else f"{lo}-{edges[i + 1] - 1}"
        bars = returns.to_numpy(np.float64)[which == i]
        if len(bars) < 2:
            continue
        draws = _resampled_means(bars, rng, n_resamples, min(block_length, len(bars)))  # paired across agents
        lows, highs = _interval(draws, confidence)
        for col, mean, low, high in zip(returns.columns, bars.mean(axis=0), lows, highs, strict=True):
            rows.append((col, name, len(bars), float(mean), float(low), float(high)))
    return pd.DataFrame(rows, columns=HONEST_COLUMNS)


def curve_rise(
    returns: np.ndarray,
    since_change: np.ndarray,
    rng: np.random.Generator,
    *,
    buckets: Sequence[int] = TIME_BUCKETS,
    block_length: float = 21.0,
    n_resamples: int = 2000,
    confidence: float = 0.95,
) -> tuple[float, float, float] | list[tuple[float, float, float]]:
    """How much an agent's honest curve rises: mean return of the last bucket minus the first
    (per bar), with a CI from block-resampling each bucket's bars independently. Returns
    `(rise, ci_low, ci_high)`; for `returns` of shape bars x agents, one triple per agent from
    the same resampled bars (paired across agents, one index draw for all)."""
    r = np.asarray(returns, np.float64)
    table = r.reshape(len(r), -1)
    edges, which = _buckets(since_change, len(r), buckets)
    first, last = table[which == 0], table[which == len(edges) - 1]
    if len(first) < 2 or len(last) < 2:
        raise DataError("curve_rise: the first and the last bucket need >= 2 bars each")
    draws = [_resampled_means(part, rng, n_resamples, min(block_length, len(part))) for part in (first, last)]
    low, high = _interval(draws[1] - draws[0], confidence)
    rise = last.mean(axis=0) - first.mean(axis=0)
    out = [(float(d), float(lo), float(hi)) for d, lo, hi in zip(rise, low, high, strict=True)]
    return out if r.ndim == 2 else out[0]


def _resampled_means(part: np.ndarray, rng: np.random.Generator, n_resamples: int, block_length: float,
                     cells: int = 4_000_000) -> np.ndarray:
    """Column means of `part` (bars x k) over `n_resamples` stationary-block resamples of its
    bars, shape (n_resamples, k), from the resamples' sums (`Blocks.sums`); drawn in chunks of
    at most about `cells` block sums (memory ~100 MB on any number of bars)."""
    n, k = part.shape
    chunk = max(1, int(cells // ((n / block_length + 1) * k)))
    means = [draw_blocks(n, m, rng, block_length, "stationary").sums(part) / n
             for m in np.diff(np.r_[np.arange(0, n_resamples, chunk), n_resamples])]
    return np.concatenate(means)


def _interval(draws: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The central `confidence` percentile interval of each column of `draws` (resamples x k)."""
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha], axis=0)
    return low, high
