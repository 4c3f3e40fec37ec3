"""Plain helpers for tests: tiny ONNX models and hardware.yaml files (no fixtures here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FAST_MEASUREMENT = "{warmup_ms: 5, repeat: 3, min_repeat_ms: 2, sessions: 2, timeout_s: 60}"


def conv_model(path: Path, cin: int = 8, cout: int = 8, size: int = 16, seed: int = 0) -> Path:
    """Write a Conv3x3+Relu ONNX model (random weights from ``seed``) and return its path."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.standard_normal((cout, cin, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["y"], ["z"])],
        "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, size, size])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, cout, size, size])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


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
