"""Search spaces: enumerate/sample architectures, list their blocks, build and export them.

A space is named (``digits``, ``mbv3``, ``nasbench201``) and implements :class:`Space`.
Architectures are canonical strings (equal networks, equal strings). Every space
offers:

* ``sample(n, rng, resolutions=None)`` — n architectures from a seeded ``numpy.random.Generator``
  (optionally only at some input resolutions, for a profiling sweep);
* ``choices()`` / ``to_choices(archs)`` / ``from_choices(codes)`` — the choice encoding search
  code works on: one integer gene per decision, gene ``j`` in ``0..choices()[j]-1``. Every
  architecture has one canonical code (``to_choices``); several codes may decode to the same
  architecture (e.g. genes of mbv3 blocks a shallow stage does not use);
* ``mutate(arch, rng)`` / ``crossover(a, b, rng)`` — variation operators on strings, and their
  vectorised forms ``mutate_choices`` / ``crossover_choices`` on code arrays (what the search runs);
* ``enumerate()`` — every architecture, for spaces with ``enumerable = True`` (nasbench201);
* ``arch_text(obj)`` — the string of an architecture object (a tuple of edge ops, a dataclass);
* ``blocks(arch)`` — the block :class:`~lut.signature.Signature` list the network is made of;
* ``all_blocks(resolutions)`` — every distinct block the space can use (what a LUT needs);
* ``encode(archs)`` / ``layout(resolutions)`` — the integer encoding and the
  :class:`~lut.table.Layout` that ``LatencyTable.predictor`` compiles (vectorised LUT queries);
* ``build_torch(arch)`` — the PyTorch module (random init, eval mode);
* ``onnx_model(arch)`` / ``export_onnx(arch, path)`` — the inference graph, written with the
  same block builders as the LUT's one-block models (BatchNorm folded, seeded random weights).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from hwnas.errors import BadInput
from lut import builders
from lut.signature import Signature
from lut.table import Layout


class Space(ABC):
    """A search space of networks built from LUT blocks."""

    name: str
    default_resolutions: tuple[int, ...]
    resolutions: tuple[int, ...]
    enumerable: bool = False
    """True when :meth:`enumerate` lists the whole space."""
    dataset: str | None = None
    """The real data set the space's networks classify (the zoo then states how to feed a sample);
    None when there is none."""
    choice_label: str = "choice codes"
    """What the space calls a row of its choice encoding (in error messages)."""
    kernel_radices: tuple[int, ...] | None = None
    """Set by spaces whose architectures can be enumerated for a kernel table (with
    :meth:`kernel_probes`): an architecture's row is ``codes[:, 1:] @ kernel_radices``."""

    def kernel_probes(self, archs: Sequence[str]) -> tuple[onnx.ModelProto, list[list[str]]]:
        """Probe graphs for :func:`cost_models.kernels.build`; only spaces with ``kernel_radices``."""
        raise NotImplementedError(f"space {self.name} has no kernel probes")

    @abstractmethod
    def sample(self, n: int, rng: np.random.Generator, resolutions: Sequence[int] | None = None) -> list[str]:
        """``n`` architectures drawn uniformly (with replacement) using ``rng``, optionally only at
        the given input ``resolutions`` (ValueError for one the space does not have)."""

    @abstractmethod
    def choices(self) -> tuple[int, ...]:
        """The number of options of each decision (gene) of the choice encoding."""

    @abstractmethod
    def to_choices(self, archs: Sequence[str]) -> np.ndarray:
        """The canonical ``(n, len(choices()))`` int64 choice codes of architecture strings."""

    @abstractmethod
    def from_choices(self, codes: np.ndarray) -> list[str]:
        """The canonical architecture strings of choice codes (ValueError when out of range)."""

    def check_choices(self, codes: np.ndarray) -> np.ndarray:
        """``codes`` as an int64 ``(n, genes)`` array; ValueError when a gene is out of its range."""
        counts = np.asarray(self.choices())
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != len(counts) or (codes.size and codes.dtype.kind not in "iu"):
            raise ValueError(f"{self.name} {self.choice_label} must be an (n, {len(counts)}) int array, "
                             f"got {codes.dtype} of shape {codes.shape}")
        codes = codes.astype(np.int64)
        bad = (codes < 0) | (codes >= counts)
        if bad.any():
            row, gene = map(int, np.argwhere(bad)[0])
            raise ValueError(f"{self.name} {self.choice_label}: gene {gene} of row {row} is {codes[row, gene]}, "
                             f"must lie in 0..{counts[gene] - 1}")
        return codes

    def encode_choices(self, codes: np.ndarray) -> np.ndarray:
        """The layout encoding (:meth:`encode`) of choice codes."""
        return self.encode(self.from_choices(codes))

    def mutate_choices(self, codes: np.ndarray, rng: np.random.Generator, rate: float | None = None) -> np.ndarray:
        """Mutants of each row: every gene is redrawn to another option with probability ``rate``
        (default 1/genes), and at least one gene of every row changes."""
        counts = np.asarray(self.choices())
        codes = np.array(codes, dtype=np.int64, copy=True)
        n, genes = codes.shape
        free = np.flatnonzero(counts > 1)
        if n == 0 or free.size == 0:
            return codes
        rate = 1.0 / free.size if rate is None else rate
        flip = np.zeros((n, genes), dtype=bool)
        flip[:, free] = rng.random((n, free.size)) < rate
        flip[np.arange(n), free[rng.integers(0, free.size, n)]] = True
        shift = 1 + (rng.random((n, genes)) * np.maximum(counts - 1, 1)).astype(np.int64)  # never 0: a new option
        return np.where(flip, (codes + shift) % counts, codes)

    def crossover_choices(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Uniform crossover: each gene of a child comes from ``a`` or ``b`` with equal odds."""
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        return np.where(rng.random(a.shape) < 0.5, a, b)

    def mutate(self, arch: str, rng: np.random.Generator) -> str:
        """A mutant of ``arch`` (see :meth:`mutate_choices`)."""
        return self.from_choices(self.mutate_choices(self.to_choices([arch]), rng))[0]

    def crossover(self, a: str, b: str, rng: np.random.Generator) -> str:
        """A child of ``a`` and ``b`` (see :meth:`crossover_choices`)."""
        return self.from_choices(self.crossover_choices(self.to_choices([a]), self.to_choices([b]), rng))[0]

    def enumerate(self) -> list[str]:
        """Every architecture of the space (only when ``enumerable``)."""
        raise NotImplementedError(f"space {self.name} cannot be enumerated")

    def arch_text(self, arch: object) -> str:
        """The architecture string of an architecture object (ValueError when it is not one)."""
        return arch if isinstance(arch, str) else str(arch)

    @abstractmethod
    def check(self, arch: str) -> str:
        """The canonical form of ``arch``; ValueError names what is wrong."""

    @abstractmethod
    def blocks(self, arch: str) -> list[Signature]:
        """The blocks of the network, in order (repeated blocks repeated)."""

    @abstractmethod
    def all_blocks(self, resolutions: Sequence[int] | None = None) -> list[Signature]:
        """Every distinct block the space uses at the given input resolutions (default: the space's)."""

    @abstractmethod
    def encode(self, archs: Sequence[str]) -> np.ndarray:
        """The (n, 1 + n_slots) int encoding of architectures that :meth:`layout` describes."""

    @abstractmethod
    def layout(self) -> Layout:
        """How encoded architectures map onto LUT keys."""

    @abstractmethod
    def onnx_model(self, arch: str) -> onnx.ModelProto:
        """The network's inference graph (batch 1, seeded random weights), checked."""

    @abstractmethod
    def build_torch(self, arch: str):  # -> torch.nn.Module (torch imported lazily)
        """The PyTorch module of the network (random init, eval mode)."""

    def export_onnx(self, arch: str, path: str | Path) -> Path:
        """Write the network's ONNX graph to ``path`` (atomically) unless already there; returns it."""
        path = Path(path)
        if not path.is_file():
            builders.save(self.onnx_model(arch), path)
        return path


def _registry() -> dict[str, type[Space]]:
    from hwnas.spaces.digits import DigitsSpace
    from hwnas.spaces.mbv3 import MobileNetV3Space
    from hwnas.spaces.nasbench201 import NasBench201Space

    return {"digits": DigitsSpace, "mbv3": MobileNetV3Space, "nasbench201": NasBench201Space}


def names() -> list[str]:
    """Names of the registered spaces."""
    return sorted(_registry())


def get(name: str) -> Space:
    """The space called ``name``; BadInput lists the known ones."""
    spaces = _registry()
    if name not in spaces:
        raise BadInput(f"unknown search space {name!r} (known: {', '.join(sorted(spaces))})")
    return spaces[name]()
