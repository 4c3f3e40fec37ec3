"""Apache TVM: a library compiled on the host for the device's target (see ``hwnas.tvm_backend``).

The measure settings name the TVM device the target runs on (``cpu`` for llvm,
else the target kind: ``opencl``, ``vulkan``, ``cuda``, ...), so the agent opens that
device and synchronises it inside every timed call.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from hwnas.backends import RuntimeConfig

RESULT_FACTS = ("output_check",)
KERNEL_PROFILES = True  # the VM's call instrument times every fused PrimFunc
CPU_KINDS = ("llvm", "c")


class Config(RuntimeConfig):
    """Apache TVM: a target dict, optional cross compiler and tuning budget."""

    backend: Literal["tvm"]
    target: dict[str, Any]
    cross_compiler: str | None = None
    trials: int = Field(0, ge=0)
    tuning_log: str | None = None
    threads: int = Field(1, ge=1, le=256)

    @field_validator("target")
    @classmethod
    def _target_has_kind(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("kind"), str):
            raise ValueError("a TVM target dict needs a string 'kind' (e.g. {kind: llvm})")
        return value


def tvm_device(device: Any) -> str:
    """The TVM device name the device's target runs on: ``cpu`` for llvm/c, else the target kind."""
    kind = device.runtime.target["kind"]
    return "cpu" if kind in CPU_KINDS else kind


def settings(device: Any) -> dict[str, Any]:
    """Threads and the TVM device of the target."""
    return {"threads": device.runtime.threads, "tvm_device": tvm_device(device)}


def artifact(device: Any, item: Any, workspace: Path) -> tuple[Path, str]:
    """The library compiled for the device's target (cached)."""
    from hwnas import tvm_backend
    return tvm_backend.artifact(device, item, workspace)


def measure_fields(client: Any, item: Any, fmt: str) -> dict[str, Any]:
    """The library's input specs and the ONNX model its outputs are checked against."""
    from hwnas import tvm_backend
    return tvm_backend.measure_fields(client, item)


def check(device: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """Runtime version, target arch vs the device's CPU, host/device TVM versions; BadInput (exit 2)
    when TVM rejects the target."""
    from hwnas.tvm_backend import device_report, parse_target

    parse_target(device)
    version = (facts.get("runtimes") or {}).get("tvm")
    report = {"runtime_version": version, "tvm": device_report(device, facts)}
    report["reasons"] = list(report["tvm"]["reasons"])
    report["unavailable"] = [] if version is not None else ["tvm is not installed on the device"]
    return report


def trial(device: Any, client: Any) -> dict[str, Any]:
    """Nothing beyond ``check``."""
    return {}
