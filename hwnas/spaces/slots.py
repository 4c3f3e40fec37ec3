"""What the OFA-style MobileNetV3 spaces (``mbv3``, ``digits``) share: block slots over contexts.

A network of such a space is a few fixed leading blocks (the stem, and in mbv3 a fixed
first block), searchable stages of inverted-residual blocks, and a fixed head. A
*context* is a (width multiplier, input resolution) pair; within one, every block
*slot* (stage × position) holds one of the (kernel, expand ratio) options or is unused
(code 0; otherwise ``1 + kernel index * len(expands) + expand index``). The fixed blocks
and every (slot, code) block of every context are what a LUT measures, and the
integer encoding plus the :class:`~lut.table.Layout` are what
``LatencyTable.predictor`` compiles. A space fills in the hooks below; this class
derives the blocks, the encoding, the layout, the ONNX graph and the PyTorch module.
"""
from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from hwnas.spaces import Space
from lut import builders
from lut.signature import Signature
from lut.table import Layout


@dataclass(frozen=True)
class Arch:
    """A decoded architecture: width multiplier, resolution, depths, per-block kernel/expand."""

    width: float
    resolution: int
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]

    def __str__(self) -> str:
        return (f"w{self.width:.1f}-r{self.resolution}-d{''.join(map(str, self.depths))}"
                f"-k{''.join(map(str, self.kernels))}-e{''.join(map(str, self.expands))}")

    def stages(self) -> list[list[tuple[int, int]]]:
        """(kernel, expand) of the active blocks, stage by stage."""
        out, k = [], 0
        for depth in self.depths:
            out.append(list(zip(self.kernels[k:k + depth], self.expands[k:k + depth])))
            k += depth
        return out


def parse_arch(arch: str, space: str, pattern: re.Pattern, resolutions: Sequence[int], res_text: str,
               example: str) -> Arch:
    """Decode a ``w<width>-r<res>-d<depths>-k<kernels>-e<expands>`` string of ``space`` (its ``pattern``
    fixes the digits each part may use); ValueError names the problem."""
    match = pattern.match(arch.strip()) if isinstance(arch, str) else None
    if not match:
        raise ValueError(f"malformed {space} architecture {arch!r} (expected like {example})")
    width, res = float(match[1]), int(match[2])
    depths = tuple(int(c) for c in match[3])
    kernels, expands = tuple(int(c) for c in match[4]), tuple(int(c) for c in match[5])
    if res not in resolutions:
        raise ValueError(f"{space} architecture {arch!r}: resolution {res} not in {res_text}")
    if len(kernels) != sum(depths) or len(expands) != sum(depths):
        raise ValueError(f"{space} architecture {arch!r}: needs {sum(depths)} kernel and expand digits "
                         f"(one per block), got {len(kernels)} and {len(expands)}")
    return Arch(width, res, depths, kernels, expands)


class SlotSpace(Space):
    """Base of the spaces whose networks are fixed blocks plus (kernel, expand) choices per slot."""

    kernels: tuple[int, ...]
    expands: tuple[int, ...]
    widths: tuple[float, ...]
    n_stages: int
    max_depth: int
    leading: int
    """Fixed blocks before the first searchable stage (the stem, ...)."""
    in_channels: int
    classes: int

    @abstractmethod
    def net_blocks(self, width: float, res: int, choices: list[list[tuple[int, int]]]) -> list[Signature]:
        """Blocks of a network; ``choices[stage]`` lists (kernel, expand) of its active blocks."""

    @abstractmethod
    def slot_block(self, size: int, cin: int, stage: int, pos: int, width: float, kernel: int,
                   expand: int) -> Signature:
        """The block in slot ``pos`` of ``stage`` at spatial ``size`` with ``cin`` input channels."""

    @abstractmethod
    def arch_choices(self, arch: str) -> tuple[float, int, list[list[tuple[int, int]]]]:
        """(width, resolution, per stage the (kernel, expand) of its active blocks) of an architecture
        string (ValueError when malformed)."""

    @abstractmethod
    def check_resolution(self, res: int) -> None:
        """ValueError naming the space's resolutions when ``res`` is not one of them."""

    @property
    def n_slots(self) -> int:
        """Block slots of a network (stages × maximum depth)."""
        return self.n_stages * self.max_depth

    def blocks(self, arch: str) -> list[Signature]:
        """The OFA-keyed blocks of ``arch``: leading blocks, stage blocks, head."""
        return self.net_blocks(*self.arch_choices(arch))

    def all_blocks(self, resolutions: Sequence[int] | None = None,
                   widths: Sequence[float] | None = None) -> list[Signature]:
        """Every distinct block at the given resolutions and widths (default: the space's default
        resolutions, every width)."""
        seen: dict[Signature, None] = {}
        for width in widths or self.widths:
            for res in resolutions or self.default_resolutions:
                self.check_resolution(res)
                fixed, slots = self.context_terms(width, res)
                seen.update(dict.fromkeys([*fixed, *slots.values()]))
        return list(seen)

    def context_terms(self, width: float, res: int) -> tuple[list[Signature], dict[tuple[int, int], Signature]]:
        """The fixed blocks (leading ones and head) and {(slot, code): block} of one (width, resolution)."""
        net = self.net_blocks(width, res, [[(self.kernels[0], self.expands[0])]] * self.n_stages)
        size, cin = net[self.leading - 1].output[0], net[self.leading - 1].output[2]
        slots: dict[tuple[int, int], Signature] = {}
        for stage in range(self.n_stages):
            for pos in range(self.max_depth):
                for ki, kernel in enumerate(self.kernels):
                    for ei, expand in enumerate(self.expands):
                        block = self.slot_block(size, cin, stage, pos, width, kernel, expand)
                        slots[(stage * self.max_depth + pos, 1 + ki * len(self.expands) + ei)] = block
                size, cin = block.output[0], block.output[2]
        return net[:self.leading] + net[-4:], slots

    def contexts(self) -> list[tuple[float, int]]:
        """(width, resolution) of each context index of the encoding."""
        return [(w, r) for w in self.widths for r in self.resolutions]

    def encode(self, archs: Sequence[str]) -> np.ndarray:
        """(n, 1 + slots) ints: the context index, then per slot 0 (unused) or its (kernel, expand) code."""
        ctx_index = {c: i for i, c in enumerate(self.contexts())}
        out = np.zeros((len(archs), 1 + self.n_slots), dtype=np.int64)
        for row, arch in enumerate(archs):
            width, res, choices = self.arch_choices(arch)
            out[row, 0] = ctx_index[(width, res)]
            for stage, stage_choices in enumerate(choices):
                for pos, (kernel, expand) in enumerate(stage_choices):
                    out[row, 1 + stage * self.max_depth + pos] = (1 + self.kernels.index(kernel) * len(self.expands)
                                                                  + self.expands.index(expand))
        return out

    def layout(self) -> Layout:
        """The LUT layout over every (width, resolution) context."""
        terms: list[tuple[int, int, int, str, float]] = []
        contexts = self.contexts()
        for ctx, (width, res) in enumerate(contexts):
            fixed, slots = self.context_terms(width, res)
            terms += [(ctx, -1, 0, sig.key(), 1.0) for sig in fixed]
            terms += [(ctx, slot, code, sig.key(), 1.0) for (slot, code), sig in slots.items()]
        return Layout(self.name, self.n_slots, 1 + len(self.kernels) * len(self.expands),
                      tuple(f"w{w:.1f}-r{r}" for w, r in contexts), tuple(terms))

    def onnx_model(self, arch: str, weights: Sequence[np.ndarray] | None = None) -> onnx.ModelProto:
        """The network graph: one input ``input_0`` (1, channels, r, r), the class logits.

        ``weights`` (BatchNorm-folded tensors in graph order, e.g. a trained supernet's) replace the
        seeded random weights; the graph is the same either way.
        """
        arch = self.check(arch)
        blocks = self.blocks(arch)
        g = builders.Graph(builders.seed_of(f"{self.name}:{arch}"), weights=weights)
        x = g.input((1, self.in_channels, blocks[0].input[0], blocks[0].input[1]))
        for sig in blocks:
            x = builders.add_block(g, sig, x)
        return g.model([(x, (1, self.classes))], f"{self.name}:{arch}")

    def build_torch(self, arch: str):
        """The PyTorch module of ``arch`` (BatchNorm kept, random init, eval mode)."""
        from hwnas.spaces import torch_blocks

        return torch_blocks.mbv3_network(self.blocks(arch)).eval()
