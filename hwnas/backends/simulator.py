"""A cycle-level accelerator simulator on the device (SCALE-Sim systolic array)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from hwnas.backends import RuntimeConfig

RESULT_FACTS = ()


class Config(RuntimeConfig):
    """A cycle-level accelerator simulator; cycles become latency at ``clock_mhz``."""

    backend: Literal["simulator"]
    simulator: Literal["scalesim"]
    array: tuple[int, int]
    clock_mhz: float = Field(gt=0)
    dataflow: Literal["os", "ws", "is"] = "ws"


def settings(device: Any) -> dict[str, Any]:
    """Nothing yet."""
    return {}


def artifact(device: Any, item: Any, workspace: Path) -> tuple[Path, str]:
    """The ONNX file itself: the agent maps its nodes to simulator layers."""
    return Path(item.path), "onnx"


def measure_fields(client: Any, item: Any, fmt: str) -> dict[str, Any]:
    """No extra fields."""
    return {}


def check(device: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """Whether the device has a simulator runner."""
    version = (facts.get("runtimes") or {}).get("simulator")
    unavailable = [] if version else ["the device has no simulator runner"]
    return {"runtime_version": version, "reasons": [], "unavailable": unavailable}
