"""Search spaces: enumerate/sample architectures, list their blocks, build and export them.

A space is named (``mbv3``, ``nasbench201``) and implements :class:`Space`.
Architectures are canonical strings (equal networks, equal strings). Every space
offers:

* ``sample(n, rng)`` — n architectures from a seeded ``numpy.random.Generator``;
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
    kernel_radices: tuple[int, ...] | None = None
    """Set by spaces whose architectures can be enumerated for a kernel table (with
    :meth:`kernel_probes`): an architecture's row is ``codes[:, 1:] @ kernel_radices``."""

    def kernel_probes(self, archs: Sequence[str]) -> tuple[onnx.ModelProto, list[list[str]]]:
        """Probe graphs for :func:`cost_models.kernels.build`; only spaces with ``kernel_radices``."""
        raise NotImplementedError(f"space {self.name} has no kernel probes")

    @abstractmethod
    def sample(self, n: int, rng: np.random.Generator) -> list[str]:
        """``n`` architectures drawn uniformly (with replacement) using ``rng``."""

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
    from hwnas.spaces.mbv3 import MobileNetV3Space
    from hwnas.spaces.nasbench201 import NasBench201Space

    return {"mbv3": MobileNetV3Space, "nasbench201": NasBench201Space}


def names() -> list[str]:
    """Names of the registered spaces."""
    return sorted(_registry())


def get(name: str) -> Space:
    """The space called ``name``; BadInput lists the known ones."""
    spaces = _registry()
    if name not in spaces:
        raise BadInput(f"unknown search space {name!r} (known: {', '.join(sorted(spaces))})")
    return spaces[name]()
