"""Zero-cost accuracy proxies: score an untrained network from one batch of data.

Each proxy ranks architectures without training them (higher is better):

* ``synflow`` — synaptic flow (Tanaka et al. 2020): weights replaced by their absolute
  values, an all-ones input in float64, BatchNorm in eval mode (fresh statistics, so
  close to the identity); the score is ``sum(theta * dR/dtheta)`` over conv and linear
  weights, ``R`` the sum of the outputs. Needs no data.
* ``naswot`` — NASWOT (Mellor et al. 2021): the binary ReLU codes of the batch (input
  > 0 at every ReLU and Hardswish), the kernel ``K = C C^T + (1-C)(1-C)^T`` summed over
  the activations; the score is ``log|det K|``. A singular kernel (codes that cannot
  tell the images apart, e.g. a cell with no path from input to output) scores
  :data:`SINGULAR_SCORE`.
* ``grad_norm`` — the sum over conv/linear weights of the L2 norm of the cross-entropy
  gradient on the batch (Abdelfattah et al. 2021).
* ``snip`` — connection sensitivity (Lee et al. 2019): ``sum |theta * dL/dtheta|``.
* ``params`` — parameters of the PyTorch module, in millions.
* ``flops`` — multiply-accumulates of the network's blocks, in millions
  (:func:`cost_models.features.block_cost` over ``space.blocks(arch)``; no torch).

The data-driven proxies run the network in training mode (BatchNorm on batch
statistics). Weights are initialised under ``torch.manual_seed`` of a seed derived
from the architecture and the objective's seed, inside ``torch.random.fork_rng`` (the
caller's RNG state is untouched), so every score is deterministic.

Data: the user's batch — a ``.npy`` of images ``(N, C, H, W)``, or a ``.npz`` with ``x``
(images) and ``y`` (integer labels, needed by ``grad_norm`` and ``snip``), loaded with
``allow_pickle=False`` — or by default :func:`default_batch`, 16 scikit-learn
``load_digits`` images (fixed indices), normalised to zero mean and unit variance.
Either is resized (bilinear) to each network's input resolution and a one-channel batch
is replicated to the network's channels. torch is imported only when a proxy runs.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import BadInput
from lut.builders import seed_of

PROXIES = ("synflow", "naswot", "grad_norm", "snip", "params", "flops")
"""The proxy names ``proxy:NAME`` accepts."""
NEEDS_LABELS = ("grad_norm", "snip")
SINGULAR_SCORE = -1.0e9
"""NASWOT score of a network whose ReLU-code kernel is singular (below any real log-determinant)."""
DEFAULT_BATCH = 16
DEFAULT_DATA_SEED = 0


@dataclass(frozen=True)
class Batch:
    """One batch of images ``x`` (N, C, H, W float32), optional labels ``y`` (N,), and what it is."""

    x: np.ndarray
    y: np.ndarray | None
    description: str


def default_batch(size: int = DEFAULT_BATCH, seed: int = DEFAULT_DATA_SEED) -> Batch:
    """``size`` load_digits images at fixed indices (a seeded permutation), 1 x 8 x 8, normalised."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    index = np.random.default_rng(seed).permutation(len(digits.images))[:size]
    x = digits.images[index].astype(np.float32)[:, None]
    x = (x - x.mean()) / x.std()
    return Batch(x, digits.target[index].astype(np.int64),
                 f"load_digits default batch ({size} images at seed-{seed} indices, 8x8 upsampled to the "
                 "network's input, replicated to its channels, normalised)")


def load_batch(path: str | Path) -> Batch:
    """The user's batch from a ``.npy`` (images) or ``.npz`` (``x``, optional ``y``); BadInput names the file."""
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                if "x" not in loaded.files:
                    raise BadInput(f"{path}: a .npz batch needs an array 'x' (found: {', '.join(loaded.files)}).")
                x, y = loaded["x"], (loaded["y"] if "y" in loaded.files else None)
        else:
            x, y = loaded, None
    except BadInput:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise BadInput(f"{path}: cannot load the proxy batch ({exc}).") from None
    if x.ndim != 4 or x.shape[0] < 2 or not np.issubdtype(x.dtype, np.number):
        raise BadInput(f"{path}: the proxy batch must be numeric images (N >= 2, C, H, W), got {x.dtype} {x.shape}.")
    if not np.isfinite(x).all():
        raise BadInput(f"{path}: the proxy batch holds NaN or infinite values.")
    if y is not None:
        y = np.asarray(y)
        if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
            raise BadInput(f"{path}: 'y' must hold one non-negative integer label per image, got {y.dtype} {y.shape}.")
        y = y.astype(np.int64)
    n, c, h, w = x.shape
    return Batch(x.astype(np.float32), y, f"user batch {path} ({n} images {c}x{h}x{w})")


def _network_input(batch: Batch, hwc: Sequence[int]):
    """The batch as a torch tensor of the network's (N, C, H, W) input."""
    import torch
    import torch.nn.functional as F

    h, w, c = (int(v) for v in hwc)
    x = torch.from_numpy(batch.x)
    if x.shape[1] not in (1, c):
        raise BadInput(f"the proxy batch has {x.shape[1]} channels, the network takes {c} ({batch.description}).")
    if tuple(x.shape[2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return x.expand(-1, c, -1, -1).contiguous()


def _weights(model) -> list:
    """The weights of the conv and linear layers (what the gradient proxies sum over)."""
    from torch import nn

    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def synflow(model, x) -> float:
    """Synaptic flow of ``model`` on an all-ones input shaped like ``x`` (see the module docstring)."""
    import torch

    model = model.double().eval()
    with torch.no_grad():
        for p in model.state_dict().values():
            p.abs_()
    model.zero_grad()
    model(torch.ones((1, *x.shape[1:]), dtype=torch.float64)).sum().backward()
    return float(sum((w.detach() * w.grad).sum() for w in _weights(model) if w.grad is not None))


def naswot(model, x) -> float:
    """NASWOT log-determinant of the batch's activation-code kernel."""
    import torch
    from torch import nn

    n = x.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64)

    def hook(_module, inputs, _output) -> None:
        codes = (inputs[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.ReLU, nn.Hardswish))]
    try:
        with torch.no_grad():
            model.train()(x)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = np.linalg.slogdet(kernel.numpy())
    return float(logdet) if sign > 0 and math.isfinite(logdet) else SINGULAR_SCORE


def _loss_gradients(model, x, y) -> list:
    import torch.nn.functional as F

    model.train().zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [w for w in _weights(model) if w.grad is not None]


def grad_norm(model, x, y) -> float:
    """Sum of the L2 norms of the conv/linear weight gradients of the cross-entropy loss."""
    return float(sum(w.grad.norm() for w in _loss_gradients(model, x, y)))


def snip(model, x, y) -> float:
    """SNIP connection sensitivity ``sum |theta * dL/dtheta|``."""
    return float(sum((w.detach() * w.grad).abs().sum() for w in _loss_gradients(model, x, y)))


def parameters(model) -> float:
    """Parameters of ``model``, in millions."""
    return sum(p.numel() for p in model.parameters()) / 1e6


def macs(space: Any, arch: str) -> float:
    """Multiply-accumulates of ``arch``'s blocks, in millions (no torch)."""
    from cost_models.features import block_cost

    return float(sum(block_cost(sig)[0] for sig in space.blocks(arch)))


class ProxyAccuracy:
    """A zero-cost proxy as an accuracy objective (``proxy:NAME[:PATH]``); see the module docstring.

    ``data`` is a path to the user's batch, a :class:`Batch`, or None for :func:`default_batch`.
    """

    has_weights = False

    def __init__(self, proxy: str, space: Any, data: str | Path | Batch | None = None, seed: int = 0) -> None:
        if proxy not in PROXIES:
            raise BadInput(f"unknown zero-cost proxy {proxy!r} (known: {', '.join(PROXIES)}).")
        self.proxy = proxy
        self.space = space
        self.seed = seed
        self.batch = data if isinstance(data, Batch) else (load_batch(data) if data is not None else None)
        if self.batch is not None and proxy in NEEDS_LABELS and self.batch.y is None:
            raise BadInput(f"proxy {proxy} needs labels: give a .npz batch with 'x' and 'y' "
                           f"({self.batch.description} has none).")
        self.name = f"proxy:{proxy}" + (f":{data}" if isinstance(data, (str, Path)) else "")

    def _data(self) -> Batch:
        if self.batch is None:
            self.batch = default_batch()
        return self.batch

    def score(self, arch: str) -> float:
        """The proxy's value for one architecture (deterministic)."""
        if self.proxy == "flops":
            return macs(self.space, arch)
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_of(f"proxy-init:{self.seed}:{arch}"))
            model = self.space.build_torch(arch)
        if self.proxy == "params":
            return parameters(model)
        batch = self._data()
        x = _network_input(batch, self.space.blocks(arch)[0].input)
        if self.proxy == "synflow":
            return synflow(model, x)
        if self.proxy == "naswot":
            return naswot(model, x)
        y = torch.from_numpy(batch.y)
        return grad_norm(model, x, y) if self.proxy == "grad_norm" else snip(model, x, y)

    def evaluate(self, archs: Sequence[str]) -> np.ndarray:
        """The proxy's value for each architecture."""
        try:
            canonical = [self.space.check(a) for a in archs]
        except ValueError as exc:
            raise BadInput(f"accuracy source {self.name}: {exc}") from None
        return np.array([self.score(a) for a in canonical], dtype=float)

    def details(self, arch: str) -> dict:
        """Which data the proxy saw (``data``), or that it needs none."""
        if self.proxy in ("params", "flops", "synflow"):
            return {"data": "none (data-free proxy)"}
        return {"data": self._data().description}
