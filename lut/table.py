"""Latency lookup tables: per-signature latencies, compiled for fast batched prediction.

A :class:`LatencyTable` maps signature keys to an :class:`Entry` (mean, std in ms,
and how many measurements) for one device + backend; it knows nothing of devices
or stores — callers pass plain ``(key, mean_ms, std_ms, count)`` records.

A search space describes how its encoded architectures map onto keys with a
:class:`Layout`: an encoded architecture is a row of ints ``[context, code_1 ..
code_S]``; the context (e.g. width and resolution) selects a fixed cost, and slot
``s`` with code ``c`` adds the latencies of the terms listed for ``(context, s, c)``.
:meth:`LatencyTable.predictor` compiles a layout into one flat float array, so a
prediction is a gather plus a row sum (millions of architectures per second).

Every block measurement includes the runtime's fixed cost of one inference call;
when the table holds the :data:`BASELINE` entry (an empty one-node model), that
cost is subtracted from every term, so a network is not charged it once per block.
An :class:`Overhead` calibrated on measured whole networks then maps the sum to the
network latency (``a * sum + b``, or ``sum + b``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BASELINE = "Identity-input:1-output:1"
"""Key of the empty model whose latency is the fixed cost of one inference call."""

OVERHEAD_MODES = ("none", "offset", "affine")


@dataclass(frozen=True)
class Entry:
    """The latency of one key: mean and standard deviation in ms, and the number of measurements."""

    mean_ms: float
    std_ms: float
    count: int = 1


@dataclass(frozen=True)
class Layout:
    """How a search space's encoded architectures map onto LUT keys.

    ``terms`` are ``(context, slot, code, key, multiplicity)``; slot ``-1`` is the
    fixed cost of a context. Slots run ``0 .. n_slots-1``, codes ``0 .. n_codes-1``.
    """

    space: str
    n_slots: int
    n_codes: int
    contexts: tuple[str, ...]
    terms: tuple[tuple[int, int, int, str, float], ...]

    def keys(self) -> set[str]:
        """Every key the layout refers to."""
        return {t[3] for t in self.terms}


@dataclass(frozen=True)
class Overhead:
    """Calibration of a LUT sum to whole-network latency: ``a * sum + b`` (ms)."""

    mode: str = "none"
    a: float = 1.0
    b: float = 0.0
    n: int = 0

    def apply(self, sums: np.ndarray) -> np.ndarray:
        """The calibrated latency of raw LUT sums."""
        return sums * self.a + self.b

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"mode": self.mode, "a": self.a, "b": self.b, "n": self.n}


def fit_overhead(sums: Iterable[float], measured: Iterable[float], mode: str = "affine") -> Overhead:
    """Least-squares calibration on whole networks: ``affine`` fits a and b, ``offset`` only b."""
    x = np.asarray(list(sums), dtype=float)
    y = np.asarray(list(measured), dtype=float)
    if mode not in OVERHEAD_MODES:
        raise ValueError(f"unknown overhead mode {mode!r} (known: {', '.join(OVERHEAD_MODES)})")
    if x.shape != y.shape or x.size == 0:
        raise ValueError("calibration needs equal, non-empty lists of LUT sums and measured latencies")
    if mode == "none":
        return Overhead("none", 1.0, 0.0, int(x.size))
    if mode == "offset" or x.size < 2 or np.ptp(x) == 0:
        return Overhead("offset", 1.0, float(np.mean(y - x)), int(x.size))
    a, b = np.polyfit(x, y, 1)
    return Overhead("affine", float(a), float(b), int(x.size))


@dataclass
class LatencyTable:
    """Latency per signature key for one device + backend; ``meta`` holds device, backend, runtime, unit."""

    entries: dict[str, Entry]
    meta: dict[str, Any] = field(default_factory=dict)
    overheads: dict[str, Overhead] = field(default_factory=dict)  # per space

    @classmethod
    def from_records(cls, records: Iterable[tuple[str, float, float, int]], **meta: Any) -> LatencyTable:
        """A table from ``(key, mean_ms, std_ms, count)`` records; a later record of a key wins."""
        entries = {key: Entry(float(mean), float(std), int(count)) for key, mean, std, count in records}
        return cls(entries, {"unit": "ms", **meta})

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __getitem__(self, key: str) -> Entry:
        return self.entries[key]

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys (sorted) that the table has no entry for."""
        return sorted(set(keys) - set(self.entries))

    def lookup(self, keys: Iterable[str]) -> float:
        """Plain sum of the mean latencies of ``keys`` (KeyError on a missing key)."""
        return float(sum(self.entries[k].mean_ms for k in keys))

    def predictor(self, layout: Layout, subtract_baseline: bool = True) -> LutPredictor:
        """A compiled predictor for one space layout, with this table's overhead for that space."""
        baseline = self.entries[BASELINE].mean_ms if subtract_baseline and BASELINE in self.entries else 0.0
        return LutPredictor(self, layout, baseline, self.overheads.get(layout.space, Overhead()))


class LutPredictor:
    """A table compiled for one layout: ``predict(codes)`` is a gather plus a row sum."""

    def __init__(self, table: LatencyTable, layout: Layout, baseline_ms: float = 0.0,
                 overhead: Overhead | None = None) -> None:
        self.layout = layout
        self.baseline_ms = baseline_ms
        self.overhead = overhead or Overhead()
        n_ctx, slots, codes = len(layout.contexts), layout.n_slots, layout.n_codes
        self._stride = slots * codes
        self._offsets = np.arange(slots, dtype=np.int64) * codes
        self.flat = np.zeros(n_ctx * self._stride)
        self.fixed = np.zeros(n_ctx)
        self._missing: dict[tuple[int, int], str] = {}  # (context, flat cell or -1) -> a missing key
        for ctx, slot, code, key, mult in layout.terms:
            entry = table.entries.get(key)
            cell = -1 if slot < 0 else ctx * self._stride + slot * codes + code
            value = math.nan if entry is None else mult * max(entry.mean_ms - baseline_ms, 0.0)
            if entry is None:
                self._missing.setdefault((ctx, cell), key)
            if slot < 0:
                self.fixed[ctx] += value
            else:
                self.flat[cell] += value

    def raw(self, codes: np.ndarray) -> np.ndarray:
        """Uncalibrated LUT sums (ms) of encoded architectures ``codes`` (n, 1 + n_slots) ints."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[1] != self.layout.n_slots + 1:
            raise ValueError(f"{self.layout.space}: encoded architectures must be (n, {self.layout.n_slots + 1}) "
                             f"ints, got shape {codes.shape}")
        ctx = codes[:, 0].astype(np.int64)
        index = codes[:, 1:] + (self._offsets + (ctx * self._stride)[:, None])
        sums = np.take(self.flat, index).sum(axis=1) + self.fixed[ctx]
        if self._missing and np.isnan(sums).any():
            row = int(np.flatnonzero(np.isnan(sums))[0])
            cells = {-1, *(int(c) for c in index[row])}
            key = next(k for (c, cell), k in self._missing.items() if c == ctx[row] and cell in cells)
            raise ValueError(f"the LUT has no entry for {key!r} (context {self.layout.contexts[ctx[row]]}); "
                             "profile the missing blocks first")
        return sums

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """Calibrated latency predictions (ms) of encoded architectures."""
        return self.overhead.apply(self.raw(codes))
