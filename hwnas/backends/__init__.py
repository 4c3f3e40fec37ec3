"""The host's backend registry: one module per runtime, named after it (``backend:`` in hardware.yaml).

``hwnas/backends/<backend>.py`` is everything the host knows about a runtime. A
backend module defines:

    Config                  its ``runtime:`` schema (a :class:`RuntimeConfig` with a
                            ``backend: Literal[<name>]`` field); hardware.yaml's union is built from these
    RESULT_FACTS            keys of the agent's measure result kept in the store's ``stats``
    settings(device)        runtime fields of the ``measure`` settings (providers, threads, ...)
    artifact(device, item, workspace) -> (path, format)
                            the file the agent runs for an item (the ONNX file, a compiled library)
    measure_fields(client, item, fmt)
                            extra ``measure`` request fields (input specs, reference model)
    check(device, facts)    what ``devices check`` reports for the runtime: a dict with
                            ``runtime_version``, ``reasons`` (why it is not fit to measure) and
                            ``unavailable`` (what it lacks to run this entry at all, e.g. an
                            execution provider: ``devices check`` and ``measure`` exit 1)
    trial(device, client)   what ``devices check`` adds from running a small fixed model on the
                            device (e.g. where its nodes run), or {}
    KERNEL_PROFILES         whether the device's runner reports the kernels it ran (the agent's
                            ``profile``): what per-node profiles and kernel detection need

``measure``, ``devices check`` and the config look a backend up here by name; the
agent's counterpart is ``device_agents/runners/<backend>.py``. Adding a backend is
adding one module on each side.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict

from hwnas.errors import DeviceFailure


class RuntimeConfig(BaseModel):
    """Base of every backend's ``runtime:`` schema: unknown keys rejected, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@functools.cache
def names() -> tuple[str, ...]:
    """Every backend with a module here, sorted (the folder is listed once per process)."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                        if not m.name.startswith("_")))


def get(name: str) -> ModuleType:
    """The backend module called ``name`` (KeyError for an unknown name)."""
    if name not in names():
        raise KeyError(name)
    return importlib.import_module(f"{__name__}.{name}")


def configs() -> tuple[type[RuntimeConfig], ...]:
    """Every backend's runtime schema, for hardware.yaml's ``runtime:`` union."""
    return tuple(get(name).Config for name in names())


def require_ready(device: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """The backend's ``devices check`` report for a started agent; DeviceFailure (exit 1) naming the
    device and what it lacks when it cannot run this entry's runtime at all."""
    report = get(device.backend).check(device, facts)
    if report["unavailable"]:
        raise DeviceFailure(f"{device.name}: {report['unavailable'][0]}")
    return report
