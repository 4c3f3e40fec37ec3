"""Small, parameterised torch definitions of the CNN families of the evaluation corpus.

Each family is a function ``config -> torch.nn.Module`` and a sampler
``rng -> config`` (plain JSON-able dicts). They follow the published architectures in
structure (block types, branching, where down-sampling happens) but are written here
from those descriptions, kept small, and parameterised in width, depth, kernel size and
resolution so that one family yields many different networks. The predictor is never
trained on models built here (bench/corpus.py builds the evaluation corpus from them).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


def _ch(c: float, divisor: int = 8) -> int:
    """Channels rounded to a multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, int(c + divisor / 2) // divisor * divisor)


def conv_bn(cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: type | None = nn.ReLU) -> nn.Sequential:
    """Conv (same padding) + BatchNorm + optional activation."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class Classifier(nn.Module):
    """Global average pool, flatten, fully connected."""

    def __init__(self, cin: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


# -- ResNet --------------------------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """Two 3x3 convs and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, s: int, k: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, k, s), conv_bn(cout, cout, k, 1, act=None))
        self.short = conv_bn(cin, cout, 1, s, act=None) if s != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.short(x))


class Bottleneck(nn.Module):
    """1x1 reduce, kxk, 1x1 expand (x4) and a shortcut."""

    def __init__(self, cin: int, cout: int, s: int, k: int) -> None:
        super().__init__()
        mid = max(8, cout // 4)
        self.body = nn.Sequential(conv_bn(cin, mid, 1), conv_bn(mid, mid, k, s), conv_bn(mid, cout, 1, act=None))
        self.short = conv_bn(cin, cout, 1, s, act=None) if s != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.short(x))


def resnet(cfg: dict[str, Any]) -> nn.Module:
    """ResNet: stem conv + max pool, four stages of basic or bottleneck blocks, classifier."""
    block = Bottleneck if cfg["bottleneck"] else BasicBlock
    w = cfg["width"]
    layers: list[nn.Module] = [conv_bn(3, w, 7, 2), nn.MaxPool2d(3, 2, 1)]
    cin = w
    for i, depth in enumerate(cfg["depths"]):
        cout = w * 2 ** i * (4 if cfg["bottleneck"] else 1)
        for j in range(depth):
            layers.append(block(cin, cout, 2 if j == 0 and i > 0 else 1, cfg["k"]))
            cin = cout
    return nn.Sequential(*layers, Classifier(cin, 1000))


def sample_resnet(rng: np.random.Generator) -> dict[str, Any]:
    """A ResNet configuration."""
    bottleneck = bool(rng.random() < 0.4)
    return {"bottleneck": bottleneck, "width": int(rng.choice([16, 24, 32, 48, 64])),
            "depths": [int(d) for d in rng.integers(1, 4, size=4)], "k": int(rng.choice([3, 3, 5]))}


# -- VGG -----------------------------------------------------------------------------------------------------------

def vgg(cfg: dict[str, Any]) -> nn.Module:
    """VGG: stages of kxk convs (with or without BN) separated by 2x2 max pools."""
    layers: list[nn.Module] = []
    cin = 3
    for i, depth in enumerate(cfg["depths"]):
        cout = min(cfg["width"] * 2 ** i, cfg["width"] * 8)
        for _ in range(depth):
            if cfg["bn"]:
                layers.append(conv_bn(cin, cout, cfg["k"]))
            else:
                layers += [nn.Conv2d(cin, cout, cfg["k"], 1, cfg["k"] // 2), nn.ReLU()]
            cin = cout
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(cin * (cfg["resolution"] // 2 ** len(cfg["depths"])) ** 2,
                                                          cfg["fc"]), nn.ReLU(), nn.Linear(cfg["fc"], 1000))


def sample_vgg(rng: np.random.Generator) -> dict[str, Any]:
    """A VGG configuration (resolution is part of it: the first FC depends on it)."""
    return {"width": int(rng.choice([8, 16, 24, 32])), "depths": [int(d) for d in rng.integers(1, 4, size=5)],
            "bn": bool(rng.random() < 0.5), "k": 3, "fc": int(rng.choice([256, 512, 1024]))}


# -- MobileNet V1 / V2 / V3, MnasNet / ProxylessNAS, EfficientNet ----------------------------------------------------

def mobilenet_v1(cfg: dict[str, Any]) -> nn.Module:
    """MobileNetV1: depthwise-separable convs (dw kxk + pw 1x1), width multiplier."""
    plan = ([(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * cfg["mid"]
            + [(1024, 2), (1024, 1)])
    m = cfg["alpha"]
    layers: list[nn.Module] = [conv_bn(3, _ch(32 * m), 3, 2)]
    cin = _ch(32 * m)
    for c, s in plan:
        cout = _ch(c * m)
        layers += [conv_bn(cin, cin, cfg["k"], s, groups=cin), conv_bn(cin, cout, 1)]
        cin = cout
    return nn.Sequential(*layers, Classifier(cin, 1000))


def sample_mobilenet_v1(rng: np.random.Generator) -> dict[str, Any]:
    """A MobileNetV1 configuration."""
    return {"alpha": float(rng.choice([0.25, 0.5, 0.75, 1.0])), "mid": int(rng.integers(1, 6)),
            "k": int(rng.choice([3, 3, 5]))}


class SqueezeExcite(nn.Module):
    """Global average pool, FC (1x1 conv) reduce + ReLU/SiLU, FC expand + gate, channel-wise multiply."""

    def __init__(self, c: int, ratio: float, gate: type = nn.Hardsigmoid, act: type = nn.ReLU) -> None:
        super().__init__()
        mid = _ch(c * ratio)
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, mid, 1), act(), nn.Conv2d(mid, c, 1), gate())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise, optional squeeze-excite, 1x1 project, residual."""

    def __init__(self, cin: int, cout: int, k: int, s: int, expand: float, act: type, se: float = 0.0,
                 gate: type = nn.Hardsigmoid, se_act: type = nn.ReLU) -> None:
        super().__init__()
        mid = _ch(cin * expand)
        layers: list[nn.Module] = [conv_bn(cin, mid, 1, act=act)] if expand != 1 else []
        layers.append(conv_bn(mid, mid, k, s, groups=mid, act=act))
        if se:
            layers.append(SqueezeExcite(mid, se / expand, gate, se_act))
        layers.append(conv_bn(mid, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = s == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def _mbconv_net(stem: int, stages: list[tuple[int, int, int, int, float, float]], act: type, head: int,
                gate: type = nn.Hardsigmoid, se_act: type = nn.ReLU, head_act: type | None = None) -> nn.Module:
    """A stem conv, MBConv stages (cout, repeats, k, stride, expand, se ratio), a 1x1 head conv, classifier."""
    layers: list[nn.Module] = [conv_bn(3, stem, 3, 2, act=act)]
    cin = stem
    for cout, repeats, k, s, expand, se in stages:
        for j in range(repeats):
            layers.append(MBConv(cin, cout, k, s if j == 0 else 1, expand, act, se, gate, se_act))
            cin = cout
    layers.append(conv_bn(cin, head, 1, act=head_act or act))
    return nn.Sequential(*layers, Classifier(head, 1000))


def mobilenet_v2(cfg: dict[str, Any]) -> nn.Module:
    """MobileNetV2: inverted residuals with ReLU6, expansion t, width multiplier."""
    m, t = cfg["alpha"], cfg["expand"]
    base = [(16, 1, 1, 1), (24, 2, 2, t), (32, 3, 2, t), (64, 4, 2, t), (96, 3, 1, t), (160, 3, 2, t), (320, 1, 1, t)]
    stages = [(_ch(c * m), max(1, n + cfg["depth_delta"]) if i else 1, cfg["k"], s, e, 0.0)
              for i, (c, n, s, e) in enumerate(base)]
    return _mbconv_net(_ch(32 * m), stages, nn.ReLU6, _ch(1280 * max(1.0, m)))


def sample_mobilenet_v2(rng: np.random.Generator) -> dict[str, Any]:
    """A MobileNetV2 configuration."""
    return {"alpha": float(rng.choice([0.35, 0.5, 0.75, 1.0])), "expand": int(rng.choice([3, 4, 6])),
            "depth_delta": int(rng.integers(-1, 2)), "k": int(rng.choice([3, 3, 5]))}


def mobilenet_v3(cfg: dict[str, Any]) -> nn.Module:
    """MobileNetV3 (large-like): ReLU early, hard-swish late, squeeze-excite with hard-sigmoid."""
    m = cfg["alpha"]
    hs, relu = nn.Hardswish, nn.ReLU
    plan = [(16, 1, 3, 1, 1, 0, relu), (24, 2, 3, 2, 4, 0, relu), (40, 3, 5, 2, 3, 0.25 * 3, relu),
            (80, 4, 3, 2, 6, 0, hs), (112, 2, 3, 1, 6, 0.25 * 6, hs), (160, 3, 5, 2, 6, 0.25 * 6, hs)]
    layers: list[nn.Module] = [conv_bn(3, _ch(16 * m), 3, 2, act=hs)]
    cin = _ch(16 * m)
    for cout, n, k, s, e, se, act in plan:
        cout = _ch(cout * m)
        for j in range(max(1, n + cfg["depth_delta"])):
            kk = k if cfg["k"] == 0 else cfg["k"]
            layers.append(MBConv(cin, cout, kk, s if j == 0 else 1, e, act, se if cfg["se"] else 0.0))
            cin = cout
    head = _ch(960 * m)
    layers.append(conv_bn(cin, head, 1, act=hs))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Conv2d(head, 1280, 1), hs(), nn.Flatten(),
                         nn.Linear(1280, 1000))


def sample_mobilenet_v3(rng: np.random.Generator) -> dict[str, Any]:
    """A MobileNetV3 configuration (k 0: the published per-stage kernel sizes)."""
    return {"alpha": float(rng.choice([0.5, 0.75, 1.0, 1.25])), "depth_delta": int(rng.integers(-1, 2)),
            "k": int(rng.choice([0, 3, 5, 7])), "se": bool(rng.random() < 0.8)}


def mnasnet(cfg: dict[str, Any]) -> nn.Module:
    """MnasNet / ProxylessNAS: MBConv stages with searched kernel sizes and expansions, ReLU."""
    m = cfg["alpha"]
    stages = [(_ch(c * m), n, k, s, e, 0.0) for c, n, k, s, e in
              zip([16, 24, 40, 80, 96, 192, 320], cfg["repeats"], cfg["ks"], [1, 2, 2, 2, 1, 2, 1], cfg["expands"])]
    return _mbconv_net(_ch(32 * m), stages, nn.ReLU, 1280)


def sample_mnasnet(rng: np.random.Generator) -> dict[str, Any]:
    """A MnasNet/ProxylessNAS configuration (per-stage kernel size, expansion, repeats)."""
    return {"alpha": float(rng.choice([0.5, 0.75, 1.0])), "repeats": [1] + [int(r) for r in rng.integers(1, 5, 6)],
            "ks": [3] + [int(k) for k in rng.choice([3, 5, 7], 6)],
            "expands": [1] + [int(e) for e in rng.choice([3, 6], 6)]}


def efficientnet(cfg: dict[str, Any]) -> nn.Module:
    """EfficientNet: MBConv with squeeze-excite (sigmoid gate), SiLU (swish), compound width/depth scaling."""
    w, d = cfg["width"], cfg["depth"]
    base = [(16, 1, 3, 1, 1), (24, 2, 3, 2, 6), (40, 2, 5, 2, 6), (80, 3, 3, 2, 6), (112, 3, 5, 1, 6),
            (192, 4, 5, 2, 6), (320, 1, 3, 1, 6)]
    stages = [(_ch(c * w), max(1, int(np.ceil(n * d))), k, s, e, 0.25) for c, n, k, s, e in base]
    return _mbconv_net(_ch(32 * w), stages, nn.SiLU, _ch(1280 * w), gate=nn.Sigmoid, se_act=nn.SiLU)


def sample_efficientnet(rng: np.random.Generator) -> dict[str, Any]:
    """An EfficientNet configuration (B0-like, scaled)."""
    return {"width": float(rng.choice([0.5, 0.75, 1.0, 1.1])), "depth": float(rng.choice([0.5, 0.75, 1.0, 1.2]))}


# -- ShuffleNetV2 --------------------------------------------------------------------------------------------------

def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Reshape, transpose, reshape back: interleave the channels of ``groups`` groups."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2 unit: channel split (stride 1) or two branches (stride 2), concat, channel shuffle."""

    def __init__(self, cin: int, cout: int, s: int, k: int) -> None:
        super().__init__()
        self.s = s
        half = cout // 2
        bin_ = cin if s == 2 else cin // 2
        self.branch = nn.Sequential(conv_bn(bin_, half, 1), conv_bn(half, half, k, s, groups=half, act=None),
                                    conv_bn(half, half, 1))
        self.short = (nn.Sequential(conv_bn(cin, cin, k, s, groups=cin, act=None), conv_bn(cin, half, 1))
                      if s == 2 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.short is None:
            a, b = x.chunk(2, dim=1)
            out = torch.cat([a, self.branch(b)], 1)
        else:
            out = torch.cat([self.short(x), self.branch(x)], 1)
        return channel_shuffle(out, 2)


def shufflenet_v2(cfg: dict[str, Any]) -> nn.Module:
    """ShuffleNetV2: stem conv + max pool, three stages of shuffle units, 1x1 head conv, classifier."""
    widths = {0.5: [48, 96, 192], 1.0: [116, 232, 464], 1.5: [176, 352, 704]}[cfg["alpha"]]
    layers: list[nn.Module] = [conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)]
    cin = 24
    for cout, n in zip(widths, cfg["repeats"]):
        for j in range(n):
            layers.append(ShuffleUnit(cin, cout, 2 if j == 0 else 1, cfg["k"]))
            cin = cout
    layers.append(conv_bn(cin, 1024, 1))
    return nn.Sequential(*layers, Classifier(1024, 1000))


def sample_shufflenet_v2(rng: np.random.Generator) -> dict[str, Any]:
    """A ShuffleNetV2 configuration."""
    return {"alpha": float(rng.choice([0.5, 1.0, 1.5])), "repeats": [int(r) for r in rng.integers(2, 7, 3)],
            "k": int(rng.choice([3, 3, 5]))}


# -- SqueezeNet ----------------------------------------------------------------------------------------------------

class Fire(nn.Module):
    """Squeeze 1x1, then expand 1x1 and 3x3 in parallel, concatenated."""

    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat([self.e1(s), self.e3(s)], 1)


def squeezenet(cfg: dict[str, Any]) -> nn.Module:
    """SqueezeNet 1.1-like: stem conv, fire modules between max pools, 1x1 conv classifier, global pool."""
    b = cfg["base"]
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True)]
    cin = 64
    for stage in range(3):
        for _ in range(cfg["fires"][stage]):
            sq = _ch(b * 2 ** stage * cfg["sr"] * 8)
            ex = b * 2 ** stage * 4
            layers.append(Fire(cin, sq, ex))
            cin = 2 * ex
        if stage < 2:
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
    return nn.Sequential(*layers, nn.Dropout(0.5), nn.Conv2d(cin, 1000, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten())


def sample_squeezenet(rng: np.random.Generator) -> dict[str, Any]:
    """A SqueezeNet configuration (base expand width, squeeze ratio, fire modules per stage)."""
    return {"base": int(rng.choice([8, 16, 24, 32])), "sr": float(rng.choice([0.125, 0.25, 0.5])),
            "fires": [int(f) for f in rng.integers(1, 4, 3)]}


# -- DenseNet ------------------------------------------------------------------------------------------------------

class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (4k), BN-ReLU-3x3 conv (k), concatenated onto the input."""

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 4 * growth, 1, bias=False),
                                  nn.BatchNorm2d(4 * growth), nn.ReLU(), nn.Conv2d(4 * growth, growth, 3, padding=1,
                                                                                  bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


def densenet(cfg: dict[str, Any]) -> nn.Module:
    """DenseNet-BC: stem, dense blocks joined by transitions (BN-ReLU-1x1 conv, 2x2 average pool)."""
    g = cfg["growth"]
    cin = 2 * g
    layers: list[nn.Module] = [conv_bn(3, cin, 7, 2), nn.MaxPool2d(3, 2, 1)]
    for i, n in enumerate(cfg["blocks"]):
        for _ in range(n):
            layers.append(DenseLayer(cin, g))
            cin += g
        if i < len(cfg["blocks"]) - 1:
            cout = cin // 2
            layers += [nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2, 2)]
            cin = cout
    return nn.Sequential(*layers, nn.BatchNorm2d(cin), nn.ReLU(), Classifier(cin, 1000))


def sample_densenet(rng: np.random.Generator) -> dict[str, Any]:
    """A DenseNet configuration (growth rate, layers per block)."""
    return {"growth": int(rng.choice([8, 12, 16, 24])), "blocks": [int(b) for b in rng.integers(2, 9, 4)]}


# -- GoogLeNet -----------------------------------------------------------------------------------------------------

class Inception(nn.Module):
    """Four branches: 1x1; 1x1 -> 3x3; 1x1 -> kxk; 3x3 max pool -> 1x1; concatenated."""

    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool: int, k: int) -> None:
        super().__init__()
        self.b1 = conv_bn(cin, c1, 1)
        self.b2 = nn.Sequential(conv_bn(cin, c3r, 1), conv_bn(c3r, c3, 3))
        self.b3 = nn.Sequential(conv_bn(cin, c5r, 1), conv_bn(c5r, c5, k))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn(cin, pool, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


def googlenet(cfg: dict[str, Any]) -> nn.Module:
    """GoogLeNet: stem convs and pools, inception stages separated by max pools, classifier."""
    m = cfg["alpha"]
    plan = [[(64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)],
            [(192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
             (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)],
            [(256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)]]
    layers: list[nn.Module] = [conv_bn(3, _ch(64 * m), 7, 2), nn.MaxPool2d(3, 2, 1),
                               conv_bn(_ch(64 * m), _ch(64 * m), 1),
                               conv_bn(_ch(64 * m), _ch(192 * m), 3), nn.MaxPool2d(3, 2, 1)]
    cin = _ch(192 * m)
    for stage, modules in enumerate(plan):
        for spec in modules[:cfg["modules"][stage]]:
            c = [_ch(v * m) for v in spec]
            layers.append(Inception(cin, *c, cfg["k"]))
            cin = c[0] + c[2] + c[4] + c[5]
        if stage < 2:
            layers.append(nn.MaxPool2d(3, 2, 1))
    return nn.Sequential(*layers, nn.Dropout(0.2), Classifier(cin, 1000))


def sample_googlenet(rng: np.random.Generator) -> dict[str, Any]:
    """A GoogLeNet configuration (width multiplier, inception modules per stage, the 'kxk' branch's k)."""
    return {"alpha": float(rng.choice([0.25, 0.5, 0.75])), "modules": [int(rng.integers(1, 3)), int(rng.integers(1, 6)),
                                                                        int(rng.integers(1, 3))],
            "k": int(rng.choice([3, 5]))}


FAMILIES: dict[str, tuple[Callable[[dict[str, Any]], nn.Module], Callable[[np.random.Generator], dict[str, Any]]]] = {
    "resnet": (resnet, sample_resnet),
    "vgg": (vgg, sample_vgg),
    "mobilenet_v1": (mobilenet_v1, sample_mobilenet_v1),
    "mobilenet_v2": (mobilenet_v2, sample_mobilenet_v2),
    "mobilenet_v3": (mobilenet_v3, sample_mobilenet_v3),
    "shufflenet_v2": (shufflenet_v2, sample_shufflenet_v2),
    "squeezenet": (squeezenet, sample_squeezenet),
    "densenet": (densenet, sample_densenet),
    "googlenet": (googlenet, sample_googlenet),
    "mnasnet": (mnasnet, sample_mnasnet),
    "efficientnet": (efficientnet, sample_efficientnet),
}
"""family name -> (build(config), sample(rng))."""

RESOLUTIONS = (64, 96, 128, 160, 192, 224)


def sample(family: str, rng: np.random.Generator) -> dict[str, Any]:
    """A configuration of ``family`` with an input resolution."""
    cfg = FAMILIES[family][1](rng)
    cfg["resolution"] = int(rng.choice(RESOLUTIONS))
    return cfg


def export(family: str, cfg: dict[str, Any], path: str) -> None:
    """Build ``family(cfg)`` in eval mode and export it to ONNX (opset 17, batch 1, NCHW float32)."""
    import warnings

    model = FAMILIES[family][0](cfg).eval()
    x = torch.zeros(1, 3, cfg["resolution"], cfg["resolution"])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["logits"])
