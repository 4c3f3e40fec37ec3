"""Facts about the device the agent runs on, reported in ``hello``."""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's processor string."""
    info = _read("/proc/cpuinfo") or ""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Hardware", "Processor", "cpu model"):
            return value.strip()
    return platform.processor() or platform.machine()


_VECTOR_ISAS = ("avx512f", "avx2", "avx", "sse4_2", "sve", "asimd", "neon")
"""Vector extensions, widest first, as /proc/cpuinfo names them (x86 ``flags``, ARM ``Features``)."""


def vector_isa() -> str | None:
    """The widest vector extension the CPU reports, or None when unknown or emulated. It decides ONNX
    Runtime's blocked-layout width (8 floats on AVX2, 16 on AVX-512) and with it how kernels fuse."""
    if emulated():
        return None
    flags: set[str] = set()
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return next((isa for isa in _VECTOR_ISAS if isa in flags), None)


_X86_MARKERS = ("GenuineIntel", "AuthenticAMD", " sse2 ")


def emulated() -> bool:
    """True when this CPU architecture is emulated (qemu-user through binfmt_misc): the process
    runs as non-x86 code while the kernel's /proc/cpuinfo describes an x86 host CPU."""
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        return False
    info = _read("/proc/cpuinfo") or ""
    return any(marker in info for marker in _X86_MARKERS)


def governors() -> dict[str, str]:
    """cpufreq governor per CPU where the kernel exposes it (empty on most VMs)."""
    result = {}
    for path in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor")):
        value = _read(str(path))
        if value:
            result[path.parent.parent.name] = value
    return result


def memory_bytes() -> int | None:
    """Total memory from /proc/meminfo, in bytes."""
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def collect(runtimes: dict[str, str | None], providers: list[str], agent: str) -> dict[str, Any]:
    """Everything ``hello`` reports about this device."""
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "hostname": platform.node(),
        "machine": platform.machine(),
        "emulated": emulated(),
        "system": f"{platform.system()} {platform.release()}",
        "cpu": cpu_model(),
        "vector_isa": vector_isa(),
        "cores": os.cpu_count(),
        "affinity": affinity,
        "governor": governors(),
        "memory_bytes": memory_bytes(),
        "loadavg": load,
        "python": sys.version.split()[0],
        "runtimes": runtimes,
        "providers": providers,
        "agent": agent,
        "pid": os.getpid(),
    }
