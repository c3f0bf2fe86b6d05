"""Torch runtime helpers the agents share: seeded network initialisation that leaves torch's
global random state alone (`seeded`), and a block run with a set number of CPU threads
(`cpu_threads`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["seeded", "cpu_threads"]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded by `seed`, restoring the global state
    afterwards (networks initialise deterministically without touching global randomness)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


@contextlib.contextmanager
def cpu_threads(n: int | None, device: torch.device) -> Iterator[None]:
    """Use `n` torch intra-op threads inside the block when `device` is the CPU (restored after)."""
    if n is None or device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
