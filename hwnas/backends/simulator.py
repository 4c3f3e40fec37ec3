"""A cycle-level accelerator simulator on the device: SCALE-Sim's systolic array (``kind: fpga_sim``).

The artifact is the ONNX file; the agent's runner (``device_agents/runners/simulator.py``)
maps its Conv/Gemm/MatMul nodes to SCALE-Sim layers, models the other nodes, and turns
cycles into ms at ``clock_mhz``. Results carry ``simulated: true``, the total ``cycles``,
the ``accelerator`` configuration and the per-node ``layers`` (cycles and where they came
from); sweeps, LUTs and cost models read them like any other measurement.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from hwnas.backends import RuntimeConfig

RESULT_FACTS = ("simulated", "cycles", "accelerator", "layers")
KERNEL_PROFILES = False  # a simulated accelerator reports cycles per layer, not kernels


class Config(RuntimeConfig):
    """SCALE-Sim: array rows x columns, dataflow, SRAM sizes, clock; the vector-unit model's parameters."""

    backend: Literal["simulator"]
    simulator: Literal["scalesim"]
    array: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]]
    clock_mhz: float = Field(gt=0)
    dataflow: Literal["os", "ws", "is"] = "ws"
    ifmap_sram_kb: int = Field(64, ge=1)
    filter_sram_kb: int = Field(64, ge=1)
    ofmap_sram_kb: int = Field(64, ge=1)
    dram_bytes_per_cycle: float = Field(16.0, gt=0)
    word_bytes: int = Field(1, ge=1, le=8)
    vector_lanes: int | None = Field(None, ge=1)


def settings(device: Any) -> dict[str, Any]:
    """The accelerator configuration the runner simulates."""
    acc = device.runtime.model_dump(exclude={"backend"}, exclude_none=True)
    acc["array"] = list(acc["array"])
    return {"accelerator": acc}


def artifact(device: Any, item: Any, workspace: Path) -> tuple[Path, str]:
    """The ONNX file itself: the runner maps its nodes to simulator layers."""
    return Path(item.path), "onnx"


def measure_fields(client: Any, item: Any, fmt: str) -> dict[str, Any]:
    """No extra fields."""
    return {}


def check(device: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """Whether SCALE-Sim is installed in the agent's Python on the device."""
    version = (facts.get("runtimes") or {}).get("simulator")
    missing = ("SCALE-Sim is not installed in the device's python "
               "(point transport.python at the simulator's environment)")
    unavailable = [] if version else [missing]
    return {"runtime_version": version, "reasons": [], "unavailable": unavailable}


def trial(device: Any, client: Any) -> dict[str, Any]:
    """Nothing beyond ``check``."""
    return {}
