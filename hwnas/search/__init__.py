"""Hardware-aware architecture search: which network is the most accurate that runs within X ms?

The API (the ``hwnas search`` command is built on it)::

    from hwnas import spaces
    from hwnas.search import run_search
    from hwnas.search.latency import CostModelLatency, TableLatency

    space = spaces.get("nasbench201")
    latencies = {"local": CostModelLatency.load("local", "nasbench201"),
                 "rpi4": TableLatency.from_csv("rpi4.csv", space)}
    result = run_search(space, accuracy, latencies, algorithm="nsga2", evaluations=1000,
                        budgets_ms=(5, 10), seed=0)
    result.devices["local"].front      # [Candidate(arch, accuracy, latency_ms, latency_std, ...)], fastest first
    result.devices["local"].best       # [Best(budget_ms, arch | None, accuracy, latency_ms, ..., fastest)]
    result.to_json()                   # DESIGN.md's `search --json` object

Pieces (problem apart from algorithm):

* a space (:mod:`hwnas.spaces`: sampling, choice encoding, mutation, crossover);
* an accuracy objective (:mod:`hwnas.search.accuracy`), wrapped in ``CachedAccuracy``: the
  budget ``evaluations`` counts distinct architectures evaluated, shared by all devices;
* one latency objective per device (:mod:`hwnas.search.latency`); predictions are free;
* an algorithm (:mod:`hwnas.search.algorithms`): ``random`` (the baseline), ``evolution``
  (constrained regularised evolution, one budget after another) or ``nsga2`` (the front).

Reporting. Per device, the front is the set of non-dominated architectures of the WHOLE archive
(accuracy as evaluated, latency as predicted, fastest first). The best per budget is the most
accurate archive member with
``latency_ms + safety_z * latency_std <= budget`` (default ``safety_z = 1``: a predicted
latency is trusted only up to one std; exact sources have std 0). A budget nothing meets gives
``Best(arch=None, fastest=<the fastest architecture evaluated>)``, never an error, and in
bounded time (every sampling loop has a fixed number of rounds; a search that finds nothing new
for :data:`engine.STALL_STEPS` steps stops and says so in ``notes``).

State (resume, hardware in the loop). :class:`Search` is the step-wise form of
:func:`run_search`: ``step()`` spends at most one generation of evaluations, ``done`` says when
the budget is spent, ``state()`` is JSON — settings, the archive ``[[arch, accuracy], ...]``
in evaluation order, the algorithm's population/counters, and the ``numpy`` bit-generator
state — and ``Search.from_state(state, space, accuracy, latencies)`` continues exactly where it
stopped (an uninterrupted and a resumed run give the same archive, bit for bit).
``run_search(..., state_dir=DIR)`` saves ``DIR/search-state.json`` atomically after every step
and resumes from it when present. To go on "from the population" after a cost-model refit,
either keep the ``Search`` and call ``set_latencies(new)`` + ``extend(n)`` + ``run()``, or call
``run_search(..., initial=previous_result, evaluations=previous.evaluations + n)`` with the new
latency objectives: the archive is reused (never re-evaluated, still counted), the population
and RNG continue, and fronts/bests are recomputed with the new predictions.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hwnas.search.accuracy import AccuracyObjective, CachedAccuracy
from hwnas.search.algorithms import ALGORITHMS
from hwnas.search.engine import Search, check_budgets
from hwnas.search.latency import LatencyObjective
from hwnas.search.result import Best, Candidate, DeviceResult, SearchResult
from hwnas.spaces import Space

__all__ = ["ALGORITHMS", "Best", "CachedAccuracy", "Candidate", "DeviceResult", "Search", "SearchResult",
           "check_budgets", "run_search"]


def run_search(space: Space, accuracy: AccuracyObjective | CachedAccuracy,
               latencies: Mapping[str, LatencyObjective], *, algorithm: str = "nsga2", evaluations: int = 1000,
               budgets_ms: Sequence[float] = (), seed: int = 0, state_dir: str | Path | None = None,
               on_progress: Callable[[int, int], None] | None = None,
               initial: SearchResult | Mapping[str, Any] | None = None,
               safety_z: float = 1.0, params: Mapping[str, Any] | None = None) -> SearchResult:
    """Search ``space`` for the accuracy–latency front of each device and the best per budget.

    ``evaluations`` is the total accuracy budget (a resumed or continued search counts what it
    already evaluated). ``state_dir`` makes the search resumable; ``initial`` (a previous
    :class:`SearchResult` or its ``state``) continues a search with possibly new latency
    objectives; ``on_progress(done, total)`` is called after every step; ``params`` go to the
    algorithm (e.g. ``{"population": 100}``). Deterministic for a given ``seed``.
    """
    search = Search.load(state_dir, space, accuracy, latencies) if state_dir is not None else None
    if search is None and initial is not None:
        state = dict(initial.state if isinstance(initial, SearchResult) else initial)
        search = Search.from_state(state, space, accuracy, latencies)
        search.extend(evaluations - search.evaluations)
    if search is None:
        search = Search(space, accuracy, latencies, algorithm=algorithm, evaluations=evaluations,
                        budgets_ms=budgets_ms, seed=seed, safety_z=safety_z, params=params)
    return search.run(on_progress=on_progress, state_dir=state_dir)
