"""The seed list and the number of processes as the command line writes them: `--seeds 0-4`,
`0,2,5`, `3` or a mix (`0-2,7`); `--jobs 4`, `auto` or `0` (one process per core)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from fin_meta.devices import cpu_cores
from fin_meta.errors import ConfigError

__all__ = ["MAX_SEEDS", "parse_jobs", "parse_seeds", "seed_label"]

MAX_SEEDS = 1000
"""The most seeds one set may have (a typo like `0-10000` is refused, not run)."""
_PART = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_seeds(text: str) -> list[int]:
    """`"0-4"` -> `[0, 1, 2, 3, 4]`, `"0,2,5"` -> `[0, 2, 5]`, `"3"` -> `[3]`, `"0-2,7"` ->
    `[0, 1, 2, 7]` (whole numbers >= 0, ranges inclusive, each seed once, in the order given).
    Anything else -> `ConfigError`, one line saying how to write it."""
    how = "write a range 0-4, a list 0,2,5 or one seed 3 (whole numbers >= 0)"
    parts = [part.strip() for part in str(text).split(",")]
    seeds: list[int] = []
    for part in parts:
        match = _PART.match(part)
        if match is None:
            raise ConfigError(f"--seeds: {text!r} is not a list of seeds ({part!r}); {how}")
        first, last = int(match[1]), int(match[2] if match[2] is not None else match[1])
        if last < first:
            raise ConfigError(f"--seeds: the range {part!r} runs backwards; write it low-high, e.g. {last}-{first}")
        if len(seeds) + last - first + 1 > MAX_SEEDS:
            raise ConfigError(f"--seeds: {text!r} has more than {MAX_SEEDS} seeds; {how}")
        seeds += range(first, last + 1)
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ConfigError(f"--seeds: seed {twice[0]} appears more than once in {text!r}; list each seed once")
    return seeds


def parse_jobs(text: str | int) -> int:
    """`--jobs`: a number of processes >= 1; `0` or `auto`: one per CPU core (`cpu_cores`).
    Anything else -> `ConfigError`, one line."""
    value = str(text).strip().lower()
    if value == "auto":
        return cpu_cores()
    if not value.isdigit():
        raise ConfigError(f"--jobs: {text!r} is not a number of processes; write 1 (the default), 4, "
                          "or auto (or 0) for one per CPU core")
    return int(value) or cpu_cores()


def seed_label(seeds: Sequence[int]) -> str:
    """Seeds in short: `0-4` for a run of consecutive seeds, else `0,2,5`."""
    seeds = list(seeds)
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(str(s) for s in seeds)
