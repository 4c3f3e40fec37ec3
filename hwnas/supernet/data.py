"""The digits data: scikit-learn's ``load_digits`` (1,797 real 8x8 digits, values 0..16), a fixed
seeded held-out split, the preprocessing a model card states, and light augmentation.

Preprocessing (numpy only, so anyone can repeat it from a card): ``x = digit / 16``;
nearest-neighbour upsampling by the integer factor ``r / 8`` (each pixel becomes an
``f x f`` square: ``np.repeat`` along both axes); ``(x - mean) / std`` with the
training images' mean and std; shape ``(n, 1, r, r)`` float32. Labels are the
digits 0..9 in order (logit ``i`` is digit ``i``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

DIGIT_SIZE = 8
MAX_VALUE = 16.0
HELD_OUT_FRACTION = 0.2


@dataclass(frozen=True)
class Split:
    """The digits and which of them train the supernet and which are held out for scoring."""

    images: np.ndarray        # (1797, 8, 8) float64, 0..16
    labels: np.ndarray        # (1797,) int64
    train: np.ndarray         # indices into load_digits(), sorted
    held_out: np.ndarray      # indices into load_digits(), sorted; never seen by training
    seed: int
    mean: float               # of the training images after scaling to 0..1
    std: float

    def data_sha256(self) -> str:
        """sha256 of the images and labels (identifies the data set version)."""
        h = hashlib.sha256(np.ascontiguousarray(self.images, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        return h.hexdigest()


def split(seed: int = 0, held_out_fraction: float = HELD_OUT_FRACTION) -> Split:
    """``load_digits`` split by a seeded permutation into training and held-out indices."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images.astype(np.float64), digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_held = round(held_out_fraction * len(labels))
    held, train = np.sort(order[:n_held]), np.sort(order[n_held:])
    scaled = images[train] / MAX_VALUE
    return Split(images, labels, train, held, seed, float(scaled.mean()), float(scaled.std()))


def preprocess(images: np.ndarray, resolution: int, mean: float, std: float) -> np.ndarray:
    """(n, 8, 8) digits (0..16) as network inputs (n, 1, r, r) float32; see the module docstring."""
    if resolution % DIGIT_SIZE:
        raise ValueError(f"resolution {resolution} is not a multiple of {DIGIT_SIZE}")
    factor = resolution // DIGIT_SIZE
    x = np.repeat(np.repeat(np.asarray(images, dtype=np.float64) / MAX_VALUE, factor, axis=1), factor, axis=2)
    return ((x - mean) / std).astype(np.float32)[:, None, :, :]


def augment(images: np.ndarray, rng: np.random.Generator, max_shift: int = 1) -> np.ndarray:
    """Each (8, 8) digit shifted by up to ``max_shift`` pixels in each direction (zeros fill in)."""
    n = len(images)
    padded = np.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
    dy, dx = rng.integers(0, 2 * max_shift + 1, (2, n))
    rows = dy[:, None] + np.arange(DIGIT_SIZE)[None, :]
    cols = dx[:, None] + np.arange(DIGIT_SIZE)[None, :]
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
