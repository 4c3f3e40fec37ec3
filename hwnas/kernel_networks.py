"""Context networks: random CNNs whose per-node profiles give kernel times as a network runs them.

A kernel measured alone is not the kernel inside a network: there its weights arrive cold from
memory when the network's weights outgrow the caches, and its output goes to the runtime's reused
buffers instead of a fresh array (``bench/results/kernel_context.json``: a ResNet's big convs run
1.9× slower in their network, a MnasNet's small ones a little faster). So ``costmodel fit
--onnx-kernels`` also measures networks of this module and trains on the kernels inside them
(:func:`hwnas.kernel_fit.training_rows`).

A context network is no published architecture: a stem, then 3-5 stages whose block kind is drawn
independently per stage from the building blocks CNNs are made of (plain conv, basic and bottleneck
residual, inverted residual with optional squeeze-and-excite, fire, channel-split shuffle unit, dense
layers with a transition, four-branch inception, VGG-style conv + max pool), channels growing by
stage, activations and kernel sizes drawn per network, then a classifier head. Resolutions
:data:`RESOLUTIONS`; a draw above :data:`MAX_MACS` gets a smaller resolution. The evaluation corpus
(``bench/corpus.py``) is never used here.

A configuration is a JSON-able dict; :func:`model` builds its ONNX model (weights seeded, bytes
deterministic), :func:`signature` is its store signature.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from hwnas.kernel_graphs import GraphBuilder

RESOLUTIONS = (64, 96, 128, 160, 192, 224)
MAX_MACS = 400e6
"""Networks above this many multiply-accumulates get a smaller resolution (keeps device time bounded)."""
WEIGHTS = (5e4, 5e7)
"""Each network's widths are scaled towards a weight count drawn log-uniformly from this range, capped at
:data:`MAX_WEIGHTS` (files of up to 128 MB): the weights of real CNNs (a MobileNet's million to a
ResNet-50's 25 million), since whether a kernel's weights stay in cache depends on them."""
MAX_WEIGHTS = 3.2e7
BLOCKS = ("plain", "basic", "bottleneck", "inverted", "fire", "shuffle", "dense", "inception", "vgg")
ACTS = ("Relu", "Relu", "Clip", "HardSwish", "Swish")
PREFIX = "kernelnet:"


def sample(rng: np.random.Generator) -> dict[str, Any]:
    """One context-network configuration."""
    stages = []
    width = int(rng.choice([8, 16, 24, 32, 48, 64]))
    for _ in range(int(rng.integers(3, 6))):
        width = int(min(1024, width * rng.choice([1.5, 2.0, 2.0, 2.5])) // 8 * 8)
        stages.append({"block": str(rng.choice(BLOCKS)), "depth": int(rng.integers(1, 4)), "width": width,
                       "k": int(rng.choice([3, 3, 5, 7])), "expand": int(rng.choice([3, 4, 6])),
                       "se": int(rng.random() < 0.4)})
    cfg = {"resolution": int(rng.choice(RESOLUTIONS)), "stem": int(rng.choice([8, 16, 24, 32, 64])),
           "stem_k": int(rng.choice([3, 3, 7])), "stem_pool": int(rng.random() < 0.4),
           "act": str(rng.choice(ACTS)), "bn": int(rng.random() < 0.7), "stages": stages,
           "head": str(rng.choice(["pool", "pool", "conv_pool", "fc"])), "classes": int(rng.choice([10, 100, 1000])),
           "softmax": int(rng.random() < 0.3), "seed": int(rng.integers(0, 2 ** 31)),
           "align": int(rng.choice([8, 8, 4, 2])), "stretch": round(float(rng.uniform(0.8, 1.25)), 2)}
    return _bounded(cfg, float(np.exp(rng.uniform(*np.log(WEIGHTS)))))


def _bounded(cfg: dict[str, Any], weights: float) -> dict[str, Any]:
    """Scale the stages' widths towards ``weights`` weights (at most :data:`MAX_WEIGHTS`; widths stay
    multiples of 8 in 8-2048), then lower the resolution until the multiply-accumulates fit
    :data:`MAX_MACS`, narrowing the stages where even the smallest resolution does not."""
    for _ in range(4):
        factor = np.sqrt(min(weights, MAX_WEIGHTS) / max(stats(cfg)["weights"], 1.0))
        if 0.8 < factor < 1.25:
            break
        for stage in cfg["stages"]:
            stage["width"] = int(np.clip(round(stage["width"] * factor / 8) * 8, 8, 2048))
    while stats(cfg)["weights"] > MAX_WEIGHTS:
        for stage in cfg["stages"]:
            stage["width"] = max(8, stage["width"] // 2 // 8 * 8)
    smaller = [r for r in RESOLUTIONS if r < cfg["resolution"]]
    while stats(cfg)["macs"] > MAX_MACS and smaller:
        cfg["resolution"] = smaller.pop()
    while stats(cfg)["macs"] > MAX_MACS and any(stage["width"] > 8 for stage in cfg["stages"]):
        for stage in cfg["stages"]:  # too wide even at the smallest resolution
            stage["width"] = max(8, int(stage["width"] * 0.8) // 8 * 8)
    return cfg


def sample_many(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` configurations from a seeded Generator (same seed, same list)."""
    rng = np.random.default_rng(seed)
    return [sample(rng) for _ in range(n)]


def signature(cfg: dict[str, Any]) -> str:
    """The store signature of a context network."""
    return PREFIX + json.dumps(cfg, sort_keys=True, separators=(",", ":"))


def parse_signature(sig: str) -> dict[str, Any]:
    """The configuration a :func:`signature` names."""
    return json.loads(sig[len(PREFIX):])


def model(cfg: dict[str, Any]) -> onnx.ModelProto:
    """The ONNX model of a context network (batch 1, NCHW image input)."""
    return _Net(cfg).build()[0]


def stats(cfg: dict[str, Any]) -> dict[str, float]:
    """Multiply-accumulates and weights of a context network (built without weight values)."""
    return _Net(cfg, _Shapes).build()[1]


class _Zeros:
    """Stands in for a Generator where only shapes matter."""

    def standard_normal(self, _size: Any = None) -> float:
        """Zero."""
        return 0.0

    def random(self, _size: Any = None) -> float:
        """Zero."""
        return 0.0


class _Shapes(GraphBuilder):
    """A GraphBuilder that keeps no weight values (counting only)."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0) -> None:
        super().__init__(shape, seed)
        self.rng = _Zeros()

    def weight(self, array: Any) -> str:
        """A weight's name, without its values."""
        return self._name("w")


class _Net:
    """Builds one configuration, counting MACs and weights as it goes."""

    def __init__(self, cfg: dict[str, Any], builder: type[GraphBuilder] = GraphBuilder) -> None:
        self.cfg = cfg
        r = cfg["resolution"]
        self.g = builder((1, 3, r, r), seed=cfg["seed"])
        self.macs = 0.0
        self.weights = 0.0

    def width(self, channels: float) -> int:
        """A configured channel count as built: times the network's ``stretch``, then :meth:`align`."""
        return self.align(channels * self.cfg.get("stretch", 1.0))

    def align(self, channels: float) -> int:
        """``channels`` rounded down to the network's ``align`` multiple (at least one multiple): real
        networks are not all multiples of 8 (ShuffleNetV2's 58, 116, 232), and a runtime's blocked layout
        treats the others differently."""
        a = self.cfg.get("align", 8)
        return max(a, int(channels) // a * a)

    def conv(self, x: str, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: str | None = "net") -> str:
        """Conv (+ BN when the network has them) (+ activation: the network's unless given)."""
        cin = self.g.shapes[x][1]
        y = self.g.conv(x, cout, k, stride, groups, bias=not self.cfg["bn"])
        n, c, h, w = self.g.shapes[y]
        self.macs += c * h * w * cin // groups * k * k
        self.weights += c * cin // groups * k * k
        if self.cfg["bn"]:
            y = self.g.batchnorm(y)
        return self.act(y, self.cfg["act"] if act == "net" else act)

    def act(self, x: str, op: str | None) -> str:
        """An activation (Swish as ``x * sigmoid(x)``, as exporters write it)."""
        if not op:
            return x
        if op == "Swish":
            return self.g.op("Mul", [x, self.g.op("Sigmoid", [x], self.g.shapes[x])], self.g.shapes[x])
        return self.g.act(x, op)

    def add(self, a: str, b: str) -> str:
        """Element-wise sum of two same-shaped tensors."""
        return self.g.op("Add", [a, b], self.g.shapes[a])

    def concat(self, parts: list[str]) -> str:
        """Channel concatenation."""
        n, _c, h, w = self.g.shapes[parts[0]]
        return self.g.op("Concat", parts, (n, sum(self.g.shapes[p][1] for p in parts), h, w), axis=1)

    def pool(self, x: str, op: str, k: int, stride: int) -> str:
        """Max or average pool."""
        return self.g.pool(x, op, k, stride)

    def se(self, x: str) -> str:
        """Squeeze-and-excite: global pool, reduce and expand 1x1 convs, a hard-sigmoid gate, the product."""
        c = self.g.shapes[x][1]
        s = self.g.op("GlobalAveragePool", [x], (1, c, 1, 1))
        s = self.conv(s, self.align(c // 4), act="Relu")
        s = self.conv(s, c, act="HardSigmoid")
        return self.g.op("Mul", [x, s], self.g.shapes[x])

    def block(self, kind: str, x: str, stage: dict[str, Any], stride: int) -> str:
        """One block of ``kind`` with output width ``stage['width']``."""
        return _BLOCKS[kind](self, x, stage, stride)

    def build(self) -> tuple[onnx.ModelProto, dict[str, float]]:
        """The model and its MACs and weights."""
        cfg, g = self.cfg, self.g
        x = self.conv("x", self.width(cfg["stem"]), cfg["stem_k"], 2)
        if cfg["stem_pool"]:
            x = self.pool(x, "MaxPool", 3, 2)
        for stage in cfg["stages"]:
            for d in range(stage["depth"]):
                stride = 2 if d == 0 and g.shapes[x][2] > 4 else 1
                x = self.block(stage["block"], x, stage, stride)
        c = g.shapes[x][1]
        if cfg["head"] == "conv_pool":
            x = self.conv(x, min(1280, self.align(4 * c)))
            c = g.shapes[x][1]
        if cfg["head"] == "fc":
            if g.shapes[x][2] > 2:
                x = self.pool(x, "MaxPool", 2, 2)
            numel = int(np.prod(g.shapes[x]))
            x = g.op("Flatten", [x], (1, numel), axis=1)
            x = self.gemm(x, 512, "Relu")
        else:
            x = g.op("GlobalAveragePool", [x], (1, c, 1, 1))
            x = g.op("Flatten", [x], (1, c), axis=1)
        x = self.gemm(x, cfg["classes"], None)
        if cfg["softmax"]:
            x = g.op("Softmax", [x], g.shapes[x], axis=-1)
        return g.model([x]), {"macs": self.macs, "weights": self.weights}

    def gemm(self, x: str, cout: int, act: str | None) -> str:
        """A fully connected layer (+ activation)."""
        cin = self.g.shapes[x][1]
        w = self.g.weight(self.g.rng.standard_normal((cout, cin)) * 0.01)
        b = self.g.weight(np.zeros(cout))
        self.macs += cin * cout
        self.weights += cin * cout
        return self.act(self.g.op("Gemm", [x, w, b], (1, cout), transB=1), act)


def _shortcut(net: _Net, x: str, cout: int, stride: int) -> str:
    if stride == 1 and net.g.shapes[x][1] == cout:
        return x
    return net.conv(x, cout, 1, stride, act=None)


def _plain(net: _Net, x: str, s: dict[str, Any], stride: int) -> str:
    return net.conv(x, net.width(s["width"]), s["k"], stride)


def _basic(net: _Net, x: str, s: dict[str, Any], stride: int) -> str:
    width = net.width(s["width"])
    y = net.conv(net.conv(x, width, 3, stride), width, 3, act=None)
    return net.act(net.add(y, _shortcut(net, x, width, stride)), net.cfg["act"])


def _bottleneck(net: _Net, x: str, s: dict[str, Any], stride: int) -> str:
    mid, width = net.width(s["width"] // 4), net.width(s["width"])
    y = net.conv(net.conv(net.conv(x, mid), mid, 3, stride), width, act=None)
    return net.act(net.add(y, _shortcut(net, x, width, stride)), net.cfg["act"])


def _inverted(net: _Net, x: str, s: dict[str, Any], stride: int) -> str:
    c = net.g.shapes[x][1]
    y = net.conv(x, c * s["expand"]) if s["expand"] > 1 else x
    y = net.conv(y, net.g.shapes[y][1], s["k"], stride, groups=net.g.shapes[y][1])
    if s["se"]:
        y = net.se(y)
    y = net.conv(y, net.width(s["width"]), act=None)
    return net.add(y, x) if stride == 1 and c == net.g.shapes[y][1] else y


def _fire(net: _Net, x: str, s: dict[str, Any], stride: int) -> str:
    if stride == 2:
        x = net.pool(x, "MaxPool", 3, 2)
    squeeze = net.conv(x, net.width(s["width"] // 8), act="Relu")
    half = net.width(s["width"] // 2)
    return net.concat([net.conv(squeeze, half, act="Relu"), net.conv(squeeze, half, 3, act="Relu")])


def _channel_shuffle(net: _Net, x: str) -> str:
    g = net.g
    n, c, h, w = g.shapes[x]
    y = g.op("Reshape", [x, g.weight(np.array([n, 2, c // 2, h, w]))], (n, 2, c // 2, h, w))
    y = g.op("Transpose", [y], (n, c // 2, 2, h, w), perm=[0, 2, 1, 3, 4])
    return g.op("Reshape", [y, g.weight(np.array([n, c, h, w]))], (n, c, h, w))


def _shuffle(net: _Net, x: str, s: dict[str, Any], stride: int) -> str:
    g = net.g
    half = net.width(s["width"] // 2)

    def branch(t: str) -> str:
        t = net.conv(t, half, act="Relu")
        t = net.conv(t, half, 3, stride, groups=half, act=None)
        return net.conv(t, half, act="Relu")

    n, c, h, w = g.shapes[x]
    if stride == 1 and c == 2 * half:
        left, right = g.op("Split", [x, g.weight(np.array([half, half]))], (n, half, h, w), outputs=2, axis=1)
        y = net.concat([left, branch(right)])
    else:
        left = net.conv(net.conv(x, c, 3, stride, groups=c, act=None), half, act="Relu")
        y = net.concat([left, branch(x)])
    return _channel_shuffle(net, y)


def _dense(net: _Net, x: str, s: dict[str, Any], stride: int) -> str:
    growth = net.width(s["width"] // 8)
    if stride == 2:  # transition: BN, activation, 1x1 conv, average pool
        x = net.act(net.g.batchnorm(x), "Relu")
        x = net.pool(net.conv(x, net.align(net.g.shapes[x][1] // 2), act=None), "AveragePool", 2, 2)
    for _ in range(2):
        y = net.conv(net.act(net.g.batchnorm(x), "Relu"), 4 * growth, act="Relu")
        x = net.concat([x, net.conv(y, growth, 3, act=None)])
    return x


def _inception(net: _Net, x: str, s: dict[str, Any], stride: int) -> str:
    if stride == 2:
        x = net.pool(x, "MaxPool", 3, 2)
    q = net.width(s["width"] // 4)
    b1 = net.conv(x, q)
    b2 = net.conv(net.conv(x, net.align(q // 2)), q, 3)
    b3 = net.conv(net.conv(x, net.align(q // 4)), q, 5 if s["k"] >= 5 else 3)
    b4 = net.conv(net.pool(x, "MaxPool", 3, 1), q)
    return net.concat([b1, b2, b3, b4])


def _vgg(net: _Net, x: str, s: dict[str, Any], stride: int) -> str:
    y = net.conv(x, net.width(s["width"]), 3)
    return net.pool(y, "MaxPool", 2, 2) if stride == 2 else y


_BLOCKS: dict[str, Callable[[_Net, str, dict[str, Any], int], str]] = {
    "plain": _plain, "basic": _basic, "bottleneck": _bottleneck, "inverted": _inverted, "fire": _fire,
    "shuffle": _shuffle, "dense": _dense, "inception": _inception, "vgg": _vgg}
