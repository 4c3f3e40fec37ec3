"""Search algorithms, apart from the problem they solve (pymoo style).

A :class:`Problem` is a space (its choice encoding), a cached accuracy objective and one
latency objective per device; it keeps the *archive* of every evaluated architecture. An
:class:`Algorithm` knows only choice codes, populations and ranks: each :meth:`Algorithm.step`
proposes architectures, spends at most ``remaining`` accuracy evaluations through
``problem.evaluate`` and updates its population.

Latency predictions are cheap and not counted; accuracy evaluations are the budget. The
evolutionary algorithms exploit that: each step breeds a large pool of candidates by mutation
and crossover, drops those already evaluated or with no finite latency, and spends
evaluations only on the most promising ones, ranked by a :class:`Surrogate` of accuracy
fitted on the archive (ridge regression on one-hot genes and their pairs) — "kriging
believer" style for a front (each pick is assumed to score its prediction, so the next pick
goes elsewhere on the front; a candidate counts at predicted latency − ``optimism_z`` std, as
it may be non-dominated within the latency model's uncertainty), highest prediction for a
budget. A share of every batch is drawn at random from the pool, so a wrong surrogate cannot
lock the search in. Where exact latencies tie massively (whole-millisecond tables) and the space
is small, NSGA-II screens the whole space every generation (:meth:`Problem.tied_universe`).

* :class:`RandomSearch` — uniform samples (the baseline, always worth reporting).
* :class:`ConstrainedEvolution` — Once-for-All's evolution finder under a latency budget
  (population 100, parent ratio 0.25, mutation ratio 0.5), one budget after another, each
  given an equal share of the evaluations; the budgets are the user's plus latencies spread
  over the space's range, so its archive also yields a front. A budget nothing is predicted
  to meet ends after a bounded number of sampling rounds (reported, never a hang).
* :class:`NSGA2` — non-dominated sorting with crowding distance (Deb et al. 2002) on
  (accuracy, latency on each device); offspring screened as above.

Everything random comes from the ``numpy.random.Generator`` passed to ``step``; the same
seed gives the same archive, bit for bit. ``state()`` / ``load_state()`` give the
algorithm's population and counters as JSON (the engine adds the archive and RNG state).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hwnas.search.accuracy import CachedAccuracy
from hwnas.search.latency import LatencyObjective
from hwnas.search.result import pareto_front
from hwnas.spaces import Space

SAMPLING_ROUNDS = 20
"""How many rounds of candidate breeding/sampling a step tries before it gives up (bounded time)."""
UNIVERSE_MAX = 20_000
"""Largest set of drawable architectures screened whole every generation (NAS-Bench-201's 15,625)."""


class Problem:
    """A space, a cached accuracy and per-device latency objectives, with the archive of evaluations."""

    def __init__(self, space: Space, accuracy: CachedAccuracy, latencies: Mapping[str, LatencyObjective]) -> None:
        self.space = space
        self.accuracy = accuracy
        self.counts = np.asarray(space.choices(), dtype=np.int64)
        self.archs: list[str] = []
        self.acc = np.zeros(0)
        self.codes = np.zeros((0, len(self.counts)), dtype=np.int64)
        self.index: dict[str, int] = {}
        self.candidates = 0
        """Candidates proposed to :meth:`screen` so far (free: not accuracy evaluations)."""
        self.set_latencies(latencies)
        if accuracy.cache:
            known = list(accuracy.cache)
            self._append(known, space.to_choices(known), np.array([accuracy.cache[a] for a in known]))

    def set_latencies(self, latencies: Mapping[str, LatencyObjective]) -> None:
        """Use new latency objectives (e.g. a refitted cost model); cached predictions are dropped."""
        if not latencies:
            raise ValueError("a search needs at least one latency objective")
        self.latencies = dict(latencies)
        self.devices = list(self.latencies)
        self._universe: np.ndarray | None = None
        self._tied: bool | None = None
        self._memo: dict[str, int] = {}
        self._lat = np.zeros((len(self.devices), 0))
        self._std = np.zeros((len(self.devices), 0))
        supports = [set(obj.support) for obj in self.latencies.values() if getattr(obj, "support", None)]
        self.support = sorted(set.intersection(*supports)) if supports else None

    @property
    def evaluations(self) -> int:
        """Accuracy evaluations made so far (distinct architectures)."""
        return self.accuracy.evaluations

    def exhausted(self) -> bool:
        """True when every architecture the search may draw has been evaluated (the tables' or the space's)."""
        if self.support is not None:
            return all(a in self.index for a in self.support)
        if self.space.enumerable:
            return len(self.index) >= int(np.prod(self.counts))
        return False

    def predict(self, archs: Sequence[str], codes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(devices, n) predicted latency and std (memoised per architecture; NaN = infeasible).

        ``codes`` (the architectures' choice codes) go to objectives with ``accepts_choices`` instead
        of the strings (no parsing)."""
        fresh = {}
        for i, a in enumerate(archs):
            if a not in self._memo and a not in fresh:
                fresh[a] = i
        if fresh:
            new = list(fresh)
            rows = None if codes is None else np.asarray(codes)[list(fresh.values())]
            lat, std = zip(*(obj.predict(rows if rows is not None and getattr(obj, "accepts_choices", False)
                                         else new, return_std=True) for obj in self.latencies.values()))
            start = self._lat.shape[1]
            self._memo.update((a, start + i) for i, a in enumerate(new))
            self._lat = np.concatenate([self._lat, np.array(lat)], axis=1)
            self._std = np.concatenate([self._std, np.array(std)], axis=1)
        rows = np.fromiter((self._memo[a] for a in archs), dtype=np.int64, count=len(archs))
        return self._lat[:, rows], self._std[:, rows]

    def archive_latency(self) -> tuple[np.ndarray, np.ndarray]:
        """(devices, archive size) predicted latency and std of the archive."""
        return self.predict(self.archs)

    def screen(self, codes: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Candidates worth an evaluation: distinct, never evaluated, finite latency on some device."""
        self.candidates += len(codes)
        if len(codes) == 0:
            return codes, []
        archs = self.space.from_choices(codes)
        seen: set[str] = set()
        keep = []
        for i, a in enumerate(archs):
            if a not in seen and a not in self.index:
                seen.add(a)
                keep.append(i)
        archs = [archs[i] for i in keep]
        codes = codes[keep]
        if not archs:
            return codes, archs
        lat, _ = self.predict(archs, codes)
        ok = np.isfinite(lat).any(axis=0)
        return codes[ok], [a for a, k in zip(archs, ok) if k]

    def universe(self) -> np.ndarray | None:
        """Choice codes of every architecture the search may draw when there are at most
        :data:`UNIVERSE_MAX` (the tables' architectures, or an enumerable space); None otherwise."""
        if self._universe is None:
            if self.support is not None:
                codes = self.space.to_choices(self.support) if len(self.support) <= UNIVERSE_MAX else None
            elif self.space.enumerable and int(np.prod(self.counts)) <= UNIVERSE_MAX:
                codes = np.stack(np.unravel_index(np.arange(int(np.prod(self.counts))), self.counts), axis=1)
            else:
                codes = None
            self._universe = np.zeros((0, len(self.counts)), dtype=np.int64) if codes is None else codes
        return self._universe if len(self._universe) else None

    def tied_universe(self) -> np.ndarray | None:
        """:meth:`universe` when every device's latency of it is exact (std 0, e.g. a measured table)
        and on some device latency ties abound (at most a tenth as many distinct latencies as
        architectures, e.g. whole milliseconds), else None. The search then screens the whole space
        each generation: each latency level's front point is that level's single most accurate
        architecture, which bred children rarely reach. Measured on NAS-Bench-201: it pays on the
        tied devices (essential_ph_1 99.58% -> 99.81% HV), costs a little on smooth ones, and with an
        uncertain model it chases the model's ranking errors (hence both conditions)."""
        codes = self.universe()
        if codes is None:
            return None
        if self._tied is None:
            lat, std = self.predict(self.space.from_choices(codes), codes)
            levels = [np.unique(row[np.isfinite(row)]).size for row in lat]
            self._tied = bool(np.all(np.nan_to_num(std) == 0)) and min(levels) * 10 <= len(codes)
        return codes if self._tied else None

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` uniform choice codes (from the latency tables' architectures when all are tables)."""
        if self.support is not None:
            picks = rng.integers(0, len(self.support), n)
            return self.space.to_choices([self.support[i] for i in picks])
        return rng.integers(0, self.counts, (n, len(self.counts)))

    def evaluate(self, codes: np.ndarray, archs: list[str]) -> np.ndarray:
        """Accuracy of new architectures (counted), added to the archive."""
        acc = self.accuracy.evaluate(archs)
        self._append(archs, codes, acc)
        return acc

    def _append(self, archs: list[str], codes: np.ndarray, acc: np.ndarray) -> None:
        self.index.update((a, len(self.archs) + i) for i, a in enumerate(archs))
        self.archs += list(archs)
        self.codes = np.concatenate([self.codes, np.asarray(codes, dtype=np.int64).reshape(len(archs), -1)])
        self.acc = np.concatenate([self.acc, np.asarray(acc, dtype=float)])


class Surrogate:
    """Ridge regression of accuracy on one-hot genes (and gene pairs when that stays small)."""

    MAX_FEATURES = 2000

    def __init__(self, counts: np.ndarray, alpha: float = 10.0) -> None:
        self.counts = counts
        self.alpha = alpha
        self.offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        width = int(counts.sum())
        self.pairs = width + width * (width - 1) // 2 <= self.MAX_FEATURES
        self._pair_index = np.triu_indices(width, 1) if self.pairs else None

    def features(self, codes: np.ndarray) -> np.ndarray:
        """The design matrix of choice codes."""
        onehot = np.zeros((len(codes), int(self.counts.sum())))
        onehot[np.arange(len(codes))[:, None], codes + self.offsets] = 1.0
        if not self.pairs:
            return onehot
        i, j = self._pair_index
        return np.concatenate([onehot, onehot[:, i] * onehot[:, j]], axis=1)

    def fit(self, codes: np.ndarray, acc: np.ndarray) -> Surrogate:
        """Fit on the archive's finite accuracies."""
        ok = np.isfinite(acc)
        X, y = self.features(codes[ok]), acc[ok]
        self.mean_ = float(y.mean()) if y.size else 0.0
        self.coef_ = np.linalg.solve(X.T @ X + self.alpha * np.eye(X.shape[1]), X.T @ (y - self.mean_))
        return self

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """Predicted accuracy of choice codes (pair terms as a quadratic form: no pair features built)."""
        width = int(self.counts.sum())
        onehot = np.zeros((len(codes), width))
        onehot[np.arange(len(codes))[:, None], codes + self.offsets] = 1.0
        out = onehot @ self.coef_[:width] + self.mean_
        if self.pairs:
            pair = np.zeros((width, width))
            pair[self._pair_index] = self.coef_[width:]
            out += np.einsum("ij,ij->i", onehot @ pair, onehot)
        return out


def front_gain(acc: np.ndarray, lat: np.ndarray, cand_mu: np.ndarray, cand_lat: np.ndarray,
               k: int) -> list[int]:
    """Up to ``k`` candidate indices that most improve one device's front, "kriging believer":
    a candidate's gain is its predicted accuracy minus the best accuracy at or below its latency
    among the front so far; each pick joins the front with its prediction before the next."""
    ok = np.isfinite(acc) & np.isfinite(lat)
    order = np.argsort(lat[ok], kind="stable")
    lat_sorted = lat[ok][order]
    best_sorted = np.maximum.accumulate(acc[ok][order]) if order.size else np.zeros(0)
    pos = np.searchsorted(lat_sorted, cand_lat, side="right")
    floor = np.where(pos > 0, best_sorted[np.maximum(pos - 1, 0)], -np.inf)
    floor = np.where(np.isfinite(cand_lat), floor, np.inf)
    picks: list[int] = []
    gain = cand_mu - floor
    for _ in range(min(k, len(cand_mu))):
        i = int(np.argmax(gain))
        if not np.isfinite(gain[i]) and gain[i] < 0:
            break
        picks.append(i)
        floor = np.where(cand_lat >= cand_lat[i], np.maximum(floor, cand_mu[i]), floor)
        gain = cand_mu - floor
        gain[picks] = -np.inf
    return picks


class Algorithm(ABC):
    """One search algorithm over a :class:`Problem`."""

    name: str
    optimism_z = 1.0
    """Front acquisition places a candidate at predicted latency - ``optimism_z`` std: within the
    model's uncertainty it may be non-dominated (no effect with exact latencies, std 0; on NAS-Bench-201 with
    10-shot transfer models it lifted the 3 hardest devices' HV from 99.25% to 99.81%)."""

    def __init__(self, problem: Problem, evaluations: int, budgets_ms: Sequence[float] = (),
                 explore: float = 0.2, safety_z: float = 1.0) -> None:
        self.problem = problem
        self.evaluations = evaluations
        self.budgets_ms = [float(b) for b in budgets_ms]
        self.explore = explore
        self.safety_z = safety_z
        self.notes: list[str] = []

    @abstractmethod
    def step(self, rng: np.random.Generator, remaining: int) -> int:
        """Spend at most ``remaining`` (> 0) accuracy evaluations; returns how many; 0 = nothing new found."""

    def state(self) -> dict[str, Any]:
        """The algorithm's own state (population, counters) as JSON."""
        return {"notes": list(self.notes)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state`."""
        self.notes = list(state.get("notes", []))

    def batch_size(self) -> int:
        """Evaluations per generation of the evolutionary algorithms."""
        return int(np.clip(self.evaluations // 40, 5, 50))

    def initial_size(self) -> int:
        """Random evaluations before any breeding."""
        return int(np.clip(self.evaluations // 10, 10, 100))

    def random_batch(self, rng: np.random.Generator, n: int) -> int:
        """Evaluate ``n`` new uniform samples (bounded sampling rounds); returns how many were evaluated."""
        done = 0
        for _ in range(SAMPLING_ROUNDS):
            codes, archs = self.problem.screen(self.problem.sample(max(2 * (n - done), 16), rng))
            codes, archs = codes[:n - done], archs[:n - done]
            if archs:
                self.problem.evaluate(codes, archs)
                done += len(archs)
            if done >= n:
                break
        return done

    def breed(self, parents: np.ndarray, n: int, rng: np.random.Generator, mutation_ratio: float = 0.5,
              mates: np.ndarray | None = None) -> np.ndarray:
        """``n`` children of ``parents``: a ``mutation_ratio`` share are mutants, the rest are crossovers
        of two parents (of ``parents`` and ``mates`` when given) then mutated with a low rate."""
        space = self.problem.space
        n_mut = int(round(n * mutation_ratio))
        mutants = space.mutate_choices(parents[rng.integers(0, len(parents), n_mut)], rng)
        pool = parents if mates is None else mates
        a = parents[rng.integers(0, len(parents), n - n_mut)]
        b = pool[rng.integers(0, len(pool), n - n_mut)]
        kids = space.crossover_choices(a, b, rng)
        flip = rng.random(len(kids)) < 0.5
        kids[flip] = space.mutate_choices(kids[flip], rng)
        return np.concatenate([mutants, kids])

    def pick(self, rng: np.random.Generator, codes: np.ndarray, archs: list[str], k: int,
             budget: tuple[int, float] | None = None) -> tuple[np.ndarray, list[str]]:
        """The ``k`` most promising candidates (surrogate-ranked; a share ``explore`` at random).

        ``budget=(device, ms)``: by predicted accuracy (the candidates already meet it). Otherwise,
        first per device and user budget the candidate of highest predicted accuracy among those
        whose latency + ``safety_z`` std meets the budget, then by front gain on each device in turn.
        """
        if len(archs) <= k:
            return codes, archs
        problem = self.problem
        n_random = k if problem.evaluations < 10 else int(round(k * self.explore))
        n_model = k - n_random
        chosen: list[int] = []
        if n_model > 0:
            mu = Surrogate(problem.counts).fit(problem.codes, problem.acc).predict(codes)
            if budget is not None:
                chosen = [int(i) for i in np.argsort(-mu, kind="stable")[:n_model]]
            else:
                lat, std = problem.predict(archs, codes)
                reportable = lat + self.safety_z * std
                for d in range(len(problem.devices)):
                    for b in self.budgets_ms:
                        score = np.where(reportable[d] <= b, mu, -np.inf)
                        score[chosen] = -np.inf
                        i = int(np.argmax(score))
                        if np.isfinite(score[i]) and len(chosen) < n_model:
                            chosen.append(i)
                arch_lat, _ = problem.archive_latency()
                optimistic = lat - self.optimism_z * std   # possibly non-dominated within the uncertainty
                per_device = [front_gain(problem.acc, arch_lat[d], mu, optimistic[d], n_model)
                              for d in range(len(problem.devices))]
                for i in (j for picks in zip(*per_device) for j in picks):  # round robin over devices
                    if i not in chosen and len(chosen) < n_model:
                        chosen.append(i)
        rest = np.setdiff1d(np.arange(len(archs)), chosen)
        chosen += [int(i) for i in rng.choice(rest, min(k - len(chosen), len(rest)), replace=False)]
        return codes[chosen], [archs[i] for i in chosen]

    def front_codes(self) -> np.ndarray:
        """Choice codes of the archive's front on every device (the best parents for local search)."""
        lat, _ = self.problem.archive_latency()
        rows = np.unique(np.concatenate([pareto_front(self.problem.acc, lat[d]) for d in range(len(lat))]))
        return self.problem.codes[rows]


class RandomSearch(Algorithm):
    """Uniform random samples, never the same architecture twice (the baseline)."""

    name = "random"

    def step(self, rng: np.random.Generator, remaining: int) -> int:
        """Evaluate up to 100 new uniform samples."""
        return self.random_batch(rng, min(remaining, 100))


class ConstrainedEvolution(Algorithm):
    """Once-for-All's evolution finder under latency budgets, bounded; see the module docstring."""

    name = "evolution"
    SPREAD = 6   # budgets spread over the latency range besides the user's

    def __init__(self, problem: Problem, evaluations: int, budgets_ms: Sequence[float] = (),
                 population: int = 100, parent_ratio: float = 0.25, mutation_ratio: float = 0.5,
                 explore: float = 0.2, safety_z: float = 1.0) -> None:
        super().__init__(problem, evaluations, budgets_ms, explore, safety_z)
        self.population_size = population
        self.parent_ratio = parent_ratio
        self.mutation_ratio = mutation_ratio
        self.targets: list[tuple[int, float]] = []   # (device, budget ms), filled on the first step
        self.target = 0
        self.spent_on_target = 0

    def _make_targets(self, rng: np.random.Generator) -> None:
        probe = self.problem.sample(2000, rng)
        lat, _ = self.problem.predict(self.problem.space.from_choices(probe), probe)
        for d in range(len(self.problem.devices)):
            spread = np.nanquantile(lat[d], np.linspace(0.1, 0.9, self.SPREAD)) if np.isfinite(lat[d]).any() else []
            budgets = sorted(set(self.budgets_ms) | {float(b) for b in spread})
            self.targets += [(d, b) for b in budgets]

    def step(self, rng: np.random.Generator, remaining: int) -> int:
        """Initial random samples, then one generation for the current (device, budget)."""
        problem = self.problem
        if problem.evaluations < self.initial_size():
            return self.random_batch(rng, min(remaining, self.initial_size() - problem.evaluations))
        if not self.targets:
            self._make_targets(rng)
        share = max((self.evaluations - self.initial_size()) // max(len(self.targets), 1), 1)
        while self.target < len(self.targets):
            device, budget = self.targets[self.target]
            k = min(remaining, self.batch_size(), share - self.spent_on_target)
            if self.target == len(self.targets) - 1:
                k = min(remaining, self.batch_size())
            spent = self._generation(rng, device, budget, k) if k > 0 else 0
            self.spent_on_target += spent
            if spent and self.spent_on_target < share:
                return spent
            self.target += 1
            self.spent_on_target = 0
            if spent:
                return spent
        return self.random_batch(rng, min(remaining, self.batch_size()))

    def _generation(self, rng: np.random.Generator, device: int, budget: float, k: int) -> int:
        """Breed from the best archive members under ``budget`` and evaluate ``k`` new feasible children."""
        problem = self.problem
        lat, _ = problem.archive_latency()
        feasible = np.flatnonzero(lat[device] <= budget)
        parents = None
        if feasible.size:
            order = feasible[np.argsort(-problem.acc[feasible], kind="stable")]
            population = order[:self.population_size]
            parents = problem.codes[population[:max(int(len(population) * self.parent_ratio), 1)]]
        codes, archs = self._feasible(rng, device, budget, parents, k)
        if not archs:
            return 0
        codes, archs = self.pick(rng, codes, archs, k, budget=(device, budget))
        problem.evaluate(codes, archs)
        return len(archs)

    def _feasible(self, rng: np.random.Generator, device: int, budget: float, parents: np.ndarray | None,
                  k: int) -> tuple[np.ndarray, list[str]]:
        """New candidates predicted to meet ``budget``: children of ``parents`` (uniform samples when
        None), up to :data:`SAMPLING_ROUNDS` rounds until ``k`` are found; the largest round's."""
        problem = self.problem
        found: tuple[np.ndarray, list[str]] = (problem.codes[:0], [])
        for _ in range(SAMPLING_ROUNDS):
            pool = problem.sample(50 * k, rng) if parents is None else self.breed(parents, 20 * k, rng,
                                                                                  self.mutation_ratio)
            codes, archs = problem.screen(pool)
            if archs:
                ok = problem.predict(archs, codes)[0][device] <= budget
                codes, archs = codes[ok], [a for a, m in zip(archs, ok) if m]
            if len(archs) > len(found[1]):
                found = (codes, archs)
            if len(found[1]) >= k:
                break
        if not found[1] and parents is None:
            self.notes.append(f"budget {budget:g} ms on {problem.devices[device]}: no sampled architecture is "
                              f"predicted to meet it ({SAMPLING_ROUNDS} rounds of {50 * k} samples)")
        return found

    def state(self) -> dict[str, Any]:
        """Targets and progress through them."""
        return {**super().state(), "targets": [[d, b] for d, b in self.targets], "target": self.target,
                "spent_on_target": self.spent_on_target}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state`."""
        super().load_state(state)
        self.targets = [(int(d), float(b)) for d, b in state.get("targets", [])]
        self.target = int(state.get("target", 0))
        self.spent_on_target = int(state.get("spent_on_target", 0))


def nondominated_ranks(objectives: np.ndarray) -> np.ndarray:
    """Front rank (0 = non-dominated) of each row of ``objectives`` (all minimised; NaN = +inf)."""
    obj = np.where(np.isfinite(objectives), objectives, np.inf)
    n = len(obj)
    le = (obj[:, None, :] <= obj[None, :, :]).all(axis=2)
    lt = (obj[:, None, :] < obj[None, :, :]).any(axis=2)
    dominates = le & lt                      # dominates[i, j]: i dominates j
    count = dominates.sum(axis=0)
    ranks = np.full(n, -1)
    rank = 0
    current = np.flatnonzero(count == 0)
    while current.size:
        ranks[current] = rank
        count = count - dominates[current].sum(axis=0)
        count[ranks >= 0] = -1
        current = np.flatnonzero(count == 0)
        rank += 1
    return ranks


def crowding(objectives: np.ndarray) -> np.ndarray:
    """Crowding distance of each row within its set (boundary points infinite)."""
    obj = np.where(np.isfinite(objectives), objectives, np.nan)
    n, m = obj.shape
    dist = np.zeros(n)
    for j in range(m):
        col = np.nan_to_num(obj[:, j], nan=np.nanmax(obj[:, j]) if np.isfinite(obj[:, j]).any() else 0.0)
        order = np.argsort(col, kind="stable")
        span = col[order[-1]] - col[order[0]]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0 and n > 2:
            dist[order[1:-1]] += (col[order[2:]] - col[order[:-2]]) / span
    return dist


class NSGA2(Algorithm):
    """NSGA-II on (accuracy, each device's latency) with surrogate-screened offspring."""

    name = "nsga2"

    def __init__(self, problem: Problem, evaluations: int, budgets_ms: Sequence[float] = (),
                 population: int = 50, explore: float = 0.2, safety_z: float = 1.0) -> None:
        super().__init__(problem, evaluations, budgets_ms, explore, safety_z)
        self.population_size = population
        self.population: list[str] = []

    def _objectives(self, rows: np.ndarray) -> np.ndarray:
        lat, _ = self.problem.predict([self.problem.archs[i] for i in rows])
        return np.column_stack([-self.problem.acc[rows], *lat])

    def _select(self, rows: np.ndarray) -> np.ndarray:
        """Environmental selection: the best ``population`` rows by rank, then crowding."""
        obj = self._objectives(rows)
        ranks = nondominated_ranks(obj)
        keep: list[int] = []
        for r in range(ranks.max() + 1):
            layer = np.flatnonzero(ranks == r)
            if len(keep) + layer.size <= self.population_size:
                keep += layer.tolist()
            else:
                dist = crowding(obj[layer])
                keep += layer[np.argsort(-dist, kind="stable")[:self.population_size - len(keep)]].tolist()
                break
        return rows[keep]

    def step(self, rng: np.random.Generator, remaining: int) -> int:
        """Initial random samples, then one generation: tournament, breeding, screening, selection."""
        problem = self.problem
        if problem.evaluations < self.initial_size():
            return self.random_batch(rng, min(remaining, self.initial_size() - problem.evaluations))
        rows = np.array([problem.index[a] for a in self.population] or np.arange(problem.evaluations))
        rows = self._select(np.union1d(rows, np.arange(max(problem.evaluations - self.batch_size(), 0),
                                                       problem.evaluations)))
        self.population = [problem.archs[i] for i in rows]
        obj = self._objectives(rows)
        ranks, dist = nondominated_ranks(obj), crowding(obj)
        a, b = rng.integers(0, len(rows), (2, 4 * self.population_size))
        better = (ranks[a] < ranks[b]) | ((ranks[a] == ranks[b]) & (dist[a] >= dist[b]))
        parents = problem.codes[rows[np.where(better, a, b)]]
        front = self.front_codes()
        k = min(remaining, self.batch_size())
        for _ in range(SAMPLING_ROUNDS):
            pool = np.concatenate([self.breed(parents, 20 * k, rng), self.breed(front, 20 * k, rng, 1.0)])
            if problem.tied_universe() is not None:
                pool = np.concatenate([pool, problem.tied_universe()])
            codes, archs = problem.screen(pool)
            if len(archs) >= k:
                break
        if not archs:
            return self.random_batch(rng, k)
        codes, archs = self.pick(rng, codes, archs, k)
        problem.evaluate(codes, archs)
        return len(archs)

    def state(self) -> dict[str, Any]:
        """The current population (architecture strings)."""
        return {**super().state(), "population": list(self.population)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state`."""
        super().load_state(state)
        self.population = [a for a in state.get("population", []) if a in self.problem.index]


ALGORITHMS: dict[str, type[Algorithm]] = {cls.name: cls for cls in (NSGA2, ConstrainedEvolution, RandomSearch)}
"""The algorithms by name (``--algorithm``)."""
