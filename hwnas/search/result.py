"""What a search reports: per device its accuracy–latency front and its best architecture per budget.

The front is built from the WHOLE archive (every architecture evaluated), never from the last
population. :func:`pareto_front` and :func:`hypervolume` are the 2-D helpers the search and
the benches share.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class Candidate:
    """An evaluated architecture on one device: its accuracy and predicted latency (± std, ms)."""

    arch: str
    accuracy: float
    latency_ms: float
    latency_std: float = 0.0
    measured_ms: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of DESIGN.md's ``search --json`` front entries (plus std and details)."""
        out = asdict(self)
        out.update(out.pop("details"))
        return out


@dataclass
class Best:
    """The most accurate evaluated architecture whose predicted latency (plus the safety margin)
    meets ``budget_ms``; ``arch`` is None when none does, and ``fastest`` is then the fastest found."""

    budget_ms: float
    arch: str | None
    accuracy: float | None
    latency_ms: float | None
    latency_std: float | None = None
    measured_ms: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    fastest: Candidate | None = None

    @property
    def met(self) -> bool:
        """True when an architecture meets the budget."""
        return self.arch is not None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of DESIGN.md's ``search --json`` best entries (plus ``met``, ``fastest``)."""
        out = {"budget_ms": self.budget_ms, "arch": self.arch, "accuracy": self.accuracy,
               "latency_ms": self.latency_ms, "latency_std": self.latency_std, "measured_ms": self.measured_ms,
               "met": self.met, **self.details}
        out["fastest"] = self.fastest.to_json() if self.fastest is not None else None
        return out


@dataclass
class DeviceResult:
    """One device's front (fastest first) and best architecture per budget (budget order)."""

    front: list[Candidate]
    best: list[Best]


@dataclass
class SearchResult:
    """The outcome of :func:`hwnas.search.run_search`."""

    space: str
    algorithm: str
    seed: int
    evaluations: int
    archive: dict[str, float]
    devices: dict[str, DeviceResult]
    accuracy_source: str = ""
    complete: bool = True
    notes: list[str] = field(default_factory=list)
    candidates: int = 0
    """Candidates proposed and screened by predicted latency (not counted as evaluations)."""
    state: dict[str, Any] | None = field(default=None, repr=False)
    """The search state at the end (:meth:`hwnas.search.Search.state`): pass the result as
    ``run_search(..., initial=result)`` to go on from it."""

    def to_json(self) -> dict[str, Any]:
        """DESIGN.md's ``search --json`` object (``devices`` a list; more keys: accuracy source, notes)."""
        return {"space": self.space, "algorithm": self.algorithm, "seed": self.seed,
                "evaluations": self.evaluations, "accuracy_source": self.accuracy_source,
                "complete": self.complete, "notes": list(self.notes), "candidates": self.candidates,
                "devices": [{"device": name, "front": [c.to_json() for c in dev.front],
                             "best": [b.to_json() for b in dev.best]} for name, dev in self.devices.items()]}


LATENCY_DIGITS = 12
"""Latencies equal to this many significant digits tie on the front: a cost model's batched
predictions can differ in the last bits with the batch they were computed in, and a one-ulp
"faster" point must not join the front in one run and not in a resumed one."""


def significant(values: np.ndarray, digits: int = LATENCY_DIGITS) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (zeros and non-finite values kept)."""
    x = np.asarray(values, dtype=float)
    magnitude = np.floor(np.log10(np.abs(np.where(np.isfinite(x) & (x != 0), x, 1.0))))
    scale = 10.0 ** (digits - 1 - magnitude)
    return np.where(np.isfinite(x), np.round(x * scale) / scale, x)


def pareto_front(accuracy: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (max accuracy, min latency), fastest first; latencies equal
    to :data:`LATENCY_DIGITS` significant digits tie; a point with NaN accuracy or latency is never on
    the front."""
    acc, lat = np.asarray(accuracy, dtype=float), significant(latency)
    ok = np.flatnonzero(np.isfinite(acc) & np.isfinite(lat))
    keep: list[int] = []
    best = -np.inf
    for i in ok[np.lexsort((-acc[ok], lat[ok]))]:      # by latency, the most accurate first on ties
        if acc[i] > best:
            keep.append(int(i))
            best = acc[i]
    return np.array(keep, dtype=np.int64)


def hypervolume(accuracy: np.ndarray, latency: np.ndarray, acc_range: tuple[float, float],
                lat_range: tuple[float, float]) -> float:
    """Dominated area of the points, both axes normalised to [0, 1] by the given (worst, best)
    ranges: latency (min, max) -> 0..1 (0 best), accuracy (min, max) -> 0..1 (1 best); reference
    point at the worst latency and worst accuracy; points outside the box are clipped into it."""
    acc, lat = np.asarray(accuracy, dtype=float), np.asarray(latency, dtype=float)
    ok = np.isfinite(acc) & np.isfinite(lat)
    a = np.clip((acc[ok] - acc_range[0]) / (acc_range[1] - acc_range[0]), 0.0, 1.0)
    t = np.clip((lat[ok] - lat_range[0]) / (lat_range[1] - lat_range[0]), 0.0, 1.0)
    order = np.lexsort((-a, t))
    area, best = 0.0, 0.0
    for i in order:                       # sweep by latency: each point adds its accuracy gain times its slack
        if a[i] > best:
            area += (a[i] - best) * (1.0 - t[i])
            best = a[i]
    return float(area)
