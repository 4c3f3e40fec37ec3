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

import numpy as np

from hwnas.spaces.slots import Arch, SlotSpace, parse_arch
from lut.builders import make_divisible
from lut.signature import Signature

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


def parse(arch: str) -> Arch:
    """Decode a digits architecture string; ValueError names the problem."""
    return parse_arch(arch, "digits", _ARCH_RE, RESOLUTIONS, str(RESOLUTIONS), "w1.0-r32-d123-k353535-e234234")


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


class DigitsSpace(SlotSpace):
    """The digits supernet space; see the module docstring."""

    kernels, expands, widths = KERNELS, EXPANDS, WIDTHS
    n_stages, max_depth, leading = N_STAGES, MAX_DEPTH, 1
    in_channels, classes = IN_CHANNELS, CLASSES

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

    def net_blocks(self, width: float, res: int, choices: list[list[tuple[int, int]]]) -> list[Signature]:
        """Blocks of a network (:func:`network_blocks`)."""
        return network_blocks(width, res, choices)

    def slot_block(self, size: int, cin: int, stage: int, pos: int, width: float, kernel: int,
                   expand: int) -> Signature:
        """One stage block (:func:`stage_block`)."""
        return stage_block(size, cin, stage, pos, width, kernel, expand)

    def arch_choices(self, arch: str) -> tuple[float, int, list[list[tuple[int, int]]]]:
        """Width, resolution and per-stage (kernel, expand) choices of ``arch``."""
        a = parse(arch)
        return a.width, a.resolution, a.stages()

    def check_resolution(self, res: int) -> None:
        """ValueError unless ``res`` is one of :data:`RESOLUTIONS`."""
        if res not in RESOLUTIONS:
            raise ValueError(f"digits resolution {res} not in {RESOLUTIONS}")
