"""A scaled-down MobileNetV3 space for 8x8 handwritten digits (``digits``).

The space of the weight-sharing supernet (:mod:`hwnas.supernet`), trained on
scikit-learn's ``load_digits``. Network: a 3x3 stride-2 stem (h-swish) on a
one-channel ``r x r`` image, three searchable stages of inverted-residual blocks,
then a 1x1 final expand layer, global average pool, 1x1 feature mix and a
10-way classifier. Per width multiplier ``w`` the channels are
``make_divisible(base * w, 8)`` of the bases below.

=====  =====  ======  ========  ====
stage  width  stride  act       SE
=====  =====  ======  ========  ====
1      16     2       relu      no
2      24     2       h_swish   no
3      32     2       h_swish   yes
=====  =====  ======  ========  ====

Each stage has depth d in {1, 2, 3}; each of its first d blocks a kernel in {3, 5}
and an expand ratio in {2, 3, 4}; the input resolution is 16, 24 or 32 (an 8x8
digit upsampled 2x, 3x or 4x) and the width multiplier 1.0 or 1.5. Architecture
strings have the ``mbv3`` form (``k``/``e`` one digit per active block)::

    w1.5-r32-d333-k555555555-e444444444     (the largest network)
    w1.0-r16-d111-k333-e222                 (the smallest)

Blocks reuse the OFA lookup-table keys of :mod:`lut.signature` (``Conv``,
``expanded_conv``, ``Conv_1``, ``AvgPool2D``, ``Conv_2``, ``Logits``), so the
ONNX graphs are written by :mod:`lut.builders` exactly as the LUT measured them.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from hwnas.spaces import Space
from lut import builders
from lut.builders import make_divisible
from lut.signature import Signature
from lut.table import Layout

KERNELS = (3, 5)
EXPANDS = (2, 3, 4)
DEPTHS = (1, 2, 3)
WIDTHS = (1.0, 1.5)
RESOLUTIONS = (16, 24, 32)
DIGIT_SIZE = 8
IN_CHANNELS = 1
STAGE_BASE = (16, 24, 32)
STAGE_STRIDE = (2, 2, 2)
STAGE_ACT = ("relu", "h_swish", "h_swish")
STAGE_SE = (0, 0, 1)
STEM_BASE, FINAL_EXPAND_BASE, LAST_BASE, CLASSES = 8, 64, 128, 10
MAX_DEPTH = max(DEPTHS)
N_STAGES = len(STAGE_BASE)
N_SLOTS = N_STAGES * MAX_DEPTH
N_CODES = 1 + len(KERNELS) * len(EXPANDS)   # 0 = block not used
_ARCH_RE = re.compile(r"^w(1\.0|1\.5)-r(\d+)-d([123]{3})-k([35]+)-e([234]+)$")


@dataclass(frozen=True)
class Arch:
    """A decoded digits architecture: width multiplier, resolution, depths, per-block kernel/expand."""

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


def parse(arch: str) -> Arch:
    """Decode a digits architecture string; ValueError names the problem."""
    match = _ARCH_RE.match(arch.strip()) if isinstance(arch, str) else None
    if not match:
        raise ValueError(f"malformed digits architecture {arch!r} (expected like w1.0-r32-d123-k353535-e234234)")
    width, res = float(match[1]), int(match[2])
    depths = tuple(int(c) for c in match[3])
    kernels, expands = tuple(int(c) for c in match[4]), tuple(int(c) for c in match[5])
    if res not in RESOLUTIONS:
        raise ValueError(f"digits architecture {arch!r}: resolution {res} not in {RESOLUTIONS}")
    if len(kernels) != sum(depths) or len(expands) != sum(depths):
        raise ValueError(f"digits architecture {arch!r}: needs {sum(depths)} kernel and expand digits "
                         f"(one per block), got {len(kernels)} and {len(expands)}")
    return Arch(width, res, depths, kernels, expands)


LARGEST = Arch(max(WIDTHS), max(RESOLUTIONS), (MAX_DEPTH,) * N_STAGES, (max(KERNELS),) * N_SLOTS,
               (max(EXPANDS),) * N_SLOTS)
SMALLEST = Arch(min(WIDTHS), min(RESOLUTIONS), (min(DEPTHS),) * N_STAGES, (min(KERNELS),) * N_STAGES,
                (min(EXPANDS),) * N_STAGES)


def channels(width: float) -> tuple[int, list[int], int, int]:
    """(stem channels, stage widths, final expand channels, last channels) for a width multiplier."""
    return (make_divisible(STEM_BASE * width), [make_divisible(b * width) for b in STAGE_BASE],
            make_divisible(FINAL_EXPAND_BASE * width), make_divisible(LAST_BASE * width))


def hidden(cin: int, expand: int) -> int:
    """Expanded channel count of a block with ``cin`` inputs and expand ratio ``expand``."""
    return make_divisible(cin * expand)


def stage_block(size: int, cin: int, stage: int, pos: int, width: float, kernel: int, expand: int) -> Signature:
    """The ``expanded_conv`` signature of block ``pos`` of ``stage`` at spatial ``size`` with ``cin`` inputs."""
    cout = channels(width)[1][stage]
    stride = STAGE_STRIDE[stage] if pos == 0 else 1
    out = (size - 1) // stride + 1
    return Signature("expanded_conv", (size, size, cin), (out, out, cout), expand=hidden(cin, expand),
                     kernel=kernel, stride=stride, idskip=int(stride == 1 and cin == cout), se=STAGE_SE[stage],
                     act=STAGE_ACT[stage])


def network_blocks(width: float, res: int, choices: list[list[tuple[int, int]]]) -> list[Signature]:
    """Blocks of a network; ``choices[stage]`` lists (kernel, expand) of its active blocks."""
    stem, _, final, last = channels(width)
    size = (res - 1) // 2 + 1
    blocks = [Signature("Conv", (res, res, IN_CHANNELS), (size, size, stem))]
    cin = stem
    for stage, stage_choices in enumerate(choices):
        for pos, (kernel, expand) in enumerate(stage_choices):
            block = stage_block(size, cin, stage, pos, width, kernel, expand)
            blocks.append(block)
            size, cin = block.output[0], block.output[2]
    return blocks + [Signature("Conv_1", (size, size, cin), (size, size, final)),
                     Signature("AvgPool2D", (size, size, final), (1, 1, final)),
                     Signature("Conv_2", (1, 1, final), (1, 1, last)),
                     Signature("Logits", (1, 1, last), (CLASSES,))]


# The choice encoding: one gene per decision (options listed here, in gene order).
GENE_VALUES: tuple[tuple, ...] = (WIDTHS, RESOLUTIONS, *([DEPTHS] * N_STAGES), *([KERNELS] * N_SLOTS),
                                  *([EXPANDS] * N_SLOTS))


def to_choices(a: Arch) -> np.ndarray:
    """The canonical gene vector (indices into :data:`GENE_VALUES`) of ``a``; unused slots 0."""
    genes = np.zeros(len(GENE_VALUES), dtype=np.int64)
    genes[0], genes[1] = WIDTHS.index(a.width), RESOLUTIONS.index(a.resolution)
    for s, d in enumerate(a.depths):
        genes[2 + s] = DEPTHS.index(d)
    for s, stage in enumerate(a.stages()):
        for p, (kernel, expand) in enumerate(stage):
            genes[2 + N_STAGES + s * MAX_DEPTH + p] = KERNELS.index(kernel)
            genes[2 + N_STAGES + N_SLOTS + s * MAX_DEPTH + p] = EXPANDS.index(expand)
    return genes


def from_choices(genes: Sequence[int]) -> Arch:
    """The architecture of a gene vector (inactive slots ignored)."""
    g = [int(x) for x in genes]
    depths = tuple(DEPTHS[g[2 + s]] for s in range(N_STAGES))
    active = [s * MAX_DEPTH + p for s in range(N_STAGES) for p in range(depths[s])]
    return Arch(WIDTHS[g[0]], RESOLUTIONS[g[1]], depths,
                tuple(KERNELS[g[2 + N_STAGES + i]] for i in active),
                tuple(EXPANDS[g[2 + N_STAGES + N_SLOTS + i]] for i in active))


class DigitsSpace(Space):
    """The digits supernet space; see the module docstring."""

    name = "digits"
    dataset = "sklearn load_digits"
    default_resolutions = RESOLUTIONS
    resolutions = RESOLUTIONS
    enumerable = False

    def check(self, arch: str) -> str:
        """The canonical string of ``arch``."""
        return str(parse(arch))

    def size(self) -> int:
        """How many distinct architectures the space holds."""
        per_stage = sum((len(KERNELS) * len(EXPANDS)) ** d for d in DEPTHS)
        return len(WIDTHS) * len(RESOLUTIONS) * per_stage ** N_STAGES

    def sample(self, n: int, rng: np.random.Generator, resolutions: Sequence[int] | None = None) -> list[str]:
        """``n`` architectures, each decision drawn uniformly (with replacement) using ``rng``
        (optionally only at the given input ``resolutions``)."""
        bad = [r for r in resolutions or () if r not in RESOLUTIONS]
        if bad:
            raise ValueError(f"digits resolution {bad[0]} not in {RESOLUTIONS}")
        genes = np.stack([rng.integers(0, size, n) for size in self.choices()], axis=1)
        if resolutions:
            allowed = np.array([RESOLUTIONS.index(r) for r in resolutions])
            genes[:, 1] = rng.choice(allowed, n)
        return self.from_choices(genes)

    def choices(self) -> tuple[int, ...]:
        """Width, resolution, the 3 stage depths, then kernel of each of the 9 block slots, then their
        expand ratios (genes of slots a stage does not use are ignored: 0 in the canonical code)."""
        return tuple(len(v) for v in GENE_VALUES)

    def to_choices(self, archs: Sequence[str]) -> np.ndarray:
        """The canonical (n, 23) choice codes of architecture strings."""
        out = np.zeros((len(archs), len(GENE_VALUES)), dtype=np.int64)
        for row, arch in enumerate(archs):
            out[row] = to_choices(parse(arch))
        return out

    def from_choices(self, codes: np.ndarray) -> list[str]:
        """Architecture strings of (n, 23) choice codes (ValueError when a gene is out of range)."""
        return [str(from_choices(row)) for row in self.check_choices(np.atleast_2d(codes))]

    def blocks(self, arch: str) -> list[Signature]:
        """The OFA-keyed blocks of ``arch``: stem, stage blocks, head."""
        a = parse(arch)
        return network_blocks(a.width, a.resolution, a.stages())

    def all_blocks(self, resolutions: Sequence[int] | None = None,
                   widths: Sequence[float] | None = None) -> list[Signature]:
        """Every distinct block at the given resolutions and widths (default: all)."""
        seen: dict[Signature, None] = {}
        for width in widths or WIDTHS:
            for res in resolutions or self.default_resolutions:
                if res not in RESOLUTIONS:
                    raise ValueError(f"digits resolution {res} not in {RESOLUTIONS}")
                fixed, slots = self._context_terms(width, res)
                seen.update(dict.fromkeys([*fixed, *slots.values()]))
        return list(seen)

    @staticmethod
    def _context_terms(width: float, res: int) -> tuple[list[Signature], dict[tuple[int, int], Signature]]:
        """The fixed blocks (stem, head) and {(slot, code): block} of one (width, resolution)."""
        net = network_blocks(width, res, [[(3, 2)] for _ in STAGE_BASE])
        size, cin = net[0].output[0], net[0].output[2]
        slots: dict[tuple[int, int], Signature] = {}
        for stage in range(N_STAGES):
            for pos in range(MAX_DEPTH):
                for ki, kernel in enumerate(KERNELS):
                    for ei, expand in enumerate(EXPANDS):
                        block = stage_block(size, cin, stage, pos, width, kernel, expand)
                        slots[(stage * MAX_DEPTH + pos, 1 + ki * len(EXPANDS) + ei)] = block
                size, cin = block.output[0], block.output[2]
        return net[:1] + net[-4:], slots

    def contexts(self) -> list[tuple[float, int]]:
        """(width, resolution) of each context index of the encoding."""
        return [(w, r) for w in WIDTHS for r in RESOLUTIONS]

    def encode(self, archs: Sequence[str]) -> np.ndarray:
        """(n, 10) ints: context (width, resolution), then per slot 0 (unused) or 1 + kernel*3 + expand."""
        ctx_index = {c: i for i, c in enumerate(self.contexts())}
        out = np.zeros((len(archs), 1 + N_SLOTS), dtype=np.int64)
        for row, arch in enumerate(archs):
            a = parse(arch)
            out[row, 0] = ctx_index[(a.width, a.resolution)]
            for stage, stage_choices in enumerate(a.stages()):
                for pos, (kernel, expand) in enumerate(stage_choices):
                    out[row, 1 + stage * MAX_DEPTH + pos] = (1 + KERNELS.index(kernel) * len(EXPANDS)
                                                             + EXPANDS.index(expand))
        return out

    def layout(self) -> Layout:
        """The LUT layout over every (width, resolution) context."""
        terms: list[tuple[int, int, int, str, float]] = []
        contexts = self.contexts()
        for ctx, (width, res) in enumerate(contexts):
            fixed, slots = self._context_terms(width, res)
            terms += [(ctx, -1, 0, sig.key(), 1.0) for sig in fixed]
            terms += [(ctx, slot, code, sig.key(), 1.0) for (slot, code), sig in slots.items()]
        return Layout(self.name, N_SLOTS, N_CODES, tuple(f"w{w:.1f}-r{r}" for w, r in contexts), tuple(terms))

    def onnx_model(self, arch: str, weights: Sequence[np.ndarray] | None = None) -> onnx.ModelProto:
        """The network graph: one input ``input_0`` (1, 1, r, r), 10 logits.

        ``weights`` (the folded tensors of :func:`hwnas.supernet.model.folded`, in graph order) replace
        the seeded random weights; the graph is the same either way.
        """
        arch = self.check(arch)
        blocks = self.blocks(arch)
        g = builders.Graph(builders.seed_of(f"{self.name}:{arch}"), weights=weights)
        x = g.input((1, IN_CHANNELS, blocks[0].input[0], blocks[0].input[1]))
        for sig in blocks:
            x = builders.add_block(g, sig, x)
        return g.model([(x, (1, CLASSES))], f"{self.name}:{arch}")

    def build_torch(self, arch: str):
        """The PyTorch module of ``arch`` (BatchNorm kept, random init, eval mode)."""
        from hwnas.spaces import torch_blocks

        return torch_blocks.mbv3_network(self.blocks(arch)).eval()
