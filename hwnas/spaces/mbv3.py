"""The Once-for-All MobileNetV3 space (``mbv3``).

Network (as OFA's ``OFAMobileNetV3``): a 3x3 stride-2 stem (h-swish), a fixed
first inverted-residual block (expand 1, kernel 3, ReLU), five searchable stages,
then a 1x1 final expand layer, global average pool, 1x1 feature mix and the
classifier. Per width multiplier ``w`` the channels are ``make_divisible(base * w, 8)``
of the bases below.

=====  =====  ======  ========  ====
stage  width  stride  act       SE
=====  =====  ======  ========  ====
1      24     2       relu      no
2      40     2       relu      yes
3      80     2       h_swish   no
4      112    1       h_swish   yes
5      160    2       h_swish   yes
=====  =====  ======  ========  ====

Each stage has depth d in {2, 3, 4}; each of its first d blocks a kernel in {3, 5, 7}
and an expand ratio in {3, 4, 6}; the input resolution is 128..224 in steps of 4 and
the width multiplier 1.0 or 1.2. An architecture string lists exactly that::

    w1.0-r224-d23423-k35735...-e34634...

(``k``/``e`` have one digit per active block, stage by stage). Block keys are the
OFA lookup-table keys (see :mod:`lut.signature`).
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from hwnas.spaces.slots import Arch, SlotSpace, parse_arch
from lut.builders import make_divisible
from lut.signature import Signature

KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
DEPTHS = (2, 3, 4)
WIDTHS = (1.0, 1.2)
RESOLUTIONS = tuple(range(128, 225, 4))
STAGE_BASE = (24, 40, 80, 112, 160)
STAGE_STRIDE = (2, 2, 2, 1, 2)
STAGE_ACT = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE = (0, 1, 0, 1, 1)
STEM_BASE, FINAL_EXPAND_BASE, LAST_BASE, CLASSES = 16, 960, 1280, 1000
MAX_DEPTH = max(DEPTHS)
N_SLOTS = len(STAGE_BASE) * MAX_DEPTH
N_CODES = 1 + len(KERNELS) * len(EXPANDS)   # 0 = block not used
_ARCH_RE = re.compile(r"^w(1\.0|1\.2)-r(\d+)-d([234]{5})-k([357]+)-e([346]+)$")


def parse(arch: str) -> Arch:
    """Decode an mbv3 architecture string; ValueError names the problem."""
    return parse_arch(arch, "mbv3", _ARCH_RE, RESOLUTIONS, "128..224 step 4", "w1.0-r224-d23423-k...-e...")


def channels(width: float) -> tuple[int, list[int], int, int]:
    """(stem/first-block channels, stage widths, final expand channels, last channels) for a width."""
    return (make_divisible(STEM_BASE * width), [make_divisible(b * width) for b in STAGE_BASE],
            make_divisible(FINAL_EXPAND_BASE * width), make_divisible(LAST_BASE * width))


def _mb(size: int, cin: int, cout: int, stride: int, kernel: int, mid: int, se: int, act: str) -> Signature:
    out = (size - 1) // stride + 1
    return Signature("expanded_conv", (size, size, cin), (out, out, cout), expand=mid, kernel=kernel,
                     stride=stride, idskip=int(stride == 1 and cin == cout), se=se, act=act)


def _stage_block(size: int, cin: int, stage: int, pos: int, width: float, kernel: int, expand: int) -> Signature:
    cout = channels(width)[1][stage]
    stride = STAGE_STRIDE[stage] if pos == 0 else 1
    return _mb(size, cin, cout, stride, kernel, make_divisible(round(cin * expand)), STAGE_SE[stage],
               STAGE_ACT[stage])


def _network_blocks(width: float, res: int, choices: list[list[tuple[int, int]]]) -> list[Signature]:
    """Blocks of a network; ``choices[stage]`` lists (kernel, expand) of its active blocks."""
    stem, _, final, last = channels(width)
    size = (res + 1) // 2
    blocks = [Signature("Conv", (res, res, 3), (size, size, stem)),
              _mb(size, stem, stem, 1, 3, stem, 0, "relu")]
    cin = stem
    for stage, stage_choices in enumerate(choices):
        for pos, (kernel, expand) in enumerate(stage_choices):
            block = _stage_block(size, cin, stage, pos, width, kernel, expand)
            blocks.append(block)
            size, cin = block.output[0], block.output[2]
    blocks += [Signature("Conv_1", (size, size, cin), (size, size, final)),
               Signature("AvgPool2D", (size, size, final), (1, 1, final)),
               Signature("Conv_2", (1, 1, final), (1, 1, last)),
               Signature("Logits", (1, 1, last), (CLASSES,))]
    return blocks


class MobileNetV3Space(SlotSpace):
    """The OFA MobileNetV3 space; see the module docstring."""

    kernels, expands, widths = KERNELS, EXPANDS, WIDTHS
    n_stages, max_depth, leading = len(STAGE_BASE), MAX_DEPTH, 2
    in_channels, classes = 3, CLASSES

    name = "mbv3"
    default_resolutions = (224,)
    resolutions = RESOLUTIONS

    def check(self, arch: str) -> str:
        """The canonical string of ``arch``."""
        return str(parse(arch))

    def sample(self, n: int, rng: np.random.Generator, resolutions: Sequence[int] | None = None,
               widths: Sequence[float] | None = None) -> list[str]:
        """``n`` uniform architectures (optionally restricted to some resolutions / widths)."""
        res = np.asarray(resolutions or RESOLUTIONS)
        wid = np.asarray(widths or WIDTHS)
        r = rng.choice(res, n)
        w = rng.choice(wid, n)
        d = rng.choice(DEPTHS, (n, len(STAGE_BASE)))
        k = rng.choice(KERNELS, (n, N_SLOTS))
        e = rng.choice(EXPANDS, (n, N_SLOTS))
        archs = []
        for i in range(n):
            active = [s * MAX_DEPTH + p for s in range(len(STAGE_BASE)) for p in range(d[i, s])]
            archs.append(str(Arch(float(w[i]), int(r[i]), tuple(int(x) for x in d[i]),
                                  tuple(int(x) for x in k[i, active]), tuple(int(x) for x in e[i, active]))))
        return archs

    def choices(self) -> tuple[int, ...]:
        """Width, resolution, the 5 stage depths, then kernel and expand of each of the 20 block slots
        (genes of slots a stage does not use are ignored: 0 in the canonical code)."""
        return (len(WIDTHS), len(RESOLUTIONS)) + (len(DEPTHS),) * len(STAGE_BASE) + (
            len(KERNELS), len(EXPANDS)) * N_SLOTS

    def to_choices(self, archs: Sequence[str]) -> np.ndarray:
        """The canonical (n, 47) choice codes of architecture strings."""
        out = np.zeros((len(archs), len(self.choices())), dtype=np.int64)
        for row, arch in enumerate(archs):
            a = parse(arch)
            out[row, 0], out[row, 1] = WIDTHS.index(a.width), RESOLUTIONS.index(a.resolution)
            out[row, 2:2 + len(STAGE_BASE)] = [DEPTHS.index(d) for d in a.depths]
            for stage, stage_choices in enumerate(a.stages()):
                for pos, (kernel, expand) in enumerate(stage_choices):
                    gene = 2 + len(STAGE_BASE) + 2 * (stage * MAX_DEPTH + pos)
                    out[row, gene], out[row, gene + 1] = KERNELS.index(kernel), EXPANDS.index(expand)
        return out

    def from_choices(self, codes: np.ndarray) -> list[str]:
        """Architecture strings of (n, 47) choice codes."""
        archs = []
        for row in self.check_choices(codes).tolist():
            depths = tuple(DEPTHS[g] for g in row[2:2 + len(STAGE_BASE)])
            slots = [s * MAX_DEPTH + p for s in range(len(STAGE_BASE)) for p in range(depths[s])]
            genes = row[2 + len(STAGE_BASE):]
            archs.append(str(Arch(WIDTHS[row[0]], RESOLUTIONS[row[1]], depths,
                                  tuple(KERNELS[genes[2 * k]] for k in slots),
                                  tuple(EXPANDS[genes[2 * k + 1]] for k in slots))))
        return archs

    def net_blocks(self, width: float, res: int, choices: list[list[tuple[int, int]]]) -> list[Signature]:
        """Blocks of a network (stem, fixed first block, stages, head)."""
        return _network_blocks(width, res, choices)

    def slot_block(self, size: int, cin: int, stage: int, pos: int, width: float, kernel: int,
                   expand: int) -> Signature:
        """One stage block."""
        return _stage_block(size, cin, stage, pos, width, kernel, expand)

    def arch_choices(self, arch: str) -> tuple[float, int, list[list[tuple[int, int]]]]:
        """Width, resolution and per-stage (kernel, expand) choices of ``arch``."""
        a = parse(arch)
        return a.width, a.resolution, a.stages()

    def check_resolution(self, res: int) -> None:
        """ValueError unless ``res`` is one of the space's resolutions (128..224 step 4)."""
        if res not in RESOLUTIONS:
            raise ValueError(f"mbv3 resolution {res} not in 128..224 step 4")
