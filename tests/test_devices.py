"""The host description printed in benchmark logs."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from fin_meta.devices import cpu_cores, cpu_model, describe_host


def test_cpu_model_reads_the_model_name_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Test CPU 9000 @ 3.0GHz\nflags\t: fpu\n")
    assert cpu_model(info) == "Test CPU 9000 @ 3.0GHz"


def test_cpu_model_falls_back_when_cpuinfo_is_missing(tmp_path: Path) -> None:
    assert cpu_model(tmp_path / "absent") == (platform.processor() or platform.machine() or "unknown CPU")


def test_describe_host_names_cores_torch_and_its_cpu_kernels() -> None:
    line = describe_host("cpu")
    assert f"{cpu_cores()} cores" in line
    assert torch.__version__ in line
    assert torch.backends.cpu.get_cpu_capability() in line
    assert "GPU" not in line
