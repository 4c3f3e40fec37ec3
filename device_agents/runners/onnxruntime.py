"""ONNX Runtime runner: a fresh session with the configured threads and execution providers.

Providers come as names or ``{name, options}`` (e.g. QNN's ``backend_path``); one the
device lacks is refused with the list it has (``Unavailable``). The facts say where
the graph's nodes ran: ``placement`` counts nodes per execution provider and
``compute_units`` the same per unit (``NPU 843, CPU 2``), read from the session's own
node assignment (or, on an onnxruntime without it, the profiler's provider per node). Any node on the CPU when the first
provider is not a CPU one is a warning; with ``require_all_nodes`` it also makes the
result invalid (the warning does that: see ``device_agents.runners``).
"""
from __future__ import annotations

from typing import Any

from device_agents import ort_runner
from device_agents.timing import WallClock

FORMAT = "onnx"
DRIFT_PROBE = True
version = ort_runner.version
providers = ort_runner.available_providers


def prepare(path: str, settings: dict[str, Any], inputs: list[dict[str, Any]] | None = None,
            reference: str | None = None) -> tuple[WallClock, dict[str, Any]]:
    """A wall-clock source running the model once per call, and the session's facts (placement included)."""
    run, facts = ort_runner.runner(path, settings, with_placement=True)
    return WallClock(run), facts


def profile(path: str, settings: dict[str, Any], runs: int, inputs: list[dict[str, Any]] | None = None
            ) -> dict[str, Any]:
    """The kernels ONNX Runtime ran after its graph optimisations, from its profiler (``inputs`` unused:
    an ONNX model names its own)."""
    return ort_runner.profile(path, settings, runs)
