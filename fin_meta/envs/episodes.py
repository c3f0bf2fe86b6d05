"""Episode windows (tasks): which decision bars an episode of an asset may cover.

An episode (start s, length L) decides at bars s, s+1, ..., s+L-1 and needs close[s+L], so
s >= window (a full observation window of real returns) and s + L <= n_bars - 1.
"""

from __future__ import annotations

from fin_meta.envs.features import first_decision_bar
from fin_meta.errors import ConfigError

__all__ = ["full_length", "start_bounds", "check_task"]


def full_length(n_bars: int, window: int) -> int:
    """Decisions in the longest episode of a series of `n_bars` bars."""
    return n_bars - 1 - first_decision_bar(window)


def start_bounds(n_bars: int, window: int, length: int) -> tuple[int, int]:
    """Inclusive (lowest, highest) start of an episode of `length` decisions; raises if none fits."""
    low, high = first_decision_bar(window), n_bars - 1 - length
    if high < low:
        raise ConfigError(
            f"an episode of {length} decisions with window={window} needs {length + window + 1} bars, "
            f"the series has {n_bars}; use a shorter episode_length or window"
        )
    return low, high


def check_task(n_bars: int, window: int, start: int, length: int) -> None:
    """Raise `ConfigError` unless (start, length) is a valid episode of a series of `n_bars` bars."""
    low = first_decision_bar(window)
    if length < 1 or start < low or start + length > n_bars - 1:
        raise ConfigError(
            f"episode start={start}, length={length} does not fit a series of {n_bars} bars with "
            f"window={window}: need start >= {low}, length >= 1 and start + length <= {n_bars - 1}"
        )
