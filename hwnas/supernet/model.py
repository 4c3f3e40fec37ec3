"""The weight-sharing supernet of the ``digits`` space (Once-for-All style), and subnet extraction.

One network holds the largest architecture's weights; a subnet uses a slice of them:

* elastic width and expand ratio: the first ``c`` output (and input) channels of every layer;
* elastic kernel: the centred ``k x k`` window of the 5x5 depthwise kernel;
* elastic depth: the first ``d`` blocks of a stage;
* elastic resolution: the network is fully convolutional up to the global pool.

BatchNorm statistics are shared too, so they are wrong for any one subnet after
training: :func:`recalibrate` re-estimates them for a subnet on training images
before it is scored or extracted (as OFA does). :meth:`Supernet.layers` lists a
subnet's tensors in graph order; :func:`extract` copies them into the static
module of :meth:`DigitsSpace.build_torch`, and :func:`folded` folds BatchNorm
into the convolutions for :meth:`DigitsSpace.onnx_model`.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.spaces import digits
from hwnas.spaces.digits import Arch
from lut.builders import SE_REDUCTION

BN_EPS = 1e-5
_ACT = {"relu": F.relu, "h_swish": F.hardswish, "h_sigmoid": F.hardsigmoid, None: lambda x: x}


class DynamicConvBN(nn.Module):
    """A convolution (+ BatchNorm, or + bias) whose output channels, input channels and kernel are sliced."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, depthwise: bool = False,
                 bn: bool = True, act: str | None = None) -> None:
        super().__init__()
        self.stride, self.depthwise, self.act = stride, depthwise, act
        self.weight = nn.Parameter(torch.empty(cout, 1 if depthwise else cin, kernel, kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS) if bn else None
        self.bias = None if bn else nn.Parameter(torch.zeros(cout))

    def tensors(self, cin: int, cout: int, kernel: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The sliced conv weight (and bias when there is no BatchNorm)."""
        full = self.weight.shape[-1]
        lo = (full - kernel) // 2
        w = self.weight[:cout, : (1 if self.depthwise else cin), lo:lo + kernel, lo:lo + kernel]
        return w, None if self.bias is None else self.bias[:cout]

    def forward(self, x: torch.Tensor, cout: int, kernel: int) -> torch.Tensor:
        """The slice with ``x``'s input channels, ``cout`` outputs and a ``kernel`` x ``kernel`` centre, then
        BatchNorm (its statistics sliced too; a cumulative average when momentum is None) and the activation."""
        cin = x.shape[1]
        cout = cin if self.depthwise else cout
        w, b = self.tensors(cin, cout, kernel)
        y = F.conv2d(x, w, b, self.stride, kernel // 2, groups=cin if self.depthwise else 1)
        if self.bn is not None:
            bn = self.bn
            factor = bn.momentum
            if bn.training and bn.momentum is None:  # cumulative average (BatchNorm recalibration)
                bn.num_batches_tracked += 1
                factor = 1.0 / float(bn.num_batches_tracked)
            y = F.batch_norm(y, bn.running_mean[:cout], bn.running_var[:cout], bn.weight[:cout], bn.bias[:cout],
                             bn.training, factor, bn.eps)
        return _ACT[self.act](y)

    def layers(self, cin: int, cout: int, kernel: int) -> Iterator[tuple[str, list[torch.Tensor]]]:
        """("conv", [w(, b)]) then ("bn", [gamma, beta, mean, var]) of the slice."""
        cout = cin if self.depthwise else cout
        w, b = self.tensors(cin, cout, kernel)
        yield "conv", [w] if b is None else [w, b]
        if self.bn is not None:
            bn = self.bn
            yield "bn", [bn.weight[:cout], bn.bias[:cout], bn.running_mean[:cout], bn.running_var[:cout]]


class DynamicMBConv(nn.Module):
    """An elastic inverted-residual block: [1x1 expand] + kxk depthwise [+ SE] + 1x1 project [+ skip]."""

    def __init__(self, cin_max: int, cout_max: int, stage: int, pos: int) -> None:
        super().__init__()
        act, mid_max = digits.STAGE_ACT[stage], digits.hidden(cin_max, max(digits.EXPANDS))
        self.stage, self.pos = stage, pos
        self.expand = DynamicConvBN(cin_max, mid_max, 1, act=act)
        stride = digits.STAGE_STRIDE[stage] if pos == 0 else 1
        self.depthwise = DynamicConvBN(mid_max, mid_max, max(digits.KERNELS), stride, depthwise=True, act=act)
        if digits.STAGE_SE[stage]:
            reduced = digits.make_divisible(mid_max // SE_REDUCTION)
            self.se_reduce = DynamicConvBN(mid_max, reduced, 1, bn=False, act="relu")
            self.se_expand = DynamicConvBN(reduced, mid_max, 1, bn=False, act="h_sigmoid")
        self.project = DynamicConvBN(mid_max, cout_max, 1)

    def _dims(self, cin: int, width: float, expand: int) -> tuple[int, int, int]:
        mid = digits.hidden(cin, expand)
        return mid, digits.make_divisible(mid // SE_REDUCTION), digits.channels(width)[1][self.stage]

    def forward(self, x: torch.Tensor, width: float, kernel: int, expand: int) -> torch.Tensor:
        """The block as the subnet of ``width``, ``kernel`` and ``expand`` ratio runs it on ``x``."""
        cin = x.shape[1]
        mid, reduced, cout = self._dims(cin, width, expand)
        h = x if mid == cin else self.expand(x, mid, 1)
        h = self.depthwise(h, mid, kernel)
        if digits.STAGE_SE[self.stage]:
            gate = self.se_expand(self.se_reduce(F.adaptive_avg_pool2d(h, 1), reduced, 1), mid, 1)
            h = h * gate
        y = self.project(h, cout, 1)
        return x + y if self.depthwise.stride == 1 and cin == cout else y

    def layers(self, cin: int, width: float, kernel: int, expand: int) -> Iterator[tuple[str, list[torch.Tensor]]]:
        """The slice's tensors in the order of :class:`hwnas.spaces.torch_blocks.MBConv`."""
        mid, reduced, cout = self._dims(cin, width, expand)
        if mid != cin:
            yield from self.expand.layers(cin, mid, 1)
        yield from self.depthwise.layers(mid, mid, kernel)
        if digits.STAGE_SE[self.stage]:
            yield from self.se_reduce.layers(mid, reduced, 1)
            yield from self.se_expand.layers(reduced, mid, 1)
        yield from self.project.layers(mid, cout, 1)


class Supernet(nn.Module):
    """The digits supernet: the largest architecture's weights, any subnet's forward."""

    def __init__(self) -> None:
        super().__init__()
        stem, stage_max, final, last = digits.channels(max(digits.WIDTHS))
        self.stem = DynamicConvBN(digits.IN_CHANNELS, stem, 3, 2, act="h_swish")
        # a stage's first block may see any width's input: size its input slice for the widest
        blocks, cin = [], stem
        for stage in range(digits.N_STAGES):
            for pos in range(digits.MAX_DEPTH):
                blocks.append(DynamicMBConv(cin, stage_max[stage], stage, pos))
                cin = stage_max[stage]
        self.blocks = nn.ModuleList(blocks)
        self.final_expand = DynamicConvBN(cin, final, 1, act="h_swish")
        self.feature_mix = DynamicConvBN(final, last, 1, bn=False, act="h_swish")
        self.classifier = nn.Linear(last, digits.CLASSES)

    def _active(self, a: Arch) -> Iterator[tuple[DynamicMBConv, int, int]]:
        for stage, choices in enumerate(a.stages()):
            for pos, (kernel, expand) in enumerate(choices):
                yield self.blocks[stage * digits.MAX_DEPTH + pos], kernel, expand

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        """Logits of subnet ``arch`` on ``x`` (n, 1, r, r)."""
        stem, _, final, last = digits.channels(arch.width)
        h = self.stem(x, stem, 3)
        for block, kernel, expand in self._active(arch):
            h = block(h, arch.width, kernel, expand)
        h = self.final_expand(h, final, 1)
        h = self.feature_mix(F.adaptive_avg_pool2d(h, 1), last, 1)
        return F.linear(h.flatten(1), self.classifier.weight[:, :last], self.classifier.bias)

    def layers(self, arch: Arch) -> list[tuple[str, list[torch.Tensor]]]:
        """The subnet's tensors in graph order: ("conv", [w(, b)]), ("bn", [g, b, mean, var]), ("linear", [w, b])."""
        stem, stage_c, final, last = digits.channels(arch.width)
        out = list(self.stem.layers(digits.IN_CHANNELS, stem, 3))
        cin = stem
        for block, kernel, expand in self._active(arch):
            out += block.layers(cin, arch.width, kernel, expand)
            cin = stage_c[block.stage]
        out += self.final_expand.layers(cin, final, 1)
        out += self.feature_mix.layers(final, last, 1)
        out.append(("linear", [self.classifier.weight[:, :last], self.classifier.bias]))
        return out


@torch.no_grad()
def recalibrate(net: Supernet, arch: Arch, images: torch.Tensor, batch: int = 256) -> None:
    """Re-estimate the BatchNorm statistics of subnet ``arch`` from ``images`` (training images at its
    resolution): exact averages over the batches (cumulative mode), then eval mode."""
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    net.train()
    for start in range(0, len(images), batch):
        net(images[start:start + batch], arch)
    for bn in bns:
        bn.momentum = 0.1
    net.eval()


@torch.no_grad()
def extract(net: Supernet, arch: Arch) -> nn.Module:
    """The static PyTorch module of ``arch`` (:meth:`DigitsSpace.build_torch`) holding the supernet's
    weights and current BatchNorm statistics (recalibrate first), in eval mode."""
    module = digits.DigitsSpace().build_torch(str(arch))
    targets = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear))]
    layers = net.layers(arch)
    if len(targets) != len(layers):
        raise RuntimeError(f"supernet slice of {arch} has {len(layers)} layers, the static module {len(targets)}")
    for target, (kind, tensors) in zip(targets, layers):
        names = ["weight", "bias", "running_mean", "running_var"] if kind == "bn" else ["weight", "bias"]
        for name, tensor in zip(names, tensors):
            getattr(target, name).copy_(tensor)
    return module.eval()


@torch.no_grad()
def folded(net: Supernet, arch: Arch) -> list[np.ndarray]:
    """The subnet's weights with BatchNorm folded into each convolution, in the order
    :class:`lut.builders.Graph` asks for them (conv weight, bias; fc weight, bias)."""
    out: list[np.ndarray] = []
    layers = net.layers(arch)
    for i, (kind, tensors) in enumerate(layers):
        if kind == "conv":
            w = tensors[0]
            bn = layers[i + 1][1] if i + 1 < len(layers) and layers[i + 1][0] == "bn" else None
            if bn is None:
                out += [w, tensors[1]]
            else:
                gamma, beta, mean, var = bn
                scale = gamma / torch.sqrt(var + BN_EPS)
                out += [w * scale[:, None, None, None], beta - mean * scale]
        elif kind == "linear":
            out += tensors
    return [t.detach().double().numpy().astype(np.float32) for t in out]


def sample_archs(rng: np.random.Generator, n: int) -> Sequence[Arch]:
    """``n`` uniformly drawn subnets (the random members of a sandwich step)."""
    return [digits.parse(a) for a in digits.DigitsSpace().sample(n, rng)]
