"""The measurement protocol, run on the device: warm-up, calibrated rounds, statistics, drift probe.

``measure(source, settings, reference)`` takes a source of round times (a
:class:`RoundSource`): :class:`WallClock` times a zero-argument callable with
``perf_counter_ns`` (a bare callable is wrapped in one), a TVM runner's source
uses ``time_evaluator``, the simulator's returns simulated cycles at the clock.
Whatever the source, the protocol is the same:

1. warm up for ``warmup_ms`` (at least 3 calls);
2. calibrate ``number`` (calls per round) so one round lasts ``min_repeat_ms``;
3. time ``repeat`` rounds with ``perf_counter_ns``; a round's time is its total
   divided by ``number``;
4. if the rounds' coefficient of variation exceeds ``cov_threshold``, measure
   again (up to ``max_remeasure`` times) and keep the steadiest attempt;
5. with ``reference_rounds``, time the reference kernel briefly after every timed
   round too (``reference_rounds_ms``, one per round): a round divided by its probe is
   the model's time in units of the reference kernel, which the machine's own speed
   changes (a shared VM's wander of tens of percent over seconds) move alike and so cancel;
6. time a fixed reference kernel before and after; if it moved by more than
   ``drift_threshold`` against its baseline, flag ``drift``. The baseline is
   ``reference_baseline_ms`` when the host sends one (the device's history across
   runs, so a whole run on a busy device is caught) and otherwise the median of
   this agent process's probes. With a memory probe (a kernel that streams more weights than a
   core's cache holds), time it before and after too (``memory_probe_ms``): a shared machine's
   caches and memory slow by other amounts than its cores, and so do the kernels that need them.

Every raw round time is returned; outliers (outside 1.5 IQR) are counted, not removed.
``phase_ms`` tells where the agent's time went (reference probes, warm-up,
calibration, timed rounds), so overhead figures can be split honestly.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

DEFAULTS: dict[str, Any] = {
    "warmup_ms": 50.0,
    "repeat": 10,
    "min_repeat_ms": 20.0,
    "cov_threshold": 0.10,
    "max_remeasure": 2,
    "drift_threshold": 0.10,
    "reference_rounds": False,
}


def summarize(rounds_ms: list[float]) -> dict[str, Any]:
    """Robust summary of round times (ms): median, mean, std, p10, p90, CoV, min, max, outliers."""
    a = np.asarray(rounds_ms, dtype=np.float64)
    mean = float(a.mean())
    std = float(a.std(ddof=1)) if a.size > 1 else 0.0
    q1, q3 = np.percentile(a, [25, 75])
    iqr = q3 - q1
    outliers = int(((a < q1 - 1.5 * iqr) | (a > q3 + 1.5 * iqr)).sum())
    return {
        "median_ms": float(np.median(a)),
        "mean_ms": mean,
        "std_ms": std,
        "p10_ms": float(np.percentile(a, 10)),
        "p90_ms": float(np.percentile(a, 90)),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
        "cov": std / mean if mean > 0 else 0.0,
        "outliers": outliers,
    }


def _time_calls(run: Callable[[], Any], number: int) -> float:
    """Wall time of ``number`` calls, in ms per call."""
    start = time.perf_counter_ns()
    for _ in range(number):
        run()
    return (time.perf_counter_ns() - start) / 1e6 / number


def calibrate(run: Callable[[], Any], min_repeat_ms: float) -> int:
    """Calls per round so that a round lasts at least ``min_repeat_ms``."""
    number = 1
    while True:
        per_call = _time_calls(run, number)
        if per_call * number >= min_repeat_ms or number >= 1 << 20:
            return number
        target = int(min_repeat_ms / max(per_call, 1e-6) * 1.1) + 1
        number = max(number * 2, min(target, number * 100))


def warm_up(run: Callable[[], Any], warmup_ms: float) -> int:
    """Call ``run`` for ``warmup_ms`` (at least 3 calls); returns the call count."""
    deadline = time.perf_counter_ns() + warmup_ms * 1e6
    calls = 0
    while calls < 3 or time.perf_counter_ns() < deadline:
        run()
        calls += 1
    return calls


MATMUL_PROBE = "numpy:matmul96"
"""Name of the fallback drift probe (a device without ONNX Runtime)."""


def probe_name(model_sha: str | None) -> str:
    """The name results carry for the drift probe: the host's probe model (sha256 ``model_sha``)
    run in ONNX Runtime, or :data:`MATMUL_PROBE` when ``model_sha`` is None."""
    return f"onnxruntime:{model_sha[:16]}" if model_sha else MATMUL_PROBE


class ReferenceKernel:
    """A fixed kernel timed around every measurement to detect drift.

    By default a single-threaded 96x96 numpy matmul (``numpy:matmul96``); given ``run``
    (e.g. a small fixed conv in the device's own runtime: the measured models' own code
    path) that callable instead.
    Its running baseline is the median of every probe this agent process has taken.
    """

    def __init__(self, run: Callable[[], Any] | None = None, name: str = MATMUL_PROBE,
                 calls: int = 20) -> None:
        if run is None:
            rng = np.random.default_rng(0)
            a, b = (rng.standard_normal((96, 96)).astype(np.float32) for _ in range(2))
            out = np.empty((96, 96), dtype=np.float32)

            def run() -> None:
                np.dot(a, b, out=out)
        self._run = run
        self.name = name
        self._calls = calls
        self.history: list[float] = []

    def probe(self) -> float:
        """Time the kernel, remember it, return ms: the fastest of 7 short rounds after one untimed
        round that brings its data back into cache (single rounds right after a model ran are
        often slowed by what it left behind; a sustained slowdown slows every round)."""
        _time_calls(self._run, self._calls)
        value = min(_time_calls(self._run, self._calls) for _ in range(7))
        self.history.append(value)
        return value

    def round_probe(self) -> float:
        """Time the kernel for one round's normalisation (not remembered): one untimed pass to bring
        its data back into cache, then the faster of two timed passes; ms per call."""
        _time_calls(self._run, self._calls)
        return min(_time_calls(self._run, self._calls) for _ in range(2))

    def baseline(self) -> float:
        """Median of every probe so far."""
        return statistics.median(self.history)


class RoundSource(Protocol):
    """Where round times come from: the protocol in :func:`measure` calls these three in order."""

    def warm_up(self, warmup_ms: float) -> None:
        """Run untimed for about ``warmup_ms``."""

    def calibrate(self, min_repeat_ms: float) -> int | None:
        """Calls per round so that a round lasts at least ``min_repeat_ms`` (None when the source
        calibrates each round itself)."""

    def rounds(self, number: int | None, repeat: int) -> list[float]:
        """``repeat`` round times, each in ms per call."""


class WallClock:
    """Rounds of ``number`` calls of ``run`` timed with ``perf_counter_ns`` on this machine.

    ``sync`` (e.g. a GPU device's ``sync``) is called after the calls of every timed
    round and of calibration, so asynchronous work is inside the time."""

    def __init__(self, run: Callable[[], Any], sync: Callable[[], Any] | None = None) -> None:
        self._run = run if sync is None else _synced(run, sync)

    def warm_up(self, warmup_ms: float) -> None:
        """See :func:`warm_up`."""
        warm_up(self._run, warmup_ms)

    def calibrate(self, min_repeat_ms: float) -> int:
        """See :func:`calibrate`."""
        return calibrate(self._run, min_repeat_ms)

    def rounds(self, number: int, repeat: int) -> list[float]:
        """``repeat`` rounds of ``number`` calls."""
        return [_time_calls(self._run, number) for _ in range(repeat)]


def _synced(run: Callable[[], Any], sync: Callable[[], Any]) -> Callable[[], Any]:
    def call() -> Any:
        out = run()
        sync()
        return out
    return call


def _rounds(source: RoundSource, number: int | None, repeat: int, reference: ReferenceKernel | None
            ) -> tuple[list[float], list[float], float]:
    """``repeat`` round times from ``source``; with ``reference``, each round followed by a
    :meth:`ReferenceKernel.round_probe`. Returns (rounds, probes, ms spent probing)."""
    if reference is None:
        return source.rounds(number, repeat), [], 0.0
    rounds, probes, spent = [], [], 0
    for _ in range(repeat):
        rounds += source.rounds(number, 1)
        t0 = time.perf_counter_ns()
        probes.append(reference.round_probe())
        spent += time.perf_counter_ns() - t0
    return rounds, probes, spent / 1e6


def measure(source: RoundSource | Callable[[], Any], settings: dict[str, Any],
            reference: ReferenceKernel | None, memory: ReferenceKernel | None = None) -> dict[str, Any]:
    """Time ``source`` (a RoundSource, or a callable timed by :class:`WallClock`) with the
    measurement protocol; returns stats, raw rounds, warnings and flags. Without ``reference``
    (a source that cannot drift, or a device where no probe runs) drift is not probed. With it and
    ``memory`` (the memory probe), that is timed next to the reference kernel before and after
    (``memory_probe_ms``; recorded, not judged: it tells how the caches' speed moved)."""
    if not hasattr(source, "rounds"):
        source = WallClock(source)
    cfg = {**DEFAULTS, **{k: v for k, v in settings.items() if k in DEFAULTS}}
    phases = {"reference": 0.0, "warmup": 0.0, "calibrate": 0.0, "rounds": 0.0}
    clock = time.perf_counter_ns
    t0 = clock()
    ref_before = reference.probe() if reference else None
    memory = memory if reference else None
    mem_before = memory.probe() if memory else None
    t1 = clock()
    source.warm_up(float(cfg["warmup_ms"]))
    t2 = clock()
    phases["reference"] += (t1 - t0) / 1e6
    phases["warmup"] += (t2 - t1) / 1e6
    per_round = reference if cfg["reference_rounds"] else None
    attempts: list[dict[str, Any]] = []
    for _ in range(1 + int(cfg["max_remeasure"])):
        t0 = clock()
        number = source.calibrate(float(cfg["min_repeat_ms"]))
        t1 = clock()
        rounds, probes, probe_ms = _rounds(source, number, int(cfg["repeat"]), per_round)
        phases["calibrate"] += (t1 - t0) / 1e6
        phases["rounds"] += (clock() - t1) / 1e6 - probe_ms
        phases["reference"] += probe_ms
        stats = summarize(rounds)
        attempts.append({"number": number, "rounds_ms": rounds, "reference_rounds_ms": probes, **stats})
        if stats["cov"] <= cfg["cov_threshold"]:
            break
    best = min(attempts, key=lambda a: a["cov"])
    warnings = []
    if best["cov"] > cfg["cov_threshold"]:
        warnings.append(f"CoV {best['cov']:.1%} above {cfg['cov_threshold']:.0%} after {len(attempts)} attempts")
    if reference is None:
        return {**best, "attempts": len(attempts), "reference_ms": [], "reference_baseline_ms": None,
                "reference_kernel": None, "memory_probe_ms": [], "memory_probe_kernel": None, "drift": False,
                "valid": not warnings, "warnings": warnings, "settings": cfg, "phase_ms": phases}
    t0 = clock()
    ref_after = reference.probe()
    mem_after = memory.probe() if memory else None
    phases["reference"] += (clock() - t0) / 1e6
    baseline = float(settings.get("reference_baseline_ms") or reference.baseline())
    drift = max(abs(ref_before / baseline - 1.0), abs(ref_after / baseline - 1.0))
    drifted = drift > cfg["drift_threshold"]
    if drifted:
        warnings.append(f"reference kernel moved {drift:.1%} from its baseline (busy device, thermal or clock drift?)")
    return {
        **best,
        "attempts": len(attempts),
        "reference_ms": [ref_before, ref_after],
        "reference_baseline_ms": baseline,
        "reference_kernel": reference.name,
        "memory_probe_ms": [mem_before, mem_after] if memory else [],
        "memory_probe_kernel": memory.name if memory else None,
        "drift": drifted,
        "valid": not warnings,
        "warnings": warnings,
        "settings": cfg,
        "phase_ms": phases,
    }
