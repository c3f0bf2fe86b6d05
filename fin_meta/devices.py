"""Device choice: `auto` is CUDA when available, else CPU. Nothing assumes a GPU. The CPU cores
this process may use (`cpu_cores`) and a one-line description of the host (`describe_host`). No
torch at import."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["cpu_cores", "cpu_model", "describe_host", "resolve_device"]


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


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (`/proc/cpuinfo` on Linux), else what `platform` knows, else the
    machine type."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_host(device: str | torch.device = "cpu") -> str:
    """One line for a benchmark log: CPU model, usable cores, torch version and the CPU kernels
    torch dispatches to (e.g. AVX512), and the GPU's name when `device` is CUDA. Runs that train
    recurrent agents by backpropagation through time can differ between CPU types (rounding), so
    logs that compare figures say where they were measured."""
    import torch

    line = (f"{cpu_model()}, {cpu_cores()} cores, torch {torch.__version__} "
            f"(CPU capability {torch.backends.cpu.get_cpu_capability()})")
    dev = resolve_device(device)
    if dev.type == "cuda":
        line += f", GPU {torch.cuda.get_device_name(dev)}"
    return line
