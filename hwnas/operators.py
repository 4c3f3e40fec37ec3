"""A small default operator set (single-node ONNX models) for first runs and smoke sweeps."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lut.atomic import write_bytes_atomic

# name -> (op, input NCHW or NC, attributes)
DEFAULT_OPERATORS: dict[str, tuple[str, tuple[int, ...], dict]] = {
    "conv3x3-c32-56": ("Conv", (1, 32, 56, 56), {"cout": 32, "kernel": 3, "group": 1}),
    "conv3x3-c64-28": ("Conv", (1, 64, 28, 28), {"cout": 64, "kernel": 3, "group": 1}),
    "conv1x1-c64-128-28": ("Conv", (1, 64, 28, 28), {"cout": 128, "kernel": 1, "group": 1}),
    "dwconv3x3-c128-28": ("Conv", (1, 128, 28, 28), {"cout": 128, "kernel": 3, "group": 128}),
    "dwconv5x5-c240-14": ("Conv", (1, 240, 14, 14), {"cout": 240, "kernel": 5, "group": 240}),
    "avgpool3x3-c64-28": ("AveragePool", (1, 64, 28, 28), {"kernel": 3}),
    "gemm-1280-1000": ("Gemm", (1, 1280), {"cout": 1000}),
}


def _conv(shape, cout, kernel, group, rng):
    weight = rng.standard_normal((cout, shape[1] // group, kernel, kernel)).astype(np.float32) * 0.1
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[kernel, kernel], group=group,
                            pads=[kernel // 2] * 4)
    return [node], [numpy_helper.from_array(weight, "w")], (1, cout, shape[2], shape[3])


def _pool(shape, kernel):
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[kernel, kernel], pads=[kernel // 2] * 4)
    return [node], [], shape


def _gemm(shape, cout, rng):
    weight = rng.standard_normal((shape[1], cout)).astype(np.float32) * 0.1
    node = helper.make_node("Gemm", ["x", "w"], ["y"])
    return [node], [numpy_helper.from_array(weight, "w")], (1, cout)


def build(name: str, out_dir: Path, seed: int = 0) -> Path:
    """Write the named default operator as ``<out_dir>/<name>.onnx`` (deterministic weights)."""
    op, shape, attrs = DEFAULT_OPERATORS[name]
    rng = np.random.default_rng(seed)
    if op == "Conv":
        nodes, inits, out_shape = _conv(shape, attrs["cout"], attrs["kernel"], attrs["group"], rng)
    elif op == "AveragePool":
        nodes, inits, out_shape = _pool(shape, attrs["kernel"])
    else:
        nodes, inits, out_shape = _gemm(shape, attrs["cout"], rng)
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="hwnas")
    onnx.checker.check_model(model)
    return write_bytes_atomic(out_dir / f"{name}.onnx", model.SerializeToString())


def _write(path: Path, graph: onnx.GraphProto) -> Path:
    return write_bytes_atomic(path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                              .SerializeToString())


def pointwise_conv(path: Path, cin: int, cout: int, seed: int = 0) -> Path:
    """Write a Conv1x1 model on a 1×cin×1×1 input (deterministic weights): cin·cout weights read once per call."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.standard_normal((cout, cin, 1, 1)).astype(np.float32) * 0.1, "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])], "pointwise_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, 1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, 1, 1])], [weight])
    return _write(path, graph)


def conv_relu(path: Path, cin: int, cout: int, size: int, seed: int = 0) -> Path:
    """Write a Conv3x3 (padding 1) + Relu model on a 1×cin×size×size input (deterministic weights)."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.standard_normal((cout, cin, 3, 3)).astype(np.float32) * 0.1, "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["y"], ["z"])],
        "conv_relu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, size, size])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, cout, size, size])], [weight])
    return _write(path, graph)
