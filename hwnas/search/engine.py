"""The search engine: runs an algorithm step by step, reports, saves and restores its state.

See :mod:`hwnas.search` for the API and the state format.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from hwnas.errors import BadInput
from hwnas.search.accuracy import AccuracyObjective, CachedAccuracy
from hwnas.search.algorithms import ALGORITHMS, Problem
from hwnas.search.latency import LatencyObjective
from hwnas.search.result import Best, Candidate, DeviceResult, SearchResult, pareto_front
from hwnas.spaces import Space
from lut.atomic import write_text_atomic

STATE_VERSION = 1
STATE_FILE = "search-state.json"
STALL_STEPS = 3
"""Steps in a row that find nothing new before a search stops (space exhausted or budget unmeetable)."""


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's BLAS libraries, found once (finding them reads /proc: slow on a loaded machine)."""
    return ThreadpoolController()


def check_budgets(budgets_ms: Sequence[float]) -> list[float]:
    """The budgets as floats; BadInput for one that is not a positive finite number."""
    out = []
    for b in budgets_ms:
        try:
            value = float(b)
        except (TypeError, ValueError):
            raise BadInput(f"latency budget {b!r} is not a number (expected positive milliseconds)") from None
        if not (np.isfinite(value) and value > 0):
            raise BadInput(f"latency budget {b!r} must be a positive number of milliseconds")
        out.append(value)
    return out


class Search:
    """A resumable search: :meth:`step` until :attr:`done`, then :meth:`result`."""

    def __init__(self, space: Space, accuracy: AccuracyObjective | CachedAccuracy,
                 latencies: Mapping[str, LatencyObjective], *, algorithm: str = "nsga2", evaluations: int = 1000,
                 budgets_ms: Sequence[float] = (), seed: int = 0, safety_z: float = 1.0,
                 params: Mapping[str, Any] | None = None) -> None:
        if algorithm not in ALGORITHMS:
            raise BadInput(f"unknown search algorithm {algorithm!r} (known: {', '.join(sorted(ALGORITHMS))})")
        if not isinstance(evaluations, (int, np.integer)) or evaluations < 1:
            raise BadInput(f"the number of accuracy evaluations must be a positive integer, got {evaluations!r}")
        self.space = space
        self.accuracy = accuracy if isinstance(accuracy, CachedAccuracy) else CachedAccuracy(accuracy)
        self.algorithm_name = algorithm
        self.evaluations = int(evaluations)
        self.budgets_ms = check_budgets(budgets_ms)
        self.seed = seed
        self.safety_z = float(safety_z)
        self.params = dict(params or {})
        self.rng = np.random.default_rng(seed)
        self.problem = Problem(space, self.accuracy, latencies)
        self.algorithm = ALGORITHMS[algorithm](self.problem, self.evaluations, self.budgets_ms,
                                               safety_z=self.safety_z, **self.params)
        self.stalled = 0

    @property
    def done(self) -> bool:
        """True when the evaluation budget is spent or nothing new was found for a while."""
        return (self.problem.evaluations >= self.evaluations or self.stalled >= STALL_STEPS
                or self.problem.exhausted())

    def step(self) -> int:
        """One step of the algorithm (on one core); returns the accuracy evaluations it made."""
        if self.done:
            return 0
        with _blas().limit(limits=1, user_api="blas"):  # small linear algebra: threads only contend
            spent = self.algorithm.step(self.rng, self.evaluations - self.problem.evaluations)
        self.stalled = 0 if spent else self.stalled + 1
        return spent

    def run(self, on_progress: Callable[[int, int], None] | None = None,
            state_dir: str | Path | None = None) -> SearchResult:
        """Step until done (saving the state to ``state_dir`` after each step); the result."""
        while not self.done:
            self.step()
            if state_dir is not None:
                self.save(state_dir)
            if on_progress is not None:
                on_progress(self.problem.evaluations, self.evaluations)
        return self.result()

    def extend(self, evaluations: int) -> None:
        """Allow ``evaluations`` more accuracy evaluations (e.g. after a cost-model refit)."""
        self.evaluations += int(evaluations)
        self.algorithm.evaluations = self.evaluations
        self.stalled = 0

    def set_latencies(self, latencies: Mapping[str, LatencyObjective]) -> None:
        """Continue with new latency objectives (a refitted model): archive and population are kept."""
        self.problem.set_latencies(latencies)
        self.stalled = 0

    # ------------------------------------------------------------------ report

    def result(self) -> SearchResult:
        """Per device the front of the whole archive and the best architecture per budget."""
        problem = self.problem
        lat, std = problem.archive_latency()
        devices = {}
        for d, name in enumerate(problem.devices):
            front = [self._candidate(i, lat[d], std[d]) for i in pareto_front(problem.acc, lat[d])]
            devices[name] = DeviceResult(front, [self._best(b, lat[d], std[d]) for b in self.budgets_ms])
        notes = list(self.algorithm.notes)
        if problem.evaluations < self.evaluations and (self.stalled >= STALL_STEPS or problem.exhausted()):
            notes.append(f"stopped after {problem.evaluations} of {self.evaluations} evaluations: no new "
                         "architecture with a finite latency was found")
        return SearchResult(self.space.name, self.algorithm_name, self.seed, problem.evaluations,
                            dict(zip(problem.archs, problem.acc.tolist())), devices, self.accuracy.name,
                            complete=self.done, notes=notes, candidates=problem.candidates, state=self.state())

    def _candidate(self, i: int, lat: np.ndarray, std: np.ndarray) -> Candidate:
        arch = self.problem.archs[i]
        return Candidate(arch, float(self.problem.acc[i]), float(lat[i]), float(std[i]),
                         details=self.accuracy.details(arch))

    def _best(self, budget: float, lat: np.ndarray, std: np.ndarray) -> Best:
        """The most accurate archive member whose latency + safety_z * std meets ``budget``."""
        acc = self.problem.acc
        ok = np.flatnonzero(np.isfinite(acc) & (lat + self.safety_z * std <= budget))
        if ok.size:
            i = ok[np.lexsort((lat[ok], -acc[ok]))[0]]
            c = self._candidate(i, lat, std)
            return Best(budget, c.arch, c.accuracy, c.latency_ms, c.latency_std, details=c.details)
        finite = np.flatnonzero(np.isfinite(lat))
        fastest = self._candidate(finite[np.argmin(lat[finite])], lat, std) if finite.size else None
        return Best(budget, None, None, None, fastest=fastest)

    # ------------------------------------------------------------------- state

    def state(self) -> dict[str, Any]:
        """The JSON state: settings, archive (evaluation order), algorithm state, RNG state."""
        return {"version": STATE_VERSION, "space": self.space.name, "algorithm": self.algorithm_name,
                "seed": self.seed, "evaluations": self.evaluations, "budgets_ms": self.budgets_ms,
                "devices": list(self.problem.devices), "safety_z": self.safety_z, "params": self.params,
                "stalled": self.stalled, "candidates": self.problem.candidates,
                "archive": [[a, None if not np.isfinite(v) else float(v)]
                            for a, v in zip(self.problem.archs, self.problem.acc)],
                "algorithm_state": self.algorithm.state(), "rng": self.rng.bit_generator.state}

    def save(self, state_dir: str | Path) -> Path:
        """Write :meth:`state` to ``state_dir/search-state.json`` atomically."""
        path = Path(state_dir) / STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(self.state(), separators=(",", ":")))
        return path

    @classmethod
    def from_state(cls, state: Mapping[str, Any], space: Space, accuracy: AccuracyObjective | CachedAccuracy,
                   latencies: Mapping[str, LatencyObjective]) -> Search:
        """A search continuing from :meth:`state`: its archive is the cache, nothing is re-evaluated."""
        if state.get("version") != STATE_VERSION or state.get("space") != space.name:
            raise BadInput(f"search state is for space {state.get('space')!r} (version {state.get('version')}), "
                           f"not {space.name!r} (version {STATE_VERSION})")
        cached = accuracy if isinstance(accuracy, CachedAccuracy) else CachedAccuracy(accuracy)
        known = {a: (np.nan if v is None else float(v)) for a, v in state["archive"]}
        for arch in known:
            if arch not in cached.cache:
                cached.cache[arch] = known[arch]
        search = cls(space, cached, latencies, algorithm=state["algorithm"], evaluations=int(state["evaluations"]),
                     budgets_ms=state["budgets_ms"], seed=int(state["seed"]),
                     safety_z=float(state.get("safety_z", 1.0)), params=state.get("params") or {})
        search.algorithm.load_state(state.get("algorithm_state") or {})
        search.rng.bit_generator.state = state["rng"]
        search.stalled = int(state.get("stalled", 0))
        search.problem.candidates = int(state.get("candidates", 0))
        return search

    @classmethod
    def load(cls, state_dir: str | Path, space: Space, accuracy: AccuracyObjective | CachedAccuracy,
             latencies: Mapping[str, LatencyObjective]) -> Search | None:
        """The search saved in ``state_dir`` (None when there is none); BadInput when unreadable."""
        path = Path(state_dir) / STATE_FILE
        if not path.is_file():
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInput(f"{path}: unreadable search state ({exc})") from None
        return cls.from_state(state, space, accuracy, latencies)
