"""Kernel configurations sampled from a prior over real CNN shapes, and their single-kernel ONNX models.

The prior follows the layer shapes of published mobile and server CNNs (ResNet, VGG,
MobileNets, ShuffleNet, SqueezeNet, DenseNet, GoogLeNet, MnasNet, EfficientNet):
channel counts from 8 to 2048 with most mass below 512, feature maps from 1 to 112
pixels, kernel sizes 1-7, strides 1-2, the activations those networks use. A draw that
would take longer than :data:`MAX_FLOPS` is shrunk (feature map halved), never redrawn
without bound. :func:`refine` draws more configurations near given ones (the worst
predicted), for the active-learning rounds of ``costmodel fit --onnx-kernels``.

A configuration is a JSON-able dict with ``type``; :func:`model` builds the ONNX model
that runs just that kernel (on a plain NCHW input, as the runtime would see a network's
first layer); :func:`signature` is its store signature.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from hwnas.kernel_graphs import GraphBuilder

MAX_FLOPS = 3e8
MAX_WEIGHTS = 4_000_000
"""Largest fully connected layer sampled (weights), so sample files stay small."""
CHANNELS = (8, 12, 16, 24, 32, 40, 48, 64, 72, 80, 96, 112, 120, 128, 144, 160, 192, 240, 256, 288, 320, 384, 480,
            512, 576, 672, 768, 960, 1024, 1280, 2048)
SIZES = (1, 2, 3, 4, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112)
CONV_ACTS = ("", "Relu", "Clip", "HardSwish", "Sigmoid")
SOFTMAX_SIZES = (10, 100, 1000, 10000)
ELTWISE_ACTS = ("Relu", "Sigmoid", "HardSwish", "HardSigmoid", "Clip", "Swish")

TYPES: dict[str, int] = {"conv": 260, "dwconv": 140, "gconv": 30, "pool": 60, "globalpool": 40, "gemm": 40,
                         "eltwise": 70, "act": 80, "concat": 50, "split": 30, "shuffle": 40, "softmax": 15,
                         "resize": 25, "norm": 40}
"""Kernel types sampled, with the first round's number of samples each."""


def _channels(rng: np.random.Generator, high: int = 2048) -> int:
    options = [c for c in CHANNELS if c <= high]
    weights = np.array([1.0 / (1 + i / 8) for i in range(len(options))])
    return int(rng.choice(options, p=weights / weights.sum()))


def _size(rng: np.random.Generator, low: int = 1) -> int:
    return int(rng.choice([s for s in SIZES if s >= low]))


def _conv_flops(cfg: dict[str, Any]) -> float:
    groups = cfg.get("groups", 1) if cfg["type"] != "dwconv" else cfg["cin"]
    out = cfg["h"] // cfg["stride"]
    return 2.0 * cfg["cout"] * out * out * cfg["cin"] // groups * cfg["k"] ** 2


def _sample_one(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    h = _size(rng, 2)
    if kind == "conv":
        first = rng.random() < 0.05
        cin = 3 if first else _channels(rng)
        k = int(rng.choice([1, 1, 3, 3, 3, 5, 7]))
        cfg = {"cin": cin, "cout": _channels(rng), "k": k, "stride": int(rng.choice([1, 1, 1, 2])), "h": h,
               "act": str(rng.choice(CONV_ACTS))}
        cfg["sum"] = int(cfg["stride"] == 1 and rng.random() < 0.25)
        if cfg["sum"]:
            cfg["cout"] = cfg["cin"] = max(cin, 8)
    elif kind == "dwconv":
        c = _channels(rng)
        cfg = {"cin": c, "cout": c, "k": int(rng.choice([3, 3, 5, 7])), "stride": int(rng.choice([1, 1, 2])), "h": h,
               "act": str(rng.choice(CONV_ACTS))}
    elif kind == "gconv":
        groups = int(rng.choice([2, 4, 8]))
        c = max(groups * 8, _channels(rng) // groups * groups)
        cfg = {"cin": c, "cout": c, "groups": groups, "k": int(rng.choice([1, 3])), "stride": int(rng.choice([1, 2])),
               "h": h, "act": "Relu"}
    elif kind == "pool":
        cfg = {"c": _channels(rng), "h": h, "k": int(rng.choice([2, 3])), "stride": int(rng.choice([1, 2, 2])),
               "max": int(rng.random() < 0.7)}
    elif kind == "globalpool":
        cfg = {"c": _channels(rng), "h": h}
    elif kind == "gemm":
        cin = int(rng.choice([64, 128, 256, 512, 1024, 1280, 2048, 4096, 8192]))
        cout = int(rng.choice([10, 100, 256, 512, 1000, 1024, 4096]))
        cfg = {"cin": cin, "cout": min(cout, MAX_WEIGHTS // cin), "act": str(rng.choice(["", "Relu"]))}
    elif kind == "eltwise":
        cfg = {"c": _channels(rng), "h": h, "op": str(rng.choice(["Add", "Mul"])), "broadcast": int(rng.random() < 0.5)}
    elif kind == "act":
        cfg = {"c": _channels(rng), "h": h, "op": str(rng.choice(ELTWISE_ACTS))}
    elif kind == "concat":
        cfg = {"c": _channels(rng, 512), "h": h, "inputs": int(rng.choice([2, 2, 3, 4]))}
    elif kind == "split":
        cfg = {"c": 2 * _channels(rng, 512), "h": h}
    elif kind == "shuffle":
        cfg = {"c": 2 * _channels(rng, 512), "h": h, "transpose": int(rng.random() < 0.6)}
    elif kind == "softmax":
        cfg = {"n": int(rng.choice(SOFTMAX_SIZES))}
    elif kind == "resize":
        cfg = {"c": _channels(rng, 512), "h": _size(rng, 2) if h > 56 else h, "linear": int(rng.random() < 0.5)}
    elif kind == "norm":
        cfg = {"c": _channels(rng), "h": h}
    else:
        raise ValueError(f"unknown kernel type {kind!r}")
    cfg["type"] = kind
    return _bounded(cfg)


def _bounded(cfg: dict[str, Any]) -> dict[str, Any]:
    """Halve the feature map until the kernel fits :data:`MAX_FLOPS` (and its tensors 64 MB); a conv's
    kernel size, then its output channels, shrink until its weights fit :data:`MAX_WEIGHTS`."""
    if cfg["type"] == "conv":
        while cfg["cin"] * cfg["cout"] * cfg["k"] ** 2 > MAX_WEIGHTS and cfg["k"] > 1:
            cfg["k"] -= 2
        while cfg["cin"] * cfg["cout"] * cfg["k"] ** 2 > MAX_WEIGHTS and not cfg.get("sum"):
            cfg["cout"] //= 2
        while cfg["cin"] * cfg["cout"] * cfg["k"] ** 2 > MAX_WEIGHTS:
            cfg["cin"] = cfg["cout"] = cfg["cin"] // 2
    for _ in range(8):
        if cfg["type"] in ("conv", "dwconv", "gconv"):
            big = _conv_flops(cfg) > MAX_FLOPS
        else:
            big = cfg.get("c", 1) * cfg.get("h", 1) ** 2 * cfg.get("inputs", 1) > 16e6
        if not big or cfg.get("h", 1) <= 2:
            break
        cfg["h"] = max(2, cfg["h"] // 2)
    return cfg


def sample(kind: str, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """``n`` distinct configurations of kernel type ``kind`` (a duplicate draw is dropped, not redrawn)."""
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(n):
        cfg = _sample_one(kind, rng)
        seen.setdefault(signature(cfg), cfg)
    return list(seen.values())


def refine(configs: list[dict[str, Any]], n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """``n`` configurations near ``configs`` (one size feature moved one step of the prior's grid; every
    sampled type has one)."""
    out = []
    for i in range(n):
        cfg = dict(configs[i % len(configs)])
        key = rng.choice([k for k in ("h", "cin", "cout", "c", "n") if k in cfg])
        grid = {"h": SIZES, "n": SOFTMAX_SIZES}.get(key, CHANNELS)
        pos = int(np.searchsorted(grid, cfg[key]))
        cfg[key] = int(grid[int(np.clip(pos + rng.choice([-1, 1]), 0, len(grid) - 1))])
        if cfg["type"] == "dwconv" or (cfg["type"] == "conv" and cfg.get("sum")):
            cfg["cin"] = cfg["cout"] = cfg[key] if key in ("cin", "cout") else cfg["cin"]
        if cfg["type"] == "gconv":
            cfg["cin"] = cfg["cout"] = max(cfg["groups"] * 8, cfg[key] // cfg["groups"] * cfg["groups"]) \
                if key in ("cin", "cout") else cfg["cin"]
        out.append(_bounded(cfg))
    return out


def signature(cfg: dict[str, Any]) -> str:
    """The store signature of a kernel configuration."""
    return "kernel:" + json.dumps(cfg, sort_keys=True, separators=(",", ":"))


def parse_signature(sig: str) -> dict[str, Any]:
    """The configuration a :func:`signature` names."""
    return json.loads(sig[len("kernel:"):])


def _conv(g: GraphBuilder, cfg: dict[str, Any]) -> str:
    groups = {"dwconv": cfg["cin"], "gconv": cfg.get("groups", 1)}.get(cfg["type"], 1)
    y = g.conv("x", cfg["cout"], cfg["k"], cfg["stride"], groups)
    if cfg.get("sum"):
        y = g.op("Add", [y, "x"], g.shapes[y])
    if cfg.get("act"):
        y = _activation(g, y, cfg["act"])
    return y


def _activation(g: GraphBuilder, x: str, op: str) -> str:
    if op == "Swish":
        return g.op("Mul", [x, g.op("Sigmoid", [x], g.shapes[x])], g.shapes[x])
    return g.act(x, op)


_BUILDERS: dict[str, Callable[[GraphBuilder, dict[str, Any]], str]] = {
    "conv": _conv, "dwconv": _conv, "gconv": _conv,
    "pool": lambda g, c: g.pool("x", "MaxPool" if c["max"] else "AveragePool", c["k"], c["stride"]),
    "globalpool": lambda g, c: g.op("GlobalAveragePool", ["x"], (1, c["c"], 1, 1)),
    "act": lambda g, c: _activation(g, "x", c["op"]),
    "norm": lambda g, c: g.batchnorm("x"),
}


def _input_shape(cfg: dict[str, Any]) -> tuple[int, ...]:
    kind = cfg["type"]
    if kind == "gemm":
        return (1, cfg["cin"])
    if kind == "softmax":
        return (1, cfg["n"])
    if kind == "shuffle":
        return (1, 2, cfg["c"] // 2, cfg["h"], cfg["h"])
    c = cfg.get("cin", cfg.get("c"))
    return (1, c, cfg["h"], cfg["h"])


def model(cfg: dict[str, Any]) -> onnx.ModelProto:
    """The ONNX model running one kernel of configuration ``cfg`` (weights seeded, bytes deterministic)."""
    kind = cfg["type"]
    g = GraphBuilder(_input_shape(cfg), seed=0)
    shape = g.shapes["x"]
    if kind in _BUILDERS:
        y = _BUILDERS[kind](g, cfg)
    elif kind == "gemm":
        w, b = g.weight(g.rng.standard_normal((cfg["cout"], cfg["cin"])) * 0.01), g.weight(np.zeros(cfg["cout"]))
        y = g.op("Gemm", ["x", w, b], (1, cfg["cout"]), transB=1)
        if cfg["act"]:
            y = g.act(y, cfg["act"])
    elif kind == "eltwise":
        other = g.weight(g.rng.standard_normal((1, cfg["c"], 1, 1) if cfg["broadcast"] else shape))
        y = g.op(cfg["op"], ["x", other], shape)
    elif kind == "concat":
        y = g.op("Concat", ["x"] * cfg["inputs"], (1, cfg["c"] * cfg["inputs"], cfg["h"], cfg["h"]), axis=1)
    elif kind == "split":
        half = (1, cfg["c"] // 2, cfg["h"], cfg["h"])
        a, b = g.op("Split", ["x", g.weight(np.array([cfg["c"] // 2] * 2))], half, outputs=2, axis=1)
        return g.model([a, b])
    elif kind == "shuffle":  # one step of a channel shuffle: the transpose, or a reshape
        n, g2, c, h, w = shape
        if cfg["transpose"]:
            y = g.op("Transpose", ["x"], (n, c, g2, h, w), perm=[0, 2, 1, 3, 4])
        else:
            y = g.op("Reshape", ["x", g.weight(np.array([n, g2 * c, h, w]))], (n, g2 * c, h, w))
    elif kind == "softmax":
        y = g.op("Softmax", ["x"], shape, axis=-1)
    elif kind == "resize":
        scales = g.weight(np.array([1, 1, 2, 2], dtype=np.float32))
        y = g.op("Resize", ["x", "", scales], (1, cfg["c"], 2 * cfg["h"], 2 * cfg["h"]),
                 mode="linear" if cfg["linear"] else "nearest")
    else:
        raise ValueError(f"unknown kernel type {kind!r}")
    return g.model([y])
