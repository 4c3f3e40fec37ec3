"""``supernet[:PATH]``: the weight-sharing supernet as an accuracy source of the search.

A subnet's score is its held-out top-1 (percent) on the load_digits digits the
supernet never trained on, with the supernet's weights and BatchNorm recalibrated
for that subnet on training digits (:func:`hwnas.supernet.train.score`).
``PATH`` is a checkpoint folder (:mod:`hwnas.supernet.checkpoint`); without it, the
workspace's supernet (``<workspace>/supernet/digits``), trained first (with a
progress bar) when the workspace has none.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import BadInput
from hwnas.spaces import digits
from hwnas.supernet import checkpoint, train


def default_folder(workspace: str | Path) -> Path:
    """Where a workspace keeps its trained digits supernet."""
    return Path(workspace) / "supernet" / "digits"


def ensure_trained(folder: str | Path, config: train.TrainConfig | None = None, quiet: bool = False) -> Path:
    """``folder`` holding a trained supernet: trained and saved there first (with progress) when absent."""
    folder = Path(folder)
    if (folder / checkpoint.MANIFEST).is_file():
        return folder
    from hwnas.progress import bar

    config = config or train.TrainConfig()
    with bar(config.steps, "training the digits supernet (sandwich rule)", quiet, unit="step") as progress:
        trained = train.train(config, on_step=lambda step, loss: (progress.update(1),
                                                                  progress.set_postfix_str(f"loss {loss:.3f}")))
    return checkpoint.save(trained, folder)


class SupernetAccuracy:
    """Held-out top-1 (percent) of digits subnets with inherited supernet weights."""

    has_weights = True

    def __init__(self, path: str | Path | None, space: Any = None, *, workspace: str | Path = ".hwnas",
                 config: train.TrainConfig | None = None, quiet: bool = False) -> None:
        if space is not None and getattr(space, "name", None) != digits.DigitsSpace.name:
            raise BadInput(f"the supernet accuracy source scores the digits space, not {space.name}; "
                           f"use --space digits")
        self.space = digits.DigitsSpace()
        folder = Path(path) if path else ensure_trained(default_folder(workspace), config, quiet)
        self.checkpoint = checkpoint.load(folder)
        self.name = f"supernet:{folder}"

    def evaluate(self, archs: Sequence[str]) -> np.ndarray:
        """Held-out top-1 (percent) of each architecture."""
        ckpt = self.checkpoint
        out = []
        for arch in archs:
            try:
                a = digits.parse(arch)
            except ValueError as exc:
                raise BadInput(f"accuracy source {self.name}: {exc}") from None
            out.append(train.score(ckpt.net, ckpt.split, a))
        return np.asarray(out, dtype=float)

    def details(self, arch: str) -> dict:
        """How the score was obtained (data, split, held-out count, checkpoint)."""
        d = self.checkpoint.manifest["data"]
        return {"data": "sklearn load_digits, held-out split", "split_seed": d["split_seed"],
                "held_out": len(d["held_out_indices"]), "bn_recalibrated_on": "training digits",
                "checkpoint": str(self.checkpoint.path)}
