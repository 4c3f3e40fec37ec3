"""ONNX Runtime on the device: the ONNX file itself is the artifact; providers with their options.

``providers:`` lists execution providers in order, each a name or
``{name: QNNExecutionProvider, options: {backend_path: libQnnHtp.so}}``. A provider the
device lacks fails ``devices check`` and ``measure`` (exit 1) naming the ones it has.
Where the nodes ran (``placement``, ``compute_units``, ``compute_summary``) comes back
with every result, and so do the ``input_shapes`` the model was fed (dynamic dimensions are 1
unless ``--input-shape`` sets them); a node that fell back to the CPU is a warning, and with
``require_all_nodes: true`` it makes the result invalid.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hwnas.backends import RuntimeConfig
from hwnas.errors import HwnasError

RESULT_FACTS = ("placement", "compute_units", "compute_summary", "input_shapes")
KERNEL_PROFILES = True  # its profiler lists the kernels after graph optimisation


class ProviderConfig(RuntimeConfig):
    """One execution provider with its options (strings, as ONNX Runtime takes them)."""

    name: str
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _plain_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class Config(RuntimeConfig):
    """ONNX Runtime with an ordered execution-provider list."""

    backend: Literal["onnxruntime"]
    providers: list[ProviderConfig] = Field(default_factory=lambda: [ProviderConfig(name="CPUExecutionProvider")],
                                            min_length=1)
    threads: int = Field(1, ge=1, le=256)
    require_all_nodes: bool = False

    @field_validator("providers")
    @classmethod
    def _providers_named(cls, value: list[ProviderConfig]) -> list[ProviderConfig]:
        for entry in value:
            if not entry.name.endswith("ExecutionProvider"):
                raise ValueError(f"{entry.name!r} is not an execution provider name (e.g. CPUExecutionProvider)")
        return value

    @property
    def provider_names(self) -> list[str]:
        """The providers' names, in order."""
        return [p.name for p in self.providers]


def settings(device: Any) -> dict[str, Any]:
    """Threads, providers (names, or {name, options}) and the all-nodes rule."""
    runtime = device.runtime
    providers = [{"name": p.name, "options": {k: str(v) for k, v in p.options.items()}} if p.options else p.name
                 for p in runtime.providers]
    out: dict[str, Any] = {"threads": runtime.threads, "providers": providers}
    if runtime.require_all_nodes:
        out["require_all_nodes"] = True
    return out


def artifact(device: Any, item: Any, workspace: Path) -> tuple[Path, str]:
    """The ONNX file itself."""
    return Path(item.path), "onnx"


def measure_fields(client: Any, item: Any, fmt: str) -> dict[str, Any]:
    """No extra fields."""
    return {}


def check(device: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """Runtime version and whether the device has every configured provider."""
    version = (facts.get("runtimes") or {}).get("onnxruntime")
    have = list(facts.get("providers") or [])
    report: dict[str, Any] = {"runtime_version": version, "providers_available": have, "reasons": [],
                              "unavailable": []}
    if version is None:
        report["unavailable"].append("onnxruntime is not installed on the device")
        return report
    missing = [name for name in device.runtime.provider_names if name not in have]
    if missing:
        report["unavailable"].append(f"execution provider {', '.join(missing)} is not available on the device "
                                 f"(it has {', '.join(have) or 'none'})")
    return report


TRIAL_SETTINGS = {"warmup_ms": 1.0, "repeat": 3, "min_repeat_ms": 1.0, "max_remeasure": 0}


def trial(device: Any, client: Any) -> dict[str, Any]:
    """Where the nodes of the drift-probe conv (a small fixed model) run with this entry's providers:
    ``placement`` (nodes per provider, per compute unit, ``compute_summary``) and any fallback warning."""
    from hwnas.measure import probe_file

    sha = client.load(probe_file(client.transport.workspace), "onnx")  # the drift probe measures load too
    try:
        result = client.measure(sha, {**settings(device), **TRIAL_SETTINGS}, "onnxruntime")
    except HwnasError as exc:  # reported, not fatal: the device's facts are still worth printing
        return {"placement": {"error": str(exc), "warnings": [f"the probe conv did not run: {exc}"]}}
    keys = (*RESULT_FACTS, "placement_source")
    return {"placement": {**{k: result[k] for k in keys if k in result},
                          "model": "probe conv 3x3 16->16 @28x28 + Relu",
                          "warnings": [w for w in result.get("warnings", []) if "fell back" in w]}}
