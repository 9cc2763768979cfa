"""Where a benchmark ran, for the JSON written next to its numbers."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    """The CPU model name (Linux ``/proc/cpuinfo``), else what :mod:`platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def describe(device: str = "cpu") -> dict[str, object]:
    """Device, CPU, core count, torch threads and versions of this run."""
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") and torch.cuda.is_available() else None
    return {
        "device": gpu or f"CPU: {cpu_name()}",
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def cpu_peak() -> dict[str, object]:
    """Peak arithmetic per core and in all, from ``/proc/cpuinfo`` (flags, ``cpu MHz``) and ``os.cpu_count``.

    FLOPs per cycle per core, counting an FMA as 2 and assuming two 512-bit FMA ports (Xeon
    Scalable, Zen 4 double-pumps one to the same rate): fp32 AVX-512 2 × 16 × 2 = 64, AVX2
    2 × 8 × 2 = 32; bf16 ``avx512_bf16`` (``vdpbf16ps``, 32 bf16 pairs per instruction)
    2 × 32 × 2 = 128; ``amx_bf16`` (one ``tdpbf16ps`` per 16 cycles: 16 × 16 × 32 × 2 FLOPs)
    1,024. The clock is the nominal ``cpu MHz`` (turbo may run higher).
    """
    text = Path("/proc/cpuinfo").read_text(errors="replace") if Path("/proc/cpuinfo").exists() else ""
    flags, mhz = set(), 0.0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and not flags:
            flags = set(value.split())
        elif key.strip() == "cpu MHz" and not mhz:
            mhz = float(value)
    fp32 = 64 if "avx512f" in flags else 32 if "avx2" in flags else 8
    bf16 = 1024 if "amx_bf16" in flags else 128 if "avx512_bf16" in flags else fp32
    cores = os.cpu_count() or 1
    ghz = mhz / 1e3
    return {
        "cores": cores,
        "ghz": ghz,
        "fp32_flop_per_cycle": fp32,
        "bf16_flop_per_cycle": bf16,
        "fp32_gflops_per_core": ghz * fp32,
        "bf16_gflops_per_core": ghz * bf16,
        "fp32_gflops": cores * ghz * fp32,
        "bf16_gflops": cores * ghz * bf16,
    }
