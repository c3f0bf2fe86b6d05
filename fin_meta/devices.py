"""Device choice: `auto` is CUDA when available, else CPU. Nothing assumes a GPU. And the CPU
cores this process may use (`cpu_cores`). No torch at import."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["cpu_cores", "resolve_device"]


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS has one; at least 1)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return max(1, len(affinity(0)) if affinity is not None else os.cpu_count() or 1)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn `"auto"`, `"cpu"`, `"cuda"`, `"cuda:1"` or a torch.device into a torch.device.

    Raises `ValueError` naming the fix when CUDA is asked for but not available."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available; use device: auto or cpu")
    return dev
