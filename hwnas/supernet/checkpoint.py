"""Saving and loading a trained supernet without pickle: weights + a JSON manifest.

A checkpoint is a folder:

* ``weights.pt`` — the state dict (tensors only), read back with ``torch.load(weights_only=True)``;
* ``manifest.json`` — format version, hwnas and torch versions, the space and its
  configuration, the training settings and time (with the machine's load), the
  data split (seed, held-out indices, mean/std), the data set's sha256 and the
  weights file's sha256 (checked on load).

Both are written atomically (temporary file, fsync, rename); the manifest last,
so a folder with a manifest always has the weights it names.
"""
from __future__ import annotations

import hashlib
import io
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hwnas.errors import BadInput
from hwnas.spaces import digits
from hwnas.supernet import data
from hwnas.supernet.model import Supernet
from hwnas.supernet.train import TrainConfig, Trained
from lut.atomic import write_bytes_atomic, write_text_atomic

FORMAT = 1
WEIGHTS, MANIFEST = "weights.pt", "manifest.json"


def hwnas_version() -> str:
    """The installed hwnas version (``0+unknown`` when not installed)."""
    from importlib import metadata

    try:
        return metadata.version("hwnas")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def space_config() -> dict[str, Any]:
    """The digits space's definition (a checkpoint only fits the space it was trained for)."""
    names = ("KERNELS", "EXPANDS", "DEPTHS", "WIDTHS", "RESOLUTIONS", "STAGE_BASE", "STAGE_STRIDE", "STAGE_ACT",
             "STAGE_SE", "STEM_BASE", "FINAL_EXPAND_BASE", "LAST_BASE", "CLASSES", "IN_CHANNELS")
    return {"name": digits.DigitsSpace.name, **{n.lower(): list(getattr(digits, n)) if isinstance(
        getattr(digits, n), tuple) else getattr(digits, n) for n in names}}


@dataclass
class Checkpoint:
    """A loaded supernet (eval mode), its data split and its manifest."""

    net: Supernet
    split: data.Split
    manifest: dict[str, Any]
    path: Path


def save(trained: Trained, folder: str | Path) -> Path:
    """Write ``trained`` to ``folder`` (weights, then manifest); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(trained.net.state_dict(), buf)
    raw = buf.getvalue()
    write_bytes_atomic(folder / WEIGHTS, raw)
    split = trained.split
    manifest = {
        "format": FORMAT, "kind": "hwnas-supernet", "hwnas_version": hwnas_version(),
        "torch_version": torch.__version__, "python": platform.python_version(),
        "space": space_config(), "train": trained.config.to_dict(),
        "training_seconds": round(trained.seconds, 2),
        "loadavg_before": list(trained.loadavg_before), "loadavg_after": list(trained.loadavg_after),
        "data": {"source": "sklearn.datasets.load_digits", "sha256": split.data_sha256(),
                 "split_seed": split.seed, "mean": split.mean, "std": split.std,
                 "held_out_indices": split.held_out.tolist(), "n_train": len(split.train)},
        "weights_sha256": hashlib.sha256(raw).hexdigest(),
    }
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=1))
    return folder


def load(folder: str | Path) -> Checkpoint:
    """Load a checkpoint folder; BadInput names what does not fit (format, space, data, weights)."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"{folder / MANIFEST}: not a readable supernet manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "hwnas-supernet" or manifest.get("format") != FORMAT:
        raise BadInput(f"{folder / MANIFEST}: not a supernet checkpoint of format {FORMAT}")
    if manifest.get("space") != space_config():
        raise BadInput(f"{folder / MANIFEST}: trained for a different digits space definition; retrain it")
    raw = _read(folder / WEIGHTS)
    if hashlib.sha256(raw).hexdigest() != manifest.get("weights_sha256"):
        raise BadInput(f"{folder / WEIGHTS}: sha256 differs from the manifest's (incomplete or replaced file)")
    d = manifest["data"]
    split = data.split(int(d["split_seed"]))
    if split.data_sha256() != d["sha256"] or split.held_out.tolist() != d["held_out_indices"]:
        raise BadInput(f"{folder / MANIFEST}: this scikit-learn's load_digits differs from the training data")
    split = data.Split(split.images, split.labels, split.train, split.held_out, split.seed, d["mean"], d["std"])
    net = Supernet()
    try:
        net.load_state_dict(torch.load(io.BytesIO(raw), weights_only=True))
    except (RuntimeError, ValueError) as exc:
        raise BadInput(f"{folder / WEIGHTS}: weights do not fit the supernet ({exc})") from None
    torch.set_num_threads(int(manifest["train"].get("threads", 1)))
    return Checkpoint(net.eval(), split, manifest, folder)


def train_config(manifest: dict[str, Any]) -> TrainConfig:
    """The training settings recorded in a manifest."""
    return TrainConfig(**manifest["train"])


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read supernet weights ({exc.strerror})") from None
