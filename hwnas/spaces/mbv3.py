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
from dataclasses import dataclass

import numpy as np
import onnx

from hwnas.spaces import Space
from lut import builders
from lut.builders import make_divisible
from lut.signature import Signature
from lut.table import Layout

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


@dataclass(frozen=True)
class Arch:
    """A decoded mbv3 architecture: width multiplier, resolution, depths, per-block kernel/expand."""

    width: float
    resolution: int
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expands: tuple[int, ...]

    def __str__(self) -> str:
        return (f"w{self.width:.1f}-r{self.resolution}-d{''.join(map(str, self.depths))}"
                f"-k{''.join(map(str, self.kernels))}-e{''.join(map(str, self.expands))}")


def parse(arch: str) -> Arch:
    """Decode an mbv3 architecture string; ValueError names the problem."""
    match = _ARCH_RE.match(arch.strip()) if isinstance(arch, str) else None
    if not match:
        raise ValueError(f"malformed mbv3 architecture {arch!r} (expected like w1.0-r224-d23423-k...-e...)")
    width, res = float(match[1]), int(match[2])
    depths = tuple(int(c) for c in match[3])
    kernels, expands = tuple(int(c) for c in match[4]), tuple(int(c) for c in match[5])
    if res not in RESOLUTIONS:
        raise ValueError(f"mbv3 architecture {arch!r}: resolution {res} not in 128..224 step 4")
    if len(kernels) != sum(depths) or len(expands) != sum(depths):
        raise ValueError(f"mbv3 architecture {arch!r}: needs {sum(depths)} kernel and expand digits "
                         f"(one per block), got {len(kernels)} and {len(expands)}")
    return Arch(width, res, depths, kernels, expands)


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


def _split(arch: Arch) -> list[list[tuple[int, int]]]:
    out, k = [], 0
    for depth in arch.depths:
        out.append(list(zip(arch.kernels[k:k + depth], arch.expands[k:k + depth])))
        k += depth
    return out


class MobileNetV3Space(Space):
    """The OFA MobileNetV3 space; see the module docstring."""

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
            for stage, stage_choices in enumerate(_split(a)):
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

    def blocks(self, arch: str) -> list[Signature]:
        """The OFA-keyed blocks of ``arch``: stem, first block, stage blocks, head."""
        a = parse(arch)
        return _network_blocks(a.width, a.resolution, _split(a))

    def all_blocks(self, resolutions: Sequence[int] | None = None,
                   widths: Sequence[float] | None = None) -> list[Signature]:
        """Every distinct block at the given resolutions and widths (default 224, both widths)."""
        seen: dict[Signature, None] = {}
        for width in widths or WIDTHS:
            for res in resolutions or self.default_resolutions:
                if res not in RESOLUTIONS:
                    raise ValueError(f"mbv3 resolution {res} not in 128..224 step 4")
                fixed, slots = self._context_terms(width, res)
                seen.update(dict.fromkeys([*fixed, *slots.values()]))
        return list(seen)

    @staticmethod
    def _context_terms(width: float, res: int) -> tuple[list[Signature], dict[tuple[int, int], Signature]]:
        """The fixed blocks (stem, first block, head) and {(slot, code): block} of one (width, resolution)."""
        net = _network_blocks(width, res, [[(3, 3)] for _ in STAGE_BASE])
        size, cin = net[1].output[0], net[1].output[2]
        slots: dict[tuple[int, int], Signature] = {}
        for stage in range(len(STAGE_BASE)):
            for pos in range(MAX_DEPTH):
                for ki, kernel in enumerate(KERNELS):
                    for ei, expand in enumerate(EXPANDS):
                        block = _stage_block(size, cin, stage, pos, width, kernel, expand)
                        slots[(stage * MAX_DEPTH + pos, 1 + ki * len(EXPANDS) + ei)] = block
                size, cin = block.output[0], block.output[2]
        return net[:2] + net[-4:], slots

    def contexts(self) -> list[tuple[float, int]]:
        """(width, resolution) of each context index of the encoding."""
        return [(w, r) for w in WIDTHS for r in RESOLUTIONS]

    def encode(self, archs: Sequence[str]) -> np.ndarray:
        """(n, 21) ints: context (width, resolution), then per slot 0 (unused) or 1 + kernel*3 + expand."""
        ctx_index = {c: i for i, c in enumerate(self.contexts())}
        out = np.zeros((len(archs), 1 + N_SLOTS), dtype=np.int64)
        for row, arch in enumerate(archs):
            a = parse(arch)
            out[row, 0] = ctx_index[(a.width, a.resolution)]
            for stage, choices in enumerate(_split(a)):
                for pos, (kernel, expand) in enumerate(choices):
                    out[row, 1 + stage * MAX_DEPTH + pos] = 1 + KERNELS.index(kernel) * 3 + EXPANDS.index(expand)
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

    def onnx_model(self, arch: str) -> onnx.ModelProto:
        """The network graph: the blocks of ``arch`` chained, one input (1, 3, r, r), 1000 logits."""
        arch = self.check(arch)
        blocks = self.blocks(arch)
        g = builders.Graph(builders.seed_of(f"{self.name}:{arch}"))
        x = g.input((1, 3, blocks[0].input[0], blocks[0].input[1]))
        for sig in blocks:
            x = builders.add_block(g, sig, x)
        return g.model([(x, (1, CLASSES))], f"{self.name}:{arch}")

    def build_torch(self, arch: str):
        """The PyTorch module of ``arch`` (BatchNorm kept, random init, eval mode)."""
        from hwnas.spaces import torch_blocks

        return torch_blocks.mbv3_network(self.blocks(arch)).eval()
