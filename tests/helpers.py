"""Plain helpers for tests: tiny ONNX models and hardware.yaml files (no fixtures here)."""
from __future__ import annotations

from pathlib import Path

from hwnas.agent_client import file_sha256
from hwnas.measure import write_probe
from hwnas.operators import conv_relu

# Short rounds; drift detection off (a noisy CI machine would add retry sessions and make
# session counts vary) — tests/test_drift.py covers it.
FAST_MEASUREMENT = "{warmup_ms: 5, repeat: 3, min_repeat_ms: 2, sessions: 2, timeout_s: 60, drift_threshold: 1000}"


def conv_model(path: Path, cin: int = 8, cout: int = 8, size: int = 16, seed: int = 0) -> Path:
    """Write a Conv3x3+Relu ONNX model (random weights from ``seed``) and return its path."""
    return conv_relu(path, cin, cout, size, seed)


def local_config(tmp: Path, name: str = "local", measurement: str = FAST_MEASUREMENT) -> Path:
    """Write a hardware.yaml with one local ONNX Runtime device and a workspace in ``tmp``."""
    path = tmp / "hardware.yaml"
    path.write_text(
        f"workspace: {tmp / 'ws'}\n"
        "devices:\n"
        f"  - name: {name}\n"
        "    kind: x86_cpu\n"
        "    transport: {type: local}\n"
        "    runtime: {backend: onnxruntime, providers: [CPUExecutionProvider], threads: 1}\n"
        f"    measurement: {measurement}\n")
    return path


def probe_model_files(tmp: Path) -> list[str]:
    """The file names of the drift-probe and memory-probe models in an agent's model cache (both are
    shipped with every run)."""
    return [f"{file_sha256(write_probe(tmp / f'probe{memory}.onnx', memory))}.onnx" for memory in (False, True)]
