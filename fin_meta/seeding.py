"""Seeds. Library code never touches global random state except through `seed_everything`,
which scripts and the pipeline call once; every random draw takes an explicit generator."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["seed_everything", "numpy_generator", "torch_generator"]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed `random`, numpy's legacy global state and torch (CPU and CUDA), make torch use
    deterministic algorithms where it can, and return a fresh numpy Generator for `seed`."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return numpy_generator(seed)


def numpy_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy Generator from a seed (or the generator itself, passed through)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch Generator on `device`, seeded with `seed`."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
