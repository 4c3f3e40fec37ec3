"""PyTorch modules of LUT blocks (with BatchNorm, for training) and the networks made of them.

Mirrors :mod:`lut.builders` op by op: the ONNX builders write the same blocks as
inference graphs (BatchNorm folded). torch is imported here only.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lut.builders import SE_REDUCTION, make_divisible
from lut.signature import Signature

_ACT = {"relu": nn.ReLU, "h_swish": nn.Hardswish}


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
            act: str | None = None) -> nn.Sequential:
    """Conv (no bias) + BatchNorm [+ activation]."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act:
        layers.append(_ACT[act]())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """OFA squeeze-and-excite: pool, 1x1 reduce + ReLU, 1x1 expand + h-sigmoid, scale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        reduced = make_divisible(channels // SE_REDUCTION)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, reduced, 1), nn.ReLU(),
                                  nn.Conv2d(reduced, channels, 1), nn.Hardsigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class MBConv(nn.Module):
    """Inverted residual block of an ``expanded_conv`` signature."""

    def __init__(self, sig: Signature) -> None:
        super().__init__()
        cin, cout, mid = sig.input[2], sig.output[2], sig.expand
        layers: list[nn.Module] = [] if mid == cin else [conv_bn(cin, mid, 1, act=sig.act)]
        layers.append(conv_bn(mid, mid, sig.kernel, sig.stride, groups=mid, act=sig.act))
        if sig.se:
            layers.append(SqueezeExcite(mid))
        layers.append(conv_bn(mid, cout, 1))
        self.body = nn.Sequential(*layers)
        self.skip = bool(sig.idskip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.skip else y


class ResNetBasicBlock(nn.Module):
    """NAS-Bench-201 reduction block: two ReLU-Conv-BN (stride 2, 1) plus avg-pool + 1x1 shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.ReLU(), conv_bn(cin, cout, 3, 2))
        self.b = nn.Sequential(nn.ReLU(), conv_bn(cout, cout, 3))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.b(self.a(x))


def block(sig: Signature) -> nn.Module:
    """The PyTorch module of one block signature (the ops of :data:`lut.builders.BLOCKS`)."""
    cin, cout = sig.input[-1], sig.output[-1]
    op = sig.op
    if op == "Conv":
        return conv_bn(cin, cout, sig.kernel or 3, round(sig.input[0] / sig.output[0]), act="h_swish")
    if op == "expanded_conv":
        return MBConv(sig)
    if op == "Conv_1":
        return conv_bn(cin, cout, 1, act="h_swish")
    if op == "AvgPool2D":
        return nn.AdaptiveAvgPool2d(1)
    if op == "Conv_2":
        return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.Hardswish())
    if op == "Logits":
        return nn.Sequential(nn.Flatten(), nn.Linear(cin, cout))
    if op in ("nor_conv_1x1", "nor_conv_3x3"):
        return nn.Sequential(nn.ReLU(), conv_bn(cin, cout, 1 if op.endswith("1x1") else 3))
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    if op in ("skip_connect", "Identity"):
        return nn.Identity()
    if op == "nb201_stem":
        return conv_bn(cin, cout, 3)
    if op == "nb201_reduction":
        return ResNetBasicBlock(cin, cout)
    if op == "nb201_head":
        return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(cin, cout))
    raise ValueError(f"no PyTorch module for op {op!r}")


def mbv3_network(blocks: Sequence[Signature]) -> nn.Sequential:
    """A chain network of the given blocks (MobileNetV3 style)."""
    return nn.Sequential(*[block(sig) for sig in blocks])


class NasBench201Cell(nn.Module):
    """A NAS-Bench-201 cell: node j sums op(node i) over its incoming edges; 'none' edges are absent."""

    def __init__(self, ops: Sequence[str], edges: Sequence[tuple[int, int]], sigs: dict[str, Signature]) -> None:
        super().__init__()
        self.edges = [(i, j) for (i, j), op in zip(edges, ops) if op != "none"]
        self.ops = nn.ModuleList([block(sigs[op]) for op in ops if op != "none"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, 4):
            terms = [op(nodes[i]) for (i, dst), op in zip(self.edges, self.ops) if dst == j]
            nodes.append(sum(terms[1:], terms[0]) if terms else x * 0.0)
        return nodes[3]
