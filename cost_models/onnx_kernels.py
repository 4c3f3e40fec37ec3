"""Split any ONNX CNN into the kernels a device's runtime runs, with fusion rules learned on that device.

A runtime does not run an ONNX graph node by node. ONNX Runtime's CPU provider, for
instance, folds constant sub-graphs (weight ``Identity`` nodes, shape arithmetic),
drops ``Identity``/``Dropout``, fuses a Conv with the BatchNormalization, activation
and residual Add that follow it, turns ``x * sigmoid(x)`` into one kernel, merges the
Slices that split a tensor into one Split, and on x86 runs convolutions in a blocked
channel layout (NCHWc) with explicit ``ReorderInput``/``ReorderOutput`` kernels where
the layout changes. Which of these happen depends on the runtime version, its
execution provider and the CPU (the NCHWc block is 8 channels with AVX2, 16 with
AVX-512). So the rules are not written here: :class:`FusionRules` holds what
``hwnas.kernel_rules`` learned by profiling small test graphs *on the device*, and
:func:`split` applies them to a graph on the host (nothing here talks to a device).

A :class:`Kernel` carries a type (``conv``, ``dwconv``, ``gconv``, ``pool``,
``globalpool``, ``gemm``, ``eltwise``, ``act``, ``concat``, ``split``, ``shuffle``,
``softmax``, ``resize``, ``norm``, ``reorder``, or ``other`` for an op no predictor
covers), the source nodes it stands for, and a numeric feature dict
(:data:`FEATURES` names them per type).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import onnx
from onnx import shape_inference

RULES_VERSION = 1
"""Bump when the meaning of a rules document changes."""

ACTIVATIONS = ("Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Tanh", "Elu", "Selu",
               "Softplus", "Swish")
ELTWISE = ("Add", "Mul", "Sub", "Div", "Sum", "Max", "Min", "Pow")
POOLS = ("MaxPool", "AveragePool")
GLOBAL_POOLS = ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean")
SHAPE_ONLY = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")
ALWAYS_ELIDED = ("Identity", "Dropout", "Constant")
FOLLOWER_ANCHOR = {**{op: "MaxPool" for op in POOLS}, **{op: "GlobalAveragePool" for op in GLOBAL_POOLS},
                   "Concat": "Concat", **{op: "Add" for op in (*ELTWISE, *ACTIVATIONS, "BatchNormalization")}}
"""Which probed anchor of :data:`hwnas.kernel_rules.FOLLOWER_ANCHORS` answers, for a kernel of each op
type, which element-wise ops after it the runtime fuses in (``absorbs['plain'][anchor]``)."""

FEATURES: dict[str, tuple[str, ...]] = {
    "conv": ("cin", "cout", "k", "stride", "hin", "hout", "act", "sum", "nchwc"),
    "dwconv": ("c", "k", "stride", "hin", "hout", "act", "sum", "nchwc"),
    "gconv": ("cin", "cout", "groups", "k", "stride", "hin", "hout", "act", "nchwc"),
    "pool": ("c", "k", "stride", "hin", "hout", "max", "nchwc"),
    "globalpool": ("c", "hin", "max", "nchwc"),
    "gemm": ("cin", "cout", "act"),
    "eltwise": ("numel", "broadcast", "op", "nchwc"),
    "act": ("numel", "op", "nchwc"),
    "concat": ("numel", "inputs", "nchwc"),
    "split": ("numel", "outputs"),
    "shuffle": ("numel", "transpose"),
    "softmax": ("numel", "axis_len"),
    "resize": ("numel_in", "numel_out", "linear"),
    "norm": ("numel", "c"),
    "reorder": ("numel", "c", "to_nchwc"),
}
"""Feature names per kernel type (every value numeric)."""

OP_CODES = {op: i for i, op in enumerate(("Add", "Mul", "Sub", "Div", "Sum", "Max", "Min", "Pow", *ACTIVATIONS,
                                          "Swish", "HardSwish"))}
ACT_CODES = {None: 0, "Relu": 1, "Clip": 2, "Sigmoid": 3, "HardSigmoid": 4, "HardSwish": 5, "LeakyRelu": 6,
             "Tanh": 7, "Swish": 8}


@dataclasses.dataclass
class Kernel:
    """One kernel the runtime runs: its type, the source nodes it covers, features, FLOPs."""

    type: str
    name: str
    nodes: list[str]
    features: dict[str, float]
    flops: float = 0.0
    op: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class FusionRules:
    """What a device's runtime does to a graph, as learned by profiling test graphs there.

    ``absorbs[layout][anchor]``: the ops a kernel of type ``anchor`` (``Conv``, ``Gemm``; in the
    plain layout also the non-conv anchors of :data:`FOLLOWER_ANCHOR`) takes into itself when one
    directly follows it (``layout`` is ``nchwc`` or ``plain``); a conv's list may also hold
    ``Swish`` (``x * sigmoid(x)`` after it) and ``Mul`` (a squeeze-and-excite gate's product).
    ``elided``: op types the runtime removes. ``swish``: whether ``x * sigmoid(x)`` runs as
    one kernel. ``merge_slices``: whether Slices of one tensor become one Split.
    ``block``: the blocked (NCHWc) layout's channel block: a conv with fewer input channels reads a
    plain input directly, one with more needs a reorder first (0: no blocked layout). ``align``: the
    channel multiple a conv's input (and a depthwise conv's channels) needs to run blocked.
    ``grouped_blocked``: whether grouped (not depthwise) convs run blocked.
    ``nchwc_ops``: ops that stay in the blocked layout when their input is blocked.
    ``bn_as_conv``: whether a BatchNormalization on a blocked tensor runs as a (1x1 depthwise) Conv.
    ``meta``: device, backend, runtime version, providers, how the rules were learned.
    """

    absorbs: dict[str, dict[str, list[str]]]
    elided: list[str]
    swish: bool
    merge_slices: bool
    block: int
    nchwc_ops: list[str]
    bn_as_conv: bool
    align: int
    grouped_blocked: bool
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (with a format version)."""
        return {"rules_version": RULES_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, doc: Any) -> FusionRules:
        """The rules :meth:`to_dict` wrote; ValueError names what is wrong."""
        if not isinstance(doc, dict):
            raise ValueError("fusion rules must be a JSON object")
        if doc.get("rules_version") != RULES_VERSION:
            raise ValueError(f"fusion rules version {doc.get('rules_version')!r}, this hwnas reads {RULES_VERSION}")
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = fields - set(doc)
        if missing:
            raise ValueError(f"fusion rules lack {', '.join(sorted(missing))}")
        return cls(**{k: doc[k] for k in fields})


class GraphError(ValueError):
    """A graph that is not an ONNX CNN this splitter can read (no 4-D input, unknown shapes)."""


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _numel(shape: Iterable[int]) -> int:
    return int(np.prod(list(shape))) if shape is not None else 0


SMALL_INITIALIZER = 64
"""Initializers up to this many elements keep their values for shape inference (reshape targets, ...)."""


def light(model: onnx.ModelProto, as_inputs: bool = False) -> onnx.ModelProto:
    """A copy of ``model`` whose large initializers keep their type and shape but not their values:
    shape inference and splitting need the shapes, not megabytes of weights. With ``as_inputs`` they
    become typed graph inputs instead (a model the ONNX checker accepts)."""
    out = onnx.ModelProto(ir_version=model.ir_version, producer_name=model.producer_name)
    out.opset_import.extend(model.opset_import)
    graph = model.graph
    out.graph.name = graph.name
    for field in ("node", "input", "output", "value_info"):
        getattr(out.graph, field).extend(getattr(graph, field))
    for t in graph.initializer:
        if (int(np.prod(t.dims)) if t.dims else 1) <= SMALL_INITIALIZER:
            out.graph.initializer.append(t)
        elif as_inputs:
            out.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            out.graph.initializer.append(onnx.TensorProto(name=t.name, data_type=t.data_type, dims=t.dims))
    return out


FOLDABLE = ("Constant", "Gather", "Add", "Sub", "Mul", "Div", "Concat", "Unsqueeze", "Squeeze", "Cast",
            "Slice", "Floor", "Ceil", "Min", "Max")
"""Ops whose small outputs :func:`fold_shape_arithmetic` computes from known values (with ``Shape`` of a
static shape: the shape arithmetic of exporters)."""


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError and friends
        raise GraphError(f"shape inference failed: {str(exc).splitlines()[0] if str(exc) else exc}") from None


def _has_unknown_dims(model: onnx.ModelProto) -> bool:
    return any(not d.HasField("dim_value") for vi in model.graph.value_info for d in vi.type.tensor_type.shape.dim)


def fold_shape_arithmetic(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` (shape-inferred) with the small tensors it computes from static shapes replaced by their
    values, and shapes inferred again. Exporters write a channel split as ``Slice`` bounds computed from
    ``Shape → Gather → Div → Mul`` (ShuffleNetV2's ``chunk``), which ONNX shape inference does not
    evaluate: every tensor after it would have unknown dimensions."""
    from onnx import numpy_helper

    shapes = {vi.name: [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
              for vi in [*model.graph.input, *model.graph.value_info]}
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer  # the ones light() kept
              if _numel(t.dims) <= SMALL_INITIALIZER and t.data_location != onnx.TensorProto.EXTERNAL}
    folded: set[int] = set()
    for i, node in enumerate(model.graph.node):
        ins = [x for x in node.input if x]
        if node.op_type == "Shape" and ins and shapes.get(ins[0]) and None not in shapes[ins[0]]:
            start = next((a.i for a in node.attribute if a.name == "start"), 0)
            end = next((a.i for a in node.attribute if a.name == "end"), None)
            values[node.output[0]] = np.array(shapes[ins[0]][start:end], dtype=np.int64)
        elif node.op_type in FOLDABLE and all(x in values for x in ins):
            if any(values[x].size > SMALL_INITIALIZER for x in ins):
                continue
            outs = _fold_node(node, [values[x] for x in node.input if x], model.opset_import)
            if outs is None:
                continue
            values.update({o: np.asarray(v) for o, v in zip(node.output, outs)})
        else:
            continue
        folded.add(i)
    if not folded:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [n for i, n in enumerate(model.graph.node) if i not in folded]
    del out.graph.node[:]
    out.graph.node.extend(kept)
    del out.graph.value_info[:]
    have = {t.name for t in out.graph.initializer}
    out.graph.initializer.extend(numpy_helper.from_array(values[o], o) for i in sorted(folded)
                                 for o in model.graph.node[i].output if o not in have)
    return _infer(out)


_ARITHMETIC = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Min": np.minimum, "Max": np.maximum}


def _fold_node(node: onnx.NodeProto, ins: list[np.ndarray], opset: Any) -> list[np.ndarray] | None:
    """A shape-arithmetic node's outputs from its input values: numpy for the common ops, ONNX's reference
    runtime for the rest (None when it cannot evaluate the node)."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    op = node.op_type
    if op == "Constant" and "value" in attrs:
        return [onnx.numpy_helper.to_array(attrs["value"])]
    if op in _ARITHMETIC:
        return [_ARITHMETIC[op](ins[0], ins[1]).astype(ins[0].dtype)]
    if op == "Div" and np.issubdtype(ins[0].dtype, np.integer):
        return [np.trunc(ins[0] / ins[1]).astype(ins[0].dtype)]
    if op == "Gather":
        return [np.take(ins[0], ins[1], axis=attrs.get("axis", 0))]
    if op == "Concat":
        return [np.concatenate(ins, axis=attrs["axis"])]
    if op == "Unsqueeze" and len(ins) == 2:
        return [np.expand_dims(ins[0], tuple(int(a) for a in ins[1]))]
    from onnx.reference import ReferenceEvaluator

    try:
        graph = onnx.helper.make_graph(
            [node], "fold", [onnx.helper.make_tensor_value_info(x, onnx.helper.np_dtype_to_tensor_dtype(v.dtype),
                                                                list(v.shape)) for x, v in zip(node.input, ins)],
            [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output])
        return list(ReferenceEvaluator(onnx.helper.make_model(graph, opset_imports=opset)).run(
            None, dict(zip(node.input, ins))))
    except Exception:  # an op the reference runtime cannot evaluate here: leave it to the runtime
        return None


class _Graph:
    """Shapes, producers, consumers and constants of a shape-inferred graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        model = _infer(light(model))
        if _has_unknown_dims(model):
            model = fold_shape_arithmetic(model)
        g = model.graph
        self.graph = g
        self.shapes: dict[str, list[int]] = {}
        for vi in [*g.input, *g.value_info, *g.output]:
            dims = vi.type.tensor_type.shape.dim
            if vi.type.tensor_type.HasField("shape"):
                self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
        self.constants = {t.name for t in g.initializer}
        for t in g.initializer:
            self.shapes[t.name] = list(t.dims)
        self.inputs = [i.name for i in g.input if i.name not in self.constants]
        self.outputs = {o.name for o in g.output}
        # constant folding: a node all of whose inputs are constants (or that reads only a static shape)
        self.live: list[onnx.NodeProto] = []
        for node in g.node:
            ins = [i for i in node.input if i]
            static_shape = node.op_type == "Shape" and ins and ins[0] in self.shapes
            if node.op_type == "Constant" or static_shape or (ins and all(i in self.constants for i in ins)):
                self.constants.update(node.output)
                continue
            self.live.append(node)
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        self.producer: dict[str, onnx.NodeProto] = {}
        for node in self.live:
            for i in node.input:
                if i and i not in self.constants:
                    self.consumers.setdefault(i, []).append(node)
            for o in node.output:
                self.producer[o] = node

    def shape(self, name: str) -> list[int]:
        return self.shapes.get(name) or []

    def data_inputs(self, node: onnx.NodeProto) -> list[str]:
        return [i for i in node.input if i and i not in self.constants]


def _conv_kernel(g: _Graph, node: onnx.NodeProto, rules: FusionRules) -> Kernel:
    a = _attrs(node)
    x, w = g.shape(node.input[0]), g.shape(node.input[1])
    out = g.shape(node.output[0])
    if len(x) != 4 or len(w) != 4 or len(out) != 4:
        raise GraphError(f"node {node.name or node.output[0]!r}: Conv needs 4-D shapes")
    groups = int(a.get("group", 1))
    cin, cout, k = x[1], w[0], int(w[2])
    stride = int((a.get("strides") or [1])[0])
    nchwc = int(rules.block > 0 and _blocked_conv(cin, cout, groups, rules))
    flops = 2.0 * _numel(out) * (cin // groups) * w[2] * w[3]
    common = {"k": k, "stride": stride, "hin": x[2], "hout": out[2], "act": 0, "sum": 0, "nchwc": nchwc}
    if groups == 1:
        kind, feats = "conv", {"cin": cin, "cout": cout, **common}
    elif groups == cin == cout:
        kind, feats = "dwconv", {"c": cin, **common}
    else:
        kind, feats = "gconv", {"cin": cin, "cout": cout, "groups": groups, **common}
        feats.pop("sum")
    return Kernel(kind, node.name or node.output[0], [node.name or node.output[0]], feats, flops, "Conv")


def _blocked_conv(cin: int, cout: int, groups: int, rules: FusionRules) -> bool:
    """Whether a conv runs in the blocked layout under the learned rules."""
    align = max(1, int(rules.align))
    if groups == 1:
        return cin % align == 0 or cin < rules.block
    if groups == cin == cout:
        return cin % align == 0
    return bool(rules.grouped_blocked) and (cin // groups) % align == 0


def _swish_of(g: _Graph, name: str) -> tuple[onnx.NodeProto, onnx.NodeProto] | None:
    """The (Sigmoid, Mul) of ``name * sigmoid(name)`` when those are the only users of ``name``."""
    users = g.consumers.get(name, [])
    if len(users) != 2 or name in g.outputs:
        return None
    sigmoid = next((n for n in users if n.op_type == "Sigmoid"), None)
    mul = _is_swish(g, sigmoid) if sigmoid is not None else None
    return (sigmoid, mul) if mul is not None and mul in users else None


def _is_swish(g: _Graph, node: onnx.NodeProto) -> onnx.NodeProto | None:
    """The Mul of ``x * sigmoid(x)`` when ``node`` is that Sigmoid, else None."""
    if node.op_type != "Sigmoid":
        return None
    users = g.consumers.get(node.output[0], [])
    if len(users) != 1 or users[0].op_type != "Mul":
        return None
    mul = users[0]
    return mul if set(g.data_inputs(mul)) == {node.input[0], node.output[0]} else None


def split(model: onnx.ModelProto, rules: FusionRules, image_input: bool = True) -> list[Kernel]:
    """The kernels ``model`` runs as on the device ``rules`` were learned on, in graph order.

    Raises GraphError when the graph is not a CNN the splitter can read (no 4-D float
    input unless ``image_input`` is False, missing shapes)."""
    g = _Graph(model)
    if not g.inputs or (image_input and len(g.shape(g.inputs[0])) != 4):
        raise GraphError("the model has no 4-D (NCHW) image input")
    block = int(rules.block)
    elided = set(ALWAYS_ELIDED) | set(rules.elided)
    kernels: list[Kernel] = []
    blocked: dict[str, bool] = {name: False for name in g.inputs}
    alias: dict[str, str] = {}            # an elided node's output -> its input
    taken: set[int] = set()

    def src(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    def single_user(name: str) -> onnx.NodeProto | None:
        users = g.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in g.outputs else None

    def absorb(kernel: Kernel, node: onnx.NodeProto, cur: str) -> str:
        """Fuse ``node`` (the single user of ``cur``) into ``kernel``; returns its output."""
        taken.add(id(node))
        kernel.nodes.append(node.name or node.output[0])
        alias[node.output[0]] = cur
        return node.output[0]

    reordered: set[str] = set()

    def need_layout(name: str, want_blocked: bool, kernel_name: str) -> None:
        """A reorder kernel when a tensor's layout differs from what its consumer wants (once per tensor)."""
        name = src(name)
        if name in g.constants or blocked.get(name, False) == want_blocked or not block:
            return
        key = f"{name}->{'nchwc' if want_blocked else 'plain'}"
        if key in reordered:
            return
        reordered.add(key)
        shape = g.shape(name)
        kernels.append(Kernel("reorder", f"reorder:{key}", [kernel_name],
                              {"numel": _numel(shape), "c": shape[1] if len(shape) > 1 else 1,
                               "to_nchwc": int(want_blocked)}, 0.0, "Reorder"))

    for node in g.live:
        if id(node) in taken:
            continue
        name = node.name or node.output[0]
        op = node.op_type
        ins = [src(i) for i in g.data_inputs(node)]
        out = node.output[0] if node.output else ""
        if op in elided or (op in SHAPE_ONLY and op != "Reshape" and rules.meta.get("flatten_elided")):
            if ins:
                alias[out] = ins[0]
            continue
        in_blocked = bool(ins) and blocked.get(ins[0], False)
        kernel: Kernel
        if op == "Conv" or (op == "BatchNormalization" and in_blocked and rules.bn_as_conv):
            if op == "Conv":
                kernel = _conv_kernel(g, node, rules)
                want = bool(kernel.features["nchwc"])
                if want and not (g.shape(ins[0])[1] < block and kernel.type == "conv" and not blocked.get(ins[0])):
                    need_layout(ins[0], True, name)
                elif not want:
                    need_layout(ins[0], False, name)
            else:
                c = g.shape(ins[0])[1]
                hw = g.shape(ins[0])[2]
                kernel = Kernel("dwconv", name, [name], {"c": c, "k": 1, "stride": 1, "hin": hw, "hout": hw,
                                                         "act": 0, "sum": 0, "nchwc": 1}, 2.0 * _numel(g.shape(out)),
                                "BatchNormalization")
            anchor_layout = "nchwc" if kernel.features.get("nchwc") else "plain"
            absorbs = set(rules.absorbs.get(anchor_layout, {}).get("Conv", []))
            cur = out
            chain = [out]
            while True:  # take followers the runtime fuses into the conv
                nxt = single_user(cur)
                if nxt is None or id(nxt) in taken:
                    break
                if nxt.op_type in elided:
                    taken.add(id(nxt))
                    alias[nxt.output[0]] = cur
                    cur = nxt.output[0]
                    chain.append(cur)
                    continue
                bn = nxt.op_type == "BatchNormalization" and "BatchNormalization" in absorbs
                if bn and not kernel.features["act"]:
                    pass  # folded into the conv's weights: no feature changes
                elif (nxt.op_type in ("Add", "Sum") and "Add" in absorbs and "sum" in kernel.features
                      and not kernel.features["sum"] and not kernel.features["act"]
                      and len(g.data_inputs(nxt)) == 2
                      and g.shape(g.data_inputs(nxt)[0]) == g.shape(g.data_inputs(nxt)[1])):
                    other = [i for i in g.data_inputs(nxt) if src(i) != src(cur)]
                    if other:
                        need_layout(other[0], bool(kernel.features["nchwc"]), name)
                    kernel.features["sum"] = 1
                elif nxt.op_type in ACTIVATIONS and nxt.op_type in absorbs and not kernel.features["act"]:
                    kernel.features["act"] = ACT_CODES.get(nxt.op_type, 9)
                elif nxt.op_type == "Mul" and "Mul" in absorbs:
                    pass  # a squeeze-and-excite gate's broadcast Mul, run inside the gate's conv
                else:
                    break
                cur = absorb(kernel, nxt, cur)
                chain.append(cur)
            swish = _swish_of(g, cur) if "Swish" in absorbs and not kernel.features["act"] else None
            if swish is not None and not any(id(n) in taken for n in swish):
                kernel.features["act"] = ACT_CODES["Swish"]
                for n in swish:
                    cur = absorb(kernel, n, cur)
                    chain.append(cur)
            for t in chain:
                blocked[t] = bool(kernel.features.get("nchwc"))
            kernels.append(kernel)
            continue
        stays_blocked = in_blocked and op in rules.nchwc_ops and all(blocked.get(i, False) for i in ins)
        if op in ("Concat",) and stays_blocked:
            stays_blocked = all(g.shape(i)[1] % block == 0 for i in ins) if block else False
        if not stays_blocked:
            for i in ins:
                need_layout(i, False, name)
        nb = int(stays_blocked)
        shape_in = g.shape(ins[0]) if ins else []
        shape_out = g.shape(out)
        a = _attrs(node)
        if op in POOLS and len(shape_in) == 4:
            k = int((a.get("kernel_shape") or [1])[0])
            kernel = Kernel("pool", name, [name], {"c": shape_in[1], "k": k,
                                                   "stride": int((a.get("strides") or [1])[0]), "hin": shape_in[2],
                                                   "hout": shape_out[2] if len(shape_out) == 4 else 1,
                                                   "max": int(op == "MaxPool"), "nchwc": nb},
                            float(_numel(shape_out) * k * k), op)
        elif op in GLOBAL_POOLS and len(shape_in) == 4:
            kernel = Kernel("globalpool", name, [name], {"c": shape_in[1], "hin": shape_in[2],
                                                         "max": int(op == "GlobalMaxPool"), "nchwc": nb},
                            float(_numel(shape_in)), op)
        elif op in ("Gemm", "MatMul") and shape_in:
            w = g.shape(node.input[1])
            cout = shape_out[-1] if shape_out else (w[0] if w else 1)
            kernel = Kernel("gemm", name, [name], {"cin": shape_in[-1], "cout": cout, "act": 0},
                            2.0 * shape_in[-1] * cout, op)
            cur = out
            while True:
                nxt = single_user(cur)
                absorbs = set(rules.absorbs.get("plain", {}).get("Gemm", []))
                if nxt is None or id(nxt) in taken:
                    break
                if nxt.op_type == "Add" and "Add" in absorbs and op == "MatMul":
                    pass
                elif nxt.op_type in ACTIVATIONS and nxt.op_type in absorbs and not kernel.features["act"]:
                    kernel.features["act"] = ACT_CODES.get(nxt.op_type, 9)
                else:
                    break
                cur = absorb(kernel, nxt, cur)
            blocked[cur] = False
            kernels.append(kernel)
            continue
        elif op == "Sigmoid" and rules.swish and _is_swish(g, node) is not None:
            mul = _is_swish(g, node)
            taken.add(id(mul))
            kernel = Kernel("act", name, [name, mul.name or mul.output[0]],
                            {"numel": _numel(shape_in), "op": OP_CODES["Swish"], "nchwc": 0}, float(_numel(shape_in)),
                            "Swish")
            alias[mul.output[0]] = out
            if stays_blocked:
                nb = 0
        elif op in ACTIVATIONS:
            kernel = Kernel("act", name, [name], {"numel": _numel(shape_in), "op": OP_CODES[op], "nchwc": nb},
                            float(_numel(shape_in)), op)
        elif op in ELTWISE:
            shapes = [g.shape(i) for i in ins] + [g.shape(i) for i in node.input if i in g.constants]
            broadcast = int(len({tuple(s) for s in shapes}) > 1)
            kernel = Kernel("eltwise", name, [name], {"numel": _numel(shape_out), "broadcast": broadcast,
                                                      "op": OP_CODES[op], "nchwc": nb}, float(_numel(shape_out)), op)
        elif op == "Concat":
            kernel = Kernel("concat", name, [name], {"numel": _numel(shape_out), "inputs": len(ins), "nchwc": nb},
                            0.0, op)
        elif op in ("Split", "Slice"):
            if op == "Slice" and rules.merge_slices:
                siblings = [n for n in g.consumers.get(ins[0], []) if n.op_type == "Slice" and id(n) not in taken
                            and n is not node]
                for s in siblings:
                    taken.add(id(s))
                    blocked[s.output[0]] = False
                outputs = 1 + len(siblings)
            else:
                outputs = len(node.output)
            kernel = Kernel("split", name, [name], {"numel": _numel(shape_in), "outputs": outputs}, 0.0, "Split")
        elif op in ("Reshape", "Transpose", *SHAPE_ONLY):
            kernel = Kernel("shuffle", name, [name], {"numel": _numel(shape_in), "transpose": int(op == "Transpose")},
                            0.0, op)
        elif op == "Softmax":
            axis = int(a.get("axis", -1))
            kernel = Kernel("softmax", name, [name], {"numel": _numel(shape_in),
                                                      "axis_len": shape_in[axis] if shape_in else 1},
                            5.0 * _numel(shape_in), op)
        elif op in ("Resize", "Upsample"):
            mode = a.get("mode", b"nearest")
            kernel = Kernel("resize", name, [name], {"numel_in": _numel(shape_in), "numel_out": _numel(shape_out),
                                                     "linear": int(b"linear" in mode if isinstance(mode, bytes)
                                                                   else "linear" in str(mode))},
                            float(_numel(shape_out)), op)
        elif op in ("BatchNormalization", "InstanceNormalization", "LRN") and shape_in:
            channels = shape_in[1] if len(shape_in) > 1 else 1
            kernel = Kernel("norm", name, [name], {"numel": _numel(shape_in), "c": channels},
                            2.0 * _numel(shape_in), op)
        else:
            numel = max(_numel(shape_in), _numel(shape_out))
            kernel = Kernel("other", name, [name], {"numel": numel}, float(numel), op)
        followers = set(rules.absorbs.get("plain", {}).get(FOLLOWER_ANCHOR.get(op, ""), []))
        cur = out
        while followers and not nb:  # element-wise ops the runtime runs inside this kernel
            nxt = single_user(cur)
            if nxt is None or id(nxt) in taken or nxt.op_type not in followers:
                break
            cur = absorb(kernel, nxt, cur)
        for o in node.output:
            blocked[o] = bool(nb)
        kernels.append(kernel)
    for name in g.outputs:  # graph outputs leave in the plain layout
        need_layout(name, False, "output")
    return kernels


def total_flops(kernels: Iterable[Kernel]) -> float:
    """Sum of the kernels' FLOPs."""
    return float(sum(k.flops for k in kernels))


def feature_vector(kernel: Kernel) -> np.ndarray:
    """The kernel's features in :data:`FEATURES` order, log-scaled where they are sizes."""
    names = FEATURES[kernel.type]
    values = []
    for n in names:
        v = float(kernel.features.get(n, 0))
        values.append(math.log2(v) if n in _LOG_FEATURES and v > 0 else v)
    return np.asarray(values, dtype=np.float64)


_LOG_FEATURES = {"cin", "cout", "c", "hin", "hout", "numel", "numel_in", "numel_out", "groups", "axis_len"}
