"""ONNX builders: a block :class:`~lut.signature.Signature` becomes a small ONNX model.

Every block is written with ``onnx.helper`` as an inference graph (batch 1, NCHW,
float32, BatchNorm folded into the preceding convolution's bias, random weights).
Weights come from a numpy Generator seeded by the sha256 of the signature key, so
the same signature always gives the same bytes (and sha256): a resumed sweep and
the agent's model cache both rely on that.

Whole networks are written with the same :class:`Graph` and the same per-block
functions (:func:`add_block`), so a network graph is exactly the concatenation of
the block graphs a lookup table measured. Supported ops:

=====================  ============================================================
``Conv``               stem: 3x3 conv (stride 2) + h-swish (OFA MobileNetV3)
``expanded_conv``      MBConv: [1x1 expand + act] + kxk depthwise + act [+ SE] + 1x1 linear [+ skip]
``Conv_1``             1x1 conv + h-swish (final expand layer)
``AvgPool2D``          global average pool
``Conv_2``             1x1 conv with bias + h-swish (feature mix)
``Logits``             flatten + fully connected
``nor_conv_1x1/3x3``   NAS-Bench-201 ReLU-Conv-BN
``avg_pool_3x3``       3x3 average pool, stride 1, padding not counted
``skip_connect``       identity
``Identity``           identity (the empty model timing one inference call's fixed cost)
``Add``                elementwise sum of two inputs of the block's shape
``nb201_stem``         3x3 conv + BN (NAS-Bench-201 CIFAR stem)
``nb201_reduction``    residual basic block, stride 2, with avg-pool + 1x1 conv shortcut
``nb201_head``         BN + ReLU + global average pool + fully connected
=====================  ============================================================
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from lut.atomic import write_bytes_atomic
from lut.signature import Signature

OPSET = 17
SE_REDUCTION = 4


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor``, never more than 10% below it (MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def seed_of(text: str) -> int:
    """A 64-bit seed derived from ``text`` (stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


class Graph:
    """An ONNX graph under construction: deterministic names and seeded random weights.

    ``weights`` (optional) are given tensors used instead of random ones, in the order the
    graph asks for them: per convolution its weight then its bias, per fully connected
    layer its weight (cout, cin) then its bias (trained weights, BatchNorm folded).
    """

    def __init__(self, seed: int, weights: Sequence[np.ndarray] | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self._given = None if weights is None else iter(weights)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self._count = 0

    def fresh(self, prefix: str) -> str:
        """A new unique value name."""
        self._count += 1
        return f"{prefix}_{self._count}"

    def input(self, shape: tuple[int, ...], name: str | None = None) -> str:
        """Declare a float32 graph input of ``shape``; returns its name."""
        name = name or f"input_{len(self.inputs)}"
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        return name

    def const(self, array: np.ndarray, prefix: str) -> str:
        """Add an initializer; returns its name."""
        name = self.fresh(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], prefix: str | None = None, **attrs: object) -> str:
        """Add one node with a single output; returns the output name."""
        out = self.fresh(prefix or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{out}_node", **attrs))
        return out

    def _tensor(self, shape: tuple[int, ...], scale: float) -> np.ndarray:
        """The next given tensor (checked against ``shape``) or a random one of that scale."""
        if self._given is None:
            return self.rng.standard_normal(shape) * scale
        tensor = next(self._given, None)
        if tensor is None or tuple(tensor.shape) != shape:
            raise ValueError(f"given weights do not fit the graph: expected a tensor of shape {shape}, got "
                             f"{None if tensor is None else tuple(tensor.shape)}")
        return tensor

    def conv(self, x: str, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
             bias: bool = True, pads: int | None = None) -> str:
        """A convolution (BN folded into its bias when ``bias``), He-scaled random or given weights."""
        fan_in = cin // groups * kernel * kernel
        weight = self._tensor((cout, cin // groups, kernel, kernel), np.sqrt(2.0 / fan_in))
        inputs = [x, self.const(weight, "w")]
        if bias:
            inputs.append(self.const(self._tensor((cout,), 0.01), "b"))
        pad = kernel // 2 if pads is None else pads
        return self.node("Conv", inputs, "conv", kernel_shape=[kernel, kernel], strides=[stride, stride],
                         pads=[pad] * 4, group=groups)

    def act(self, x: str, act: str | None) -> str:
        """Apply an activation by name: relu, h_swish, h_sigmoid (None: identity)."""
        if act is None:
            return x
        op = {"relu": "Relu", "h_swish": "HardSwish", "h_sigmoid": "HardSigmoid"}.get(act)
        if op is None:
            raise ValueError(f"unknown activation {act!r}")
        if op == "HardSigmoid":
            return self.node(op, [x], alpha=1.0 / 6.0, beta=0.5)
        return self.node(op, [x])

    def batchnorm(self, x: str, channels: int) -> str:
        """A standalone BatchNormalization (inference) with random statistics."""
        scale = self.const(1.0 + 0.1 * self.rng.standard_normal(channels), "bn_scale")
        shift = self.const(0.1 * self.rng.standard_normal(channels), "bn_shift")
        mean = self.const(0.1 * self.rng.standard_normal(channels), "bn_mean")
        var = self.const(1.0 + 0.1 * np.abs(self.rng.standard_normal(channels)), "bn_var")
        return self.node("BatchNormalization", [x, scale, shift, mean, var], "bn")

    def fc(self, x: str, cin: int, cout: int) -> str:
        """Flatten then Gemm to ``cout`` features."""
        flat = self.node("Flatten", [x], axis=1)
        weight = self._tensor((cout, cin), np.sqrt(1.0 / cin))
        bias = np.zeros(cout) if self._given is None else self._tensor((cout,), 0.0)
        return self.node("Gemm", [flat, self.const(weight, "fc_w"), self.const(bias, "fc_b")],
                         "fc", transB=1)

    def model(self, outputs: list[tuple[str, tuple[int, ...]]], name: str) -> onnx.ModelProto:
        """The finished, checked model with the given (name, shape) outputs."""
        graph = helper.make_graph(
            self.nodes, name, self.inputs,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in outputs],
            self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="hwnas", producer_version="1")
        model.ir_version = 8
        if self._given is not None and next(self._given, None) is not None:
            raise ValueError("given weights do not fit the graph: more tensors than it has weights")
        onnx.checker.check_model(model, full_check=True)
        return model


def _nchw(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Batch-1 NCHW shape of an (H, W, C) or (C,) signature shape."""
    return (1, shape[2], shape[0], shape[1]) if len(shape) == 3 else (1, shape[0])


def _stride(sig: Signature) -> int:
    return sig.stride if sig.stride is not None else max(1, round(sig.input[0] / sig.output[0]))


def _expanded_conv(g: Graph, sig: Signature, x: str) -> str:
    cin, cout, mid = sig.input[2], sig.output[2], sig.expand
    h = x
    if mid != cin:
        h = g.act(g.conv(h, cin, mid, 1), sig.act)
    h = g.act(g.conv(h, mid, mid, sig.kernel, stride=sig.stride, groups=mid), sig.act)
    if sig.se:
        reduced = make_divisible(mid // SE_REDUCTION)
        pooled = g.node("GlobalAveragePool", [h])
        squeeze = g.act(g.conv(pooled, mid, reduced, 1), "relu")
        gate = g.act(g.conv(squeeze, reduced, mid, 1), "h_sigmoid")
        h = g.node("Mul", [h, gate])
    h = g.conv(h, mid, cout, 1)
    return g.node("Add", [h, x]) if sig.idskip else h


def _stem(g: Graph, sig: Signature, x: str) -> str:
    return g.act(g.conv(x, sig.input[2], sig.output[2], sig.kernel or 3, stride=_stride(sig)), "h_swish")


def _pointwise_hswish(g: Graph, sig: Signature, x: str) -> str:
    return g.act(g.conv(x, sig.input[2], sig.output[2], 1), "h_swish")


def _nor_conv(kernel: int) -> Callable[[Graph, Signature, str], str]:
    def build(g: Graph, sig: Signature, x: str) -> str:
        return g.conv(g.act(x, "relu"), sig.input[2], sig.output[2], kernel, stride=_stride(sig))
    return build


def _avg_pool(g: Graph, sig: Signature, x: str) -> str:
    return g.node("AveragePool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
                  count_include_pad=0)


def _reduction(g: Graph, sig: Signature, x: str) -> str:
    cin, cout = sig.input[2], sig.output[2]
    a = g.conv(g.act(x, "relu"), cin, cout, 3, stride=2)
    b = g.conv(g.act(a, "relu"), cout, cout, 3)
    pooled = g.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
    shortcut = g.conv(pooled, cin, cout, 1, bias=False)
    return g.node("Add", [shortcut, b])


def _nb201_head(g: Graph, sig: Signature, x: str) -> str:
    h = g.act(g.batchnorm(x, sig.input[2]), "relu")
    return g.fc(g.node("GlobalAveragePool", [h]), sig.input[2], sig.output[0])


BLOCKS: dict[str, Callable[[Graph, Signature, str], str]] = {
    "Conv": _stem,
    "expanded_conv": _expanded_conv,
    "Conv_1": _pointwise_hswish,
    "AvgPool2D": lambda g, sig, x: g.node("GlobalAveragePool", [x]),
    "Conv_2": _pointwise_hswish,
    "Logits": lambda g, sig, x: g.fc(x, sig.input[-1], sig.output[0]),
    "nor_conv_1x1": _nor_conv(1),
    "nor_conv_3x3": _nor_conv(3),
    "avg_pool_3x3": _avg_pool,
    "skip_connect": lambda g, sig, x: g.node("Identity", [x]),
    "Identity": lambda g, sig, x: g.node("Identity", [x]),
    "nb201_stem": lambda g, sig, x: g.conv(x, sig.input[2], sig.output[2], 3),
    "nb201_reduction": _reduction,
    "nb201_head": _nb201_head,
}
"""Block op name -> function adding that block to a Graph (input value name -> output value name)."""


def add_block(g: Graph, sig: Signature, x: str) -> str:
    """Append the block ``sig`` to graph ``g`` after value ``x``; returns the block's output value."""
    build = BLOCKS.get(sig.op)
    if build is None:
        raise ValueError(f"no ONNX builder for op {sig.op!r} (known: {', '.join(sorted(BLOCKS))}, Add)")
    return build(g, sig, x)


def block_model(sig: Signature) -> onnx.ModelProto:
    """The one-block ONNX model of ``sig`` (batch 1, seeded random weights), checked."""
    g = Graph(seed_of(sig.key()))
    x = g.input(_nchw(sig.input))
    if sig.op == "Add":
        y = g.node("Add", [x, g.input(_nchw(sig.input))])
    else:
        y = add_block(g, sig, x)
    return g.model([(y, _nchw(sig.output))], sig.key())


def save(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write ``model`` to ``path`` atomically (a file that exists is complete)."""
    return write_bytes_atomic(path, model.SerializeToString(deterministic=True))


def write_block(sig: Signature, path: str | Path) -> Path:
    """Build the block model of ``sig`` and save it to ``path`` unless already there; returns the path."""
    path = Path(path)
    if not path.is_file():
        save(block_model(sig), path)
    return path
