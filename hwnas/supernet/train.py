"""Training the digits supernet with the sandwich rule, and scoring subnets on held-out digits.

Each step trains, on one augmented batch, the largest subnet, the smallest and
``n_random`` uniformly drawn ones (each at its own input resolution), summing
their gradients before one optimiser step (the sandwich rule of BigNAS / OFA's
progressive shrinking in one phase). The smaller subnets also learn from the
largest one's softened predictions (in-place distillation, weight ``distill``).
Adam with a cosine learning-rate schedule; seeded ``numpy.random.Generator`` for
batches, augmentation and subnets, and a seeded torch generator for the initial
weights, so a configuration trains the same network on the same machine.

:func:`score` is what an accuracy objective reports: BatchNorm recalibrated for
the subnet on the training images, then top-1 (percent) on the held-out digits.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.spaces import digits
from hwnas.spaces.digits import Arch
from hwnas.supernet import data
from hwnas.supernet.model import Supernet, recalibrate, sample_archs


@dataclass(frozen=True)
class TrainConfig:
    """Supernet training settings (the defaults train in about 4.5 minutes on one core of the 2-core machine;
    600 steps of 6 subnets ranked subnets better than 300 of 4 or 900 of 4 in bench/supernet_ranking.py)."""

    steps: int = 600
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    n_random: int = 4
    distill: float = 1.0
    seed: int = 0
    split_seed: int = 0
    threads: int = 1
    """torch intra-op threads: one is several times faster than two on a loaded 2-core machine."""

    def to_dict(self) -> dict:
        """The settings as JSON-able dict."""
        return asdict(self)


@dataclass
class Trained:
    """A trained supernet with its data split and how training went."""

    net: Supernet
    split: data.Split
    config: TrainConfig
    seconds: float
    loadavg_before: tuple[float, float, float]
    loadavg_after: tuple[float, float, float]


def inputs(split: data.Split, indices: np.ndarray, resolution: int, images: np.ndarray | None = None) -> torch.Tensor:
    """Preprocessed digits ``indices`` (or given 8x8 ``images``) at ``resolution`` as a torch tensor."""
    raw = split.images[indices] if images is None else images
    return torch.from_numpy(data.preprocess(raw, resolution, split.mean, split.std))


def train(config: TrainConfig = TrainConfig(), on_step: Callable[[int, float], None] | None = None) -> Trained:
    """Train a supernet on the training digits of ``config.split_seed``'s split."""
    torch.set_num_threads(config.threads)
    split = data.split(config.split_seed)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)  # initial weights; torch has no Generator argument for nn.init
    net = Supernet()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    labels = torch.from_numpy(split.labels)
    load_before, start = _loadavg(), time.perf_counter()
    net.train()
    for step in range(config.steps):
        batch = rng.choice(split.train, config.batch, replace=False)
        raw = data.augment(split.images[batch], rng)
        y = labels[batch]
        opt.zero_grad(set_to_none=True)
        archs = [digits.LARGEST, digits.SMALLEST, *sample_archs(rng, config.n_random)]
        teacher = None
        total = 0.0
        for i, arch in enumerate(archs):
            logits = net(inputs(split, batch, arch.resolution, raw), arch)
            loss = F.cross_entropy(logits, y)
            if i == 0:
                teacher = F.softmax(logits.detach(), dim=1)
            elif config.distill:
                loss = loss + config.distill * F.kl_div(F.log_softmax(logits, 1), teacher, reduction="batchmean")
            loss.backward()
            total += float(loss.detach())
        opt.step()
        sched.step()
        if on_step:
            on_step(step + 1, total / len(archs))
    net.eval()
    return Trained(net, split, config, time.perf_counter() - start, load_before, _loadavg())


RECAL_IMAGES = 512
"""Training digits (the first of the training indices) BatchNorm is recalibrated on, per subnet."""


def prepare(net: Supernet, split: data.Split, arch: Arch) -> None:
    """Recalibrate the BatchNorm statistics of subnet ``arch`` on :data:`RECAL_IMAGES` training digits."""
    recalibrate(net, arch, inputs(split, split.train[:RECAL_IMAGES], arch.resolution))


@torch.no_grad()
def score(net: Supernet, split: data.Split, arch: Arch) -> float:
    """Held-out top-1 (percent) of subnet ``arch`` after recalibrating BatchNorm on training digits."""
    prepare(net, split, arch)
    logits = net(inputs(split, split.held_out, arch.resolution), arch)
    return 100.0 * float((logits.argmax(1).numpy() == split.labels[split.held_out]).mean())


def _loadavg() -> tuple[float, float, float]:
    import os

    return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]


def train_alone(arch: Arch, config: TrainConfig = TrainConfig()) -> tuple[float, float]:
    """Train subnet ``arch`` alone from scratch (its static module, same data, augmentation, optimiser and
    steps as the supernet); returns (held-out top-1 percent, seconds). The baseline of the ranking bench."""
    torch.set_num_threads(config.threads)
    split = data.split(config.split_seed)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    net = digits.DigitsSpace().build_torch(str(arch)).train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    labels = torch.from_numpy(split.labels)
    start = time.perf_counter()
    for _ in range(config.steps):
        batch = rng.choice(split.train, config.batch, replace=False)
        x = inputs(split, batch, arch.resolution, data.augment(split.images[batch], rng))
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), labels[batch]).backward()
        opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        logits = net(inputs(split, split.held_out, arch.resolution))
    top1 = 100.0 * float((logits.argmax(1).numpy() == split.labels[split.held_out]).mean())
    return top1, time.perf_counter() - start
