"""Small ONNX graphs built directly with ``onnx.helper``: fusion test graphs and sampled single kernels.

:class:`GraphBuilder` keeps a graph's nodes, weights (seeded) and shapes as it grows, so the
rule probes of :mod:`hwnas.kernel_rules` and the kernel samples of
:mod:`hwnas.kernel_sampling` are a few lines each, deterministic byte for byte.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class GraphBuilder:
    """An ONNX graph under construction: one NCHW float input, seeded weights."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []
        self.shapes: dict[str, tuple[int, ...]] = {"x": tuple(shape)}
        self.input = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
        self._n = 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def weight(self, array: np.ndarray) -> str:
        """Add an initializer (integer arrays stay int64, others become float32); returns its name."""
        name = self._name("w")
        array = np.asarray(array)
        array = array.astype(np.int64 if np.issubdtype(array.dtype, np.integer) else np.float32)
        self.weights.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], shape: tuple[int, ...], outputs: int = 1,
           shapes: list[tuple[int, ...]] | None = None, **attrs) -> str | list[str]:
        """Add a node; ``shape`` is its (first) output's shape. Returns the output name(s)."""
        names = [self._name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=names[0], **attrs))
        for name, s in zip(names, shapes or [shape] * outputs):
            self.shapes[name] = tuple(s)
        return names[0] if outputs == 1 else names

    def conv(self, x: str, cout: int, k: int = 3, stride: int = 1, groups: int = 1, bias: bool = True) -> str:
        """A same-padded convolution."""
        n, c, h, w = self.shapes[x]
        ws = self.weight(self.rng.standard_normal((cout, c // groups, k, k)) * 0.1)
        inputs = [x, ws] + ([self.weight(self.rng.standard_normal(cout) * 0.1)] if bias else [])
        ho, wo = (h + 2 * (k // 2) - k) // stride + 1, (w + 2 * (k // 2) - k) // stride + 1
        return self.op("Conv", inputs, (n, cout, ho, wo), kernel_shape=[k, k], strides=[stride, stride],
                       pads=[k // 2] * 4, group=groups)

    def batchnorm(self, x: str) -> str:
        """An inference BatchNormalization."""
        c = self.shapes[x][1]
        params = [self.weight(v) for v in (1 + 0.1 * self.rng.standard_normal(c), 0.1 * self.rng.standard_normal(c),
                                             0.1 * self.rng.standard_normal(c), 1 + 0.1 * self.rng.random(c))]
        return self.op("BatchNormalization", [x, *params], self.shapes[x])

    def act(self, x: str, op_type: str) -> str:
        """An activation (Clip as ReLU6, LeakyRelu with 0.1)."""
        if op_type == "Clip":
            return self.op("Clip", [x, self.weight(np.array(0.0)), self.weight(np.array(6.0))], self.shapes[x])
        if op_type == "LeakyRelu":
            return self.op("LeakyRelu", [x], self.shapes[x], alpha=0.1)
        return self.op(op_type, [x], self.shapes[x])

    def pool(self, x: str, op_type: str, k: int, stride: int) -> str:
        """A max or average pool with same padding."""
        n, c, h, w = self.shapes[x]
        ho, wo = (h + 2 * (k // 2) - k) // stride + 1, (w + 2 * (k // 2) - k) // stride + 1
        return self.op(op_type, [x], (n, c, ho, wo), kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)

    def model(self, outputs: list[str]) -> onnx.ModelProto:
        """The finished model with ``outputs`` as graph outputs."""
        outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, list(self.shapes[o])) for o in outputs]
        graph = helper.make_graph(self.nodes, "g", [self.input], outs, initializer=self.weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="hwnas")
        model.ir_version = 8
        return model


def save(model: onnx.ModelProto, path: Path) -> Path:
    """Write ``model`` atomically (deterministic bytes); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    part.write_bytes(model.SerializeToString())
    part.replace(path)
    return path
