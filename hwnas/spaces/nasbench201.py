"""The NAS-Bench-201 cell space (``nasbench201``) on the standard CIFAR network.

Network: 3x3 conv stem (C=16) on a 32x32 input, three stages of 5 cells
(C = 16, 32, 64 at 32x32, 16x16, 8x8) with a residual reduction block between
stages, then BN + ReLU, global average pool and a 10-way classifier. All 15 cells
share the architecture: 6 edges, each one of ``none``, ``skip_connect``,
``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3`` (15,625 architectures,
standard string form, codec in :mod:`lut.nasbench201`).

Blocks: each non-``none`` edge op at a stage (e.g.
``nor_conv_3x3-input:32x32x16-output:32x32x16``), an ``Add`` for every extra input
a cell node sums, the stem, the two reduction blocks and the head. A ``none``
edge costs nothing. For the LUT an architecture is encoded per cell node (node 1
has 5 incoming-op combinations, node 2 has 25, node 3 has 125), so a node's code
carries both its ops and its number of additions: a prediction is 3 gathers.
"""
from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import numpy as np
import onnx

from hwnas.spaces import Space
from lut import builders
from lut import nasbench201 as codec
from lut.signature import Signature
from lut.table import Layout

CHANNELS = (16, 32, 64)
SIZES = (32, 16, 8)
CELLS_PER_STAGE = 5
CLASSES = 10
RESOLUTION = 32
N_CODES = len(codec.OPS) ** 3
_INCOMING = [[e for e, (_, dst) in enumerate(codec.EDGES) if dst == j] for j in (1, 2, 3)]
_RADICES = len(codec.OPS) ** np.arange(len(codec.EDGES) - 1, -1, -1)


@functools.cache
def _all_strings() -> tuple[str, ...]:
    """Every architecture string, indexed by its op codes read as a base-5 number (enumeration order)."""
    groups = [["|" + "|".join(f"{op}~{codec.EDGES[e][0]}" for e, op in zip(edges, ops)) + "|"
               for ops in itertools.product(codec.OPS, repeat=len(edges))] for edges in _INCOMING]
    return tuple(f"{a}+{b}+{c}" for a, b, c in itertools.product(*groups))


def op_block(op: str, stage: int) -> Signature:
    """The block of edge op ``op`` (not 'none') in a cell of ``stage`` (0..2); also 'Add'."""
    size, c = SIZES[stage], CHANNELS[stage]
    return Signature(op, (size, size, c), (size, size, c))


def fixed_blocks() -> list[Signature]:
    """Stem, the two reduction blocks and the head."""
    stem = Signature("nb201_stem", (RESOLUTION, RESOLUTION, 3), (RESOLUTION, RESOLUTION, CHANNELS[0]))
    reductions = [Signature("nb201_reduction", (SIZES[s], SIZES[s], CHANNELS[s]),
                            (SIZES[s + 1], SIZES[s + 1], CHANNELS[s + 1])) for s in range(2)]
    head = Signature("nb201_head", (SIZES[-1], SIZES[-1], CHANNELS[-1]), (CLASSES,))
    return [stem, *reductions, head]


def node_terms(ops: Sequence[str], node: int, stage: int) -> list[Signature]:
    """Blocks node ``node`` (1..3) of a cell at ``stage`` runs: its live incoming ops and its Adds."""
    live = [ops[e] for e in _INCOMING[node - 1] if ops[e] != "none"]
    return [op_block(op, stage) for op in live] + [op_block("Add", stage)] * max(len(live) - 1, 0)


def lut_codes(ops: np.ndarray) -> np.ndarray:
    """(n, 4) LUT codes from the (n, 6) op codes of :func:`lut.nasbench201.encode` (vectorised)."""
    ops = np.asarray(ops, dtype=np.int64)
    out = np.zeros((ops.shape[0], 4), dtype=np.int64)
    out[:, 1] = ops[:, 0]
    out[:, 2] = ops[:, 1] * 5 + ops[:, 2]
    out[:, 3] = (ops[:, 3] * 5 + ops[:, 4]) * 5 + ops[:, 5]
    return out


class NasBench201Space(Space):
    """The NAS-Bench-201 space; see the module docstring."""

    name = "nasbench201"
    default_resolutions = (RESOLUTION,)
    resolutions = (RESOLUTION,)
    enumerable = True
    choice_label = "op codes"

    def check(self, arch: str) -> str:
        """The standard string of ``arch``."""
        return codec.format_arch(codec.parse_arch(arch))

    def sample(self, n: int, rng: np.random.Generator, resolutions: Sequence[int] | None = None) -> list[str]:
        """``n`` uniform architectures (degenerate ones included); the resolution is fixed at 32."""
        self._check_resolutions(resolutions)
        return self.from_choices(rng.integers(0, len(codec.OPS), (n, len(codec.EDGES))))

    @staticmethod
    def _check_resolutions(resolutions: Sequence[int] | None) -> None:
        if resolutions and set(resolutions) != {RESOLUTION}:
            raise ValueError(f"nasbench201 has a fixed input resolution of {RESOLUTION}")

    def choices(self) -> tuple[int, ...]:
        """Six genes, one per cell edge in string order, each an op code of :data:`lut.nasbench201.OPS`."""
        return (len(codec.OPS),) * len(codec.EDGES)

    def to_choices(self, archs: Sequence[str]) -> np.ndarray:
        """The (n, 6) op codes (:func:`lut.nasbench201.encode`)."""
        return codec.encode(archs).astype(np.int64)

    def from_choices(self, codes: np.ndarray) -> list[str]:
        """Architecture strings of (n, 6) op codes."""
        strings = _all_strings()
        return [strings[i] for i in (self.check_choices(codes) @ _RADICES).tolist()]

    def check_choices(self, codes: np.ndarray) -> np.ndarray:
        """(n, 6) op codes as int64; ValueError "nasbench201 op codes must lie in 0..4" otherwise."""
        codes = np.asarray(codes)
        if codes.ndim == 2 and codes.shape[1] == len(codec.EDGES) and codes.size and codes.dtype.kind in "iu" \
                and (codes.min() < 0 or codes.max() >= len(codec.OPS)):
            raise ValueError(f"nasbench201 op codes must lie in 0..{len(codec.OPS) - 1}")
        return super().check_choices(codes)

    def encode_choices(self, codes: np.ndarray) -> np.ndarray:
        """(n, 4) LUT codes of (n, 6) op codes, vectorised (:func:`lut_codes`)."""
        return lut_codes(self.check_choices(codes))

    def arch_text(self, arch: object) -> str:
        """The string of an architecture string or a sequence of 6 edge op names."""
        return arch if isinstance(arch, str) else codec.format_arch(arch)

    def enumerate(self) -> list[str]:
        """All 15,625 architectures (order of :func:`lut.nasbench201.all_archs`)."""
        return list(_all_strings())

    def blocks(self, arch: str) -> list[Signature]:
        """The network's blocks in execution order (cells expanded, Adds included)."""
        ops = codec.parse_arch(arch)
        stem, red1, red2, head = fixed_blocks()
        out = [stem]
        for stage in range(3):
            for _ in range(CELLS_PER_STAGE):
                for node in (1, 2, 3):
                    out += node_terms(ops, node, stage)
            if stage < 2:
                out.append((red1, red2)[stage])
        return out + [head]

    def all_blocks(self, resolutions: Sequence[int] | None = None) -> list[Signature]:
        """The 19 distinct blocks of the space (resolution is fixed at 32)."""
        self._check_resolutions(resolutions)
        ops = [op for op in codec.OPS if op != "none"] + ["Add"]
        return fixed_blocks() + [op_block(op, s) for s in range(3) for op in ops]

    def encode(self, archs: Sequence[str]) -> np.ndarray:
        """(n, 4) LUT codes of architecture strings (see :func:`lut_codes`)."""
        return lut_codes(codec.encode(archs))

    def layout(self) -> Layout:
        """One context; slot j-1 is node j, its code the base-5 number of its incoming ops."""
        terms: list[tuple[int, int, int, str, float]] = [(0, -1, 0, s.key(), 1.0) for s in fixed_blocks()]
        for node in (1, 2, 3):
            incoming = _INCOMING[node - 1]
            for code in range(len(codec.OPS) ** len(incoming)):
                digits = [(code // 5 ** (len(incoming) - 1 - i)) % 5 for i in range(len(incoming))]
                ops = ["none"] * len(codec.EDGES)
                for e, d in zip(incoming, digits):
                    ops[e] = codec.OPS[d]
                for stage in range(3):
                    for sig in node_terms(ops, node, stage):
                        terms.append((0, node - 1, code, sig.key(), float(CELLS_PER_STAGE)))
        return Layout(self.name, 3, N_CODES, (f"r{RESOLUTION}",), tuple(terms))

    def _cell(self, g: builders.Graph, ops: Sequence[str], stage: int, x: str) -> str:
        nodes = [x]
        for node in (1, 2, 3):
            terms = []
            for e in _INCOMING[node - 1]:
                src, op = codec.EDGES[e][0], ops[e]
                if op == "skip_connect":
                    terms.append(nodes[src])
                elif op != "none":
                    terms.append(builders.add_block(g, op_block(op, stage), nodes[src]))
            if not terms:  # no live input: the node is zeros, computed so later ops still run
                value = g.node("Mul", [x, g.const(np.zeros(1), "zero")])
            else:
                value = terms[0]
                for term in terms[1:]:
                    value = g.node("Add", [value, term])
            nodes.append(value)
        return nodes[3]

    kernel_radices = (len(codec.OPS) ** 5, len(codec.OPS) ** 3, 1)
    """Row of an architecture in a kernel table: its LUT codes as one base-5 number (enumeration order)."""

    def kernel_probes(self, archs: Sequence[str]) -> tuple[onnx.ModelProto, list[list[str]]]:
        """One graph holding, per architecture, a lone cell and two cells in a row (stage-0 channels,
        8x8 pixels: shapes do not change the optimiser's rewrites), each on its own input; returns
        it with each architecture's ``[one_cell_output, two_cell_output]``
        (:func:`cost_models.kernels.build`)."""
        g = builders.Graph(builders.seed_of(f"{self.name}:kernel-probes"))
        shape = (1, CHANNELS[0], 8, 8)
        outputs = []
        for i, arch in enumerate(archs):
            ops = codec.parse_arch(arch)
            names = []
            for cells in (1, 2):
                x = g.input(shape, f"a{i}_c{cells}_in")
                for _ in range(cells):
                    x = self._cell(g, ops, 0, x)
                names.append(x)
            outputs.append(names)
        return g.model([(x, shape) for pair in outputs for x in pair], f"{self.name}:kernel-probes"), outputs

    def onnx_model(self, arch: str) -> onnx.ModelProto:
        """The CIFAR network graph: input (1, 3, 32, 32), 10 logits."""
        arch = self.check(arch)
        ops = codec.parse_arch(arch)
        stem, red1, red2, head = fixed_blocks()
        g = builders.Graph(builders.seed_of(f"{self.name}:{arch}"))
        x = builders.add_block(g, stem, g.input((1, 3, RESOLUTION, RESOLUTION)))
        for stage in range(3):
            for _ in range(CELLS_PER_STAGE):
                x = self._cell(g, ops, stage, x)
            if stage < 2:
                x = builders.add_block(g, (red1, red2)[stage], x)
        x = builders.add_block(g, head, x)
        return g.model([(x, (1, CLASSES))], f"{self.name}:{arch}")

    def build_torch(self, arch: str):
        """The PyTorch module of ``arch`` (random init, eval mode)."""
        from torch import nn

        from hwnas.spaces import torch_blocks

        ops = codec.parse_arch(arch)
        stem, red1, red2, head = fixed_blocks()
        layers = [torch_blocks.block(stem)]
        for stage in range(3):
            sigs = {op: op_block(op, stage) for op in codec.OPS if op != "none"}
            layers += [torch_blocks.NasBench201Cell(ops, codec.EDGES, sigs) for _ in range(CELLS_PER_STAGE)]
            if stage < 2:
                layers.append(torch_blocks.block((red1, red2)[stage]))
        layers.append(torch_blocks.block(head))
        return nn.Sequential(*layers).eval()
