"""Accuracy objectives: the protocol and the evaluation cache the search counts its budget in.

MINIMAL VERSION from the ``search-core`` branch (the names of HELPERS.md), so the search can
run before ``search-accuracy`` lands its sources (callable, table + predictor, proxies,
NAS-Bench-201, ``parse_accuracy``); that branch's module replaces this one at merge.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class AccuracyObjective(Protocol):
    """Scores a batch of architectures; higher is better (percent for tables)."""

    name: str
    has_weights: bool

    def evaluate(self, archs: Sequence[str]) -> np.ndarray:
        """Accuracy of each architecture."""

    def details(self, arch: str) -> dict:
        """Extra report fields of one architecture (e.g. ``{"cifar10_test": 93.1}``)."""


class CachedAccuracy:
    """Wraps an :class:`AccuracyObjective`: never evaluates an architecture twice, counts evaluations.

    ``known`` preloads results (a resumed search); they count as evaluations already made.
    """

    def __init__(self, objective: AccuracyObjective, known: Mapping[str, float] | None = None) -> None:
        self.objective = objective
        self.name = objective.name
        self.has_weights = getattr(objective, "has_weights", False)
        self.cache: dict[str, float] = dict(known or {})

    @property
    def evaluations(self) -> int:
        """Distinct architectures evaluated (the search budget spent)."""
        return len(self.cache)

    def evaluate(self, archs: Sequence[str]) -> np.ndarray:
        """Accuracy of each architecture; only those never seen are passed to the objective."""
        new = [a for a in dict.fromkeys(archs) if a not in self.cache]
        if new:
            values = np.asarray(self.objective.evaluate(new), dtype=float).reshape(-1)
            if len(values) != len(new):
                raise ValueError(f"accuracy {self.name}: {len(values)} values for {len(new)} architectures")
            self.cache.update(zip(new, values.tolist()))
        return np.array([self.cache[a] for a in archs], dtype=float)

    def details(self, arch: str) -> dict:
        """The wrapped objective's details of ``arch``."""
        return self.objective.details(arch)
