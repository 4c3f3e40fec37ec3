"""Learn a device's fusion rules by profiling small test graphs with the device's own runtime.

Each probe is a tiny graph asking one question — does a Conv absorb the ReLU after it
in the blocked layout? does ``x * sigmoid(x)`` run as one kernel? does a max pool keep
the blocked layout? — and the answer is read from the kernels the device's runtime
reports running (the agent's ``profile`` request: op types, order, shapes). The result
is a :class:`cost_models.onnx_kernels.FusionRules`, stored per device and runtime
version under ``<workspace>/kernels/`` and copied into every kernel predictor built on it.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cost_models.onnx_kernels import FOLLOWER_ANCHOR, FusionRules
from hwnas.kernel_graphs import GraphBuilder, save
from lut.formats import write_text_atomic

REORDERS = ("ReorderInput", "ReorderOutput")
CONV_FOLLOWERS = ("BatchNormalization", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Tanh",
                  "Add")
GEMM_FOLLOWERS = ("Relu", "Add")
LAYOUT_OPS = ("MaxPool", "AveragePool", "GlobalAveragePool", "Concat", "Relu", "Add", "Mul", "Sigmoid",
              "HardSwish", "Resize", "Transpose")
ELIDED_CANDIDATES = ("Identity", "Dropout", "Flatten")



def _conv_then(c: int, follower: str) -> GraphBuilder:
    """conv -> follower -> conv (a fused activation whose output leaves the graph may be run apart)."""
    g = GraphBuilder((1, c, 8, 8))
    y = g.conv("x", c)
    if follower == "Add":  # the residual comes from a conv too, so both sides share a layout
        first, y = y, g.conv(y, c)
        out = g.op("Add", [y, first], g.shapes[y])
    elif follower == "BatchNormalization":
        out = g.batchnorm(y)
    else:
        out = g.act(y, follower)
    g.out = g.conv(out, c)
    return g


def _apply(g: GraphBuilder, y: str, op: str) -> str:
    """``op`` on ``y`` (an NCHW tensor of the graph's channel count c); a second input, where ``op``
    needs one, comes from its own conv -> max pool branch of the graph input."""
    c = g.shapes["x"][1]
    shape = g.shapes[y]
    if op in ("MaxPool", "AveragePool"):
        return g.pool(y, op, 3, 1)
    if op == "GlobalAveragePool":
        return g.op(op, [y], (1, c, 1, 1))
    if op in ("Concat", "Add"):
        other = g.pool(g.conv("x", c), "MaxPool", 3, 1)
        if op == "Concat":
            return g.op("Concat", [y, other], (1, 2 * c, 8, 8), axis=1)
        return g.op("Add", [y, other], shape)
    if op == "Mul":
        return g.op("Mul", [y, g.op("GlobalAveragePool", [y], (1, c, 1, 1))], shape)
    if op == "Resize":
        scales = g.weight(np.array([1, 1, 2, 2], dtype=np.float32))
        return g.op("Resize", [y, "", scales], (1, c, 16, 16), mode="nearest")
    if op == "Transpose":
        return g.op("Transpose", [y], shape, perm=[0, 1, 3, 2])
    if op == "BatchNormalization":
        return g.batchnorm(y)
    return g.act(y, op)


def _between_convs(c: int, op: str) -> GraphBuilder:
    """conv -> max pool -> op -> conv (the pool keeps ``op`` from being fused into the first conv)."""
    g = GraphBuilder((1, c, 8, 8))
    g.out = g.conv(_apply(g, g.pool(g.conv("x", c), "MaxPool", 3, 1), op), c)
    return g


FOLLOWERS = ("Relu", "BatchNormalization", "Sigmoid", "HardSwish", "Clip")
"""Ops a runtime may fuse into the kernel before them when that kernel is not a conv (TVM fuses
element-wise chains into pools, concats and adds; ONNX Runtime's CPU kernels do not)."""
FOLLOWER_ANCHORS = tuple(dict.fromkeys(FOLLOWER_ANCHOR.values()))
"""The non-conv kernels probed with each of :data:`FOLLOWERS` after them: the anchors the splitter asks
about (:data:`cost_models.onnx_kernels.FOLLOWER_ANCHOR`)."""


def _anchor_then(c: int, anchor: str, follower: str | None) -> GraphBuilder:
    """conv -> max pool -> anchor -> follower -> conv (the max pool is the anchor itself when ``anchor``
    is MaxPool; no follower: the control graph)."""
    g = GraphBuilder((1, c, 8, 8))
    y = g.pool(g.conv("x", c), "MaxPool", 3, 1)
    z = y if anchor == "MaxPool" else _apply(g, y, anchor)
    g.out = g.conv(_apply(g, z, follower) if follower else z, c)
    return g


def _gate(c: int, gate: str | None) -> GraphBuilder:
    """conv -> max pool -> squeeze-and-excite (global pool, 1x1 conv, ``gate``, Mul) -> conv: whether
    the gate's conv takes the broadcast Mul into itself (no gate: the control graph, without the SE)."""
    g = GraphBuilder((1, c, 8, 8))
    y = g.pool(g.conv("x", c), "MaxPool", 3, 1)
    if gate:
        s = g.act(g.conv(g.op("GlobalAveragePool", [y], (1, c, 1, 1)), c, k=1), gate)
        y = g.op("Mul", [y, s], g.shapes[y])
    g.out = g.conv(y, c)
    return g


GATES = ("Sigmoid", "HardSigmoid")
"""Squeeze-and-excite gate activations probed (SENet / EfficientNet, MobileNetV3)."""
CHANNEL_CANDIDATES = (8, 12, 16, 24, 32)
DEPTHWISE_CANDIDATES = (6, 10, 12, 20)


def _layout_probes() -> dict[str, Any]:
    """Single convs: from how many input channels a plain input is reordered (the block), which
    depthwise channel counts run blocked (the alignment), whether a grouped conv does."""
    out: dict[str, Any] = {}
    for c in CHANNEL_CANDIDATES:
        g = GraphBuilder((1, c, 8, 8))
        out[f"block:{c}"] = g.model([g.conv("x", c)])
    for c in DEPTHWISE_CANDIDATES:
        g = GraphBuilder((1, c, 8, 8))
        out[f"dw:{c}"] = g.model([g.conv("x", c, groups=c)])
    g = GraphBuilder((1, 32, 8, 8))
    out["grouped"] = g.model([g.conv("x", 32, groups=4)])
    return out


def _probe_layout_graphs(block: int) -> dict[str, Any]:
    """The fusion questions; without a blocked layout (``block`` 0) only the plain-layout ones."""
    blocked, plain = (2 * block, 2 * block + 1) if block else (32, 33)
    out: dict[str, Any] = {}
    for layout, c in (("nchwc", blocked), ("plain", plain))[0 if block else 1:]:
        for f in CONV_FOLLOWERS:
            g = _conv_then(c, f)
            out[f"conv+{f}:{layout}"] = g.model([g.out])
    for f in GEMM_FOLLOWERS:
        g = GraphBuilder((1, 64))
        w = g.weight(np.ones((64, 32)) * 0.01)
        if f == "Add":
            y = g.op("MatMul", ["x", w], (1, 32))
            z = g.op("Add", [y, g.weight(np.zeros(32))], (1, 32))
        else:
            y = g.op("Gemm", ["x", g.weight(np.ones((32, 64)) * 0.01), g.weight(np.zeros(32))], (1, 32), transB=1)
            z = g.act(y, f)
        out[f"gemm+{f}"] = g.model([z])
    for op in (*LAYOUT_OPS, "BatchNormalization") if block else ():
        g = _between_convs(blocked, op)
        out[f"layout:{op}"] = g.model([g.out])
    for op in ELIDED_CANDIDATES:
        g = GraphBuilder((1, 16, 8, 8))
        y = g.pool("x", "MaxPool", 3, 1)
        if op == "Flatten":
            z = g.op("Flatten", [g.op("GlobalAveragePool", [y], (1, 16, 1, 1))], (1, 16), axis=1)
        else:
            z = g.op(op, [y], g.shapes[y])
        out[f"elided:{op}"] = g.model([g.op("Relu", [z], g.shapes[z])])
    g = GraphBuilder((1, plain, 8, 8))
    y = g.conv("x", plain)
    z = g.op("Mul", [y, g.op("Sigmoid", [y], g.shapes[y])], g.shapes[y])
    out["swish"] = g.model([z])
    for anchor in FOLLOWER_ANCHORS:
        for f in (None, *FOLLOWERS):
            g = _anchor_then(plain, anchor, f)
            out[f"follow:{anchor}+{f}"] = g.model([g.out])
    for gate in (None, *GATES):
        g = _gate(plain, gate)
        out[f"gate:{gate}"] = g.model([g.out])
    g = GraphBuilder((1, plain, 8, 8))
    y = g.pool("x", "MaxPool", 3, 1)
    half = plain // 2
    starts = [g.weight(np.array([s], dtype=np.int64)) for s in (0, half)]
    ends = [g.weight(np.array([e], dtype=np.int64)) for e in (half, plain)]
    axes = g.weight(np.array([1], dtype=np.int64))
    a = g.op("Slice", [y, starts[0], ends[0], axes], (1, half, 8, 8))
    b = g.op("Slice", [y, starts[1], ends[1], axes], (1, plain - half, 8, 8))
    out["merge_slices"] = g.model([g.op("Relu", [a], (1, half, 8, 8)), g.op("Relu", [b], (1, plain - half, 8, 8))])
    return out


def _compute(nodes: list[dict[str, Any]]) -> list[str]:
    """Op types of the compute kernels a profile ran, in execution order (reorders left out)."""
    return [n["op_type"] for n in sorted(nodes, key=lambda n: n["index"]) if n["op_type"] not in REORDERS]


def _has(nodes: list[dict[str, Any]], op_type: str) -> bool:
    return any(n["op_type"] == op_type for n in nodes)


def _adds_no_kernel(nodes: list[dict[str, Any]], control: list[dict[str, Any]], op_type: str, extra: int = 0) -> bool:
    """Whether a probe ran ``extra`` compute kernels more than its control graph without ``op_type``,
    with no kernel of ``op_type`` left: the op was fused into the kernel before it."""
    compute = _compute(nodes)
    return len(compute) == len(_compute(control)) + extra and op_type not in compute


def _reorders(nodes: list[dict[str, Any]]) -> int:
    return sum(n["op_type"] in REORDERS for n in nodes)


def learn(profile: Callable[[Path], list[dict[str, Any]]], meta: dict[str, Any],
          progress: Callable[[str], None] | None = None) -> FusionRules:
    """Profile the test graphs with ``profile`` (an ONNX file -> the kernels the device's runtime ran
    for it, :func:`hwnas.measure.kernel_profile`) and read off the device's fusion rules."""
    answers: dict[str, list[dict[str, Any]]] = {}

    def run(graphs: dict[str, Any]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for i, (question, model) in enumerate(graphs.items()):
                answers[question] = profile(save(model, Path(tmp) / f"probe{i}.onnx"))
                if progress:
                    progress(question)

    run(_layout_probes())
    reordered = [c for c in CHANNEL_CANDIDATES if _has(answers[f"block:{c}"], "ReorderInput")]
    blocked = any(_reorders(answers[f"block:{c}"]) for c in CHANNEL_CANDIDATES)
    block = min(reordered) if reordered else (max(CHANNEL_CANDIDATES) * 2 if blocked else 0)
    dw = [c for c in DEPTHWISE_CANDIDATES if _reorders(answers[f"dw:{c}"])]
    align = int(np.gcd.reduce(dw)) if dw else 0
    run(_probe_layout_graphs(block))
    absorbs: dict[str, dict[str, list[str]]] = {"nchwc": {"Conv": []}, "plain": {"Conv": [], "Gemm": []}}
    for layout in ("nchwc", "plain")[0 if block else 1:]:
        for f in CONV_FOLLOWERS:
            if len(_compute(answers[f"conv+{f}:{layout}"])) == (3 if f == "Add" else 2):  # Add: two convs before it
                absorbs[layout]["Conv"].append(f)
    for f in GEMM_FOLLOWERS:
        if len(_compute(answers[f"gemm+{f}"])) == 1:
            absorbs["plain"]["Gemm"].append(f)
    nchwc_ops = []
    for op in LAYOUT_OPS if block else ():
        if _reorders(answers[f"layout:{op}"]) <= 2:  # only the graph's own way in and out
            nchwc_ops.append(op)
    for anchor in FOLLOWER_ANCHORS:
        control = answers[f"follow:{anchor}+None"]
        taken = [f for f in FOLLOWERS if _adds_no_kernel(answers[f"follow:{anchor}+{f}"], control, f)]
        if taken:
            absorbs["plain"][anchor] = taken
    if len(_compute(answers["swish"])) == 1:  # x * sigmoid(x) inside the conv before it
        absorbs["plain"]["Conv"].append("Swish")
    # the SE block adds a global pool and its conv (gate inside) and nothing for the Mul
    if all(_adds_no_kernel(answers[f"gate:{g}"], answers["gate:None"], "Mul", extra=2) for g in GATES):
        absorbs["plain"]["Conv"].append("Mul")
    bn = _compute(answers["layout:BatchNormalization"]) if block else []
    elided = [op for op in ELIDED_CANDIDATES if op not in _compute(answers[f"elided:{op}"])]
    rules = FusionRules(
        absorbs=absorbs, elided=elided, swish=len(_compute(answers["swish"])) == 2,
        merge_slices=_compute(answers["merge_slices"]).count("Slice") == 0, block=block, nchwc_ops=nchwc_ops,
        bn_as_conv=bool(block) and "BatchNormalization" not in bn,
        align=align, grouped_blocked=bool(_reorders(answers["grouped"])),
        meta={**meta, "probes": {q: _compute(n) for q, n in answers.items()}})
    return rules


def rules_path(workspace: Path, device: str, backend: str, version: str | None) -> Path:
    """Where a device's learned rules are kept (one file per device, backend and runtime version)."""
    return workspace / "kernels" / f"{device}-{backend}-{version or 'unknown'}.rules.json"


def save_rules(rules: FusionRules, path: Path) -> Path:
    """Write rules as JSON, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(rules.to_dict(), indent=1, sort_keys=True))
    return path


def load_rules(path: Path) -> FusionRules:
    """Rules written by :func:`save_rules` (ValueError names a malformed file)."""
    return FusionRules.from_dict(json.loads(Path(path).read_text()))
