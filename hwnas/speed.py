"""Speed-normalised latency: a model's time at the speed the device had when it was first measured.

A shared machine's speed wanders (on the CI VM by tens of percent over minutes). With
``measurement.normalise`` (the default) the agent times two probes in the device's runtime:

* the **reference kernel** — the drift probe, a small fixed conv (9 KB of weights) — after every
  timed round. A round divided by its probe is the model's *relative* time; a session's relative
  time is the median over its rounds, and a model's the median over its sessions;
* the **memory probe** — a 1×1 conv that streams 8.4 MB of weights, more than a core's cache
  holds — before and after every session (:data:`hwnas.measure.MEMORY_PROBE_MODEL`).

Three yardsticks (:data:`METHODS`) turn a measurement into a normalised latency:

* ``memory-v1`` — its raw latency × the device's memory speed ÷ its sessions' median memory probe
  (a measurement stored before the memory probe existed falls back to ``rounds-v1``);
* ``rounds-v1`` — its relative time × the device's reference speed;
* ``raw`` — its raw latency, unscaled.

Which one tracks the device best depends on the host: on the Intel Xeon host (stop 18) the reference
kernel slowed by ×1.35-1.5 while kernels and networks slowed far less, and ``rounds-v1`` put the
predictor at 59% within ±10% where ``memory-v1`` gave 81% and ``raw`` 82%; on the AMD EPYC host
(stop 19) the memory probe (whose 8.4 MB fit its 32 MiB L3) wandered on its own and ``rounds-v1``
was the better one (re-measurements 77% within ±10% against 50%). So each device gets its own: a
**speed check** (:func:`compare`, run by the kernel-predictor build) measures a few dozen models a
second time and fixes in the store's meta table the method under which the two measurements agree
best (:meth:`Normaliser.fix_method`). Until a device has one, measurements with memory probes use
``memory-v1`` and the others ``rounds-v1``.

The **reference speed** and **memory speed** of a device turn these back into milliseconds: the
median probe time of its first :data:`SPEED_MEASUREMENTS` measurements with that probe, fixed in
the store's meta table the first time it is asked for (so every later figure uses the same
constant). Raw latencies (``latency_ms``) are stored unchanged beside it.
"""
from __future__ import annotations

import json
import statistics
from typing import Any

from hwnas.store import Measurement, Store

SPEED_MEASUREMENTS = 20
"""Measurements whose round probes fix a device's reference speed."""
METHOD = "rounds-v1"
"""Names how round probes are taken (``ReferenceKernel.round_probe``); a new method gets a new speed."""
MEMORY_METHOD = "memory-v1"
"""Names how memory probes are taken (``ReferenceKernel.probe`` before and after a session, one call a pass)."""
RAW = "raw"
"""No normalisation: the raw latency."""
METHODS = (MEMORY_METHOD, METHOD, RAW)
"""The normalisations a speed check compares, in the order that settles a tie."""
MIN_CHECK_PAIRS = 10
"""Fewest re-measured models a speed check needs to fix a device's method."""


def relative_median(result: dict[str, Any]) -> float | None:
    """A session's median of round time / the probe after it (None without round probes)."""
    rounds, probes = result.get("rounds_ms") or [], result.get("reference_rounds_ms") or []
    if not rounds or len(rounds) != len(probes) or min(probes) <= 0:
        return None
    return statistics.median(r / p for r, p in zip(rounds, probes))


def session_stats(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The stored statistics of speed normalisation for one item's sessions (all of them: drift is
    what normalisation corrects): per-session relative medians, their median, the probes' median, and
    the memory probes (before and after each session) with their median."""
    relative = [relative_median(r) for r in results]
    found = [x for x in relative if x is not None]
    probes = [p for r in results for p in r.get("reference_rounds_ms") or []]
    memory = [p for r in results for p in r.get("memory_probe_ms") or []]
    return {"relative_medians": relative, "relative_latency": statistics.median(found) if found else None,
            "reference_rounds_ms": [r.get("reference_rounds_ms") or [] for r in results],
            "reference_rounds_median_ms": statistics.median(probes) if probes else None,
            "memory_probe_ms": [r.get("memory_probe_ms") or [] for r in results],
            "memory_probe_median_ms": statistics.median(memory) if memory else None}


class Normaliser:
    """Normalised latencies of one store's measurements (the reference speed looked up once per device)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._speeds: dict[tuple[str, str, bool], float | None] = {}
        self._checks: dict[str, dict[str, Any] | None] = {}

    def check(self, device: str) -> dict[str, Any] | None:
        """The speed check fixed for ``device`` (:func:`compare`'s record), None before one."""
        if device not in self._checks:
            stored = self.store.meta_value(f"normaliser:{device}")
            self._checks[device] = json.loads(stored) if stored else None
        return self._checks[device]

    def method(self, device: str) -> str | None:
        """The normalisation fixed for ``device`` by its speed check; None before one (memory probes where
        a measurement has them, else round probes)."""
        check = self.check(device)
        return check["method"] if check else None

    def fix_method(self, device: str, check: dict[str, Any]) -> dict[str, Any]:
        """Store a speed check (:func:`compare`) as ``device``'s, unless it has one already (that one
        stays: a predictor is trained under it); returns the stored check."""
        if check.get("method") not in METHODS:
            raise ValueError(f"a speed check without a method cannot be fixed: {check}")
        self._checks[device] = json.loads(self.store.set_meta_once(f"normaliser:{device}", json.dumps(check)))
        return self._checks[device]

    def reference_speed(self, device: str, kernel: str, memory: bool = False) -> float | None:
        """The device's reference speed for probe ``kernel`` (ms per probe call), or with ``memory`` its
        memory speed for memory probe ``kernel``, fixed in the store on first use; None until
        :data:`SPEED_MEASUREMENTS` measurements have that probe."""
        if (device, kernel, memory) not in self._speeds:
            key = f"reference_speed:{MEMORY_METHOD if memory else METHOD}:{device}:{kernel}"
            stored = self.store.meta_value(key)
            if stored is None:
                medians = self.store.round_probe_medians(device, kernel, SPEED_MEASUREMENTS, memory)
                if len(medians) == SPEED_MEASUREMENTS:
                    stored = self.store.set_meta_once(key, json.dumps({"ms": statistics.median(medians),
                                                                       "measurements": len(medians)}))
            self._speeds[(device, kernel, memory)] = json.loads(stored)["ms"] if stored else None
        return self._speeds[(device, kernel, memory)]

    def memory_factor(self, m: Measurement) -> float | None:
        """The device's memory speed ÷ ``m``'s median memory probe; None when ``m`` has no memory probes
        or the device no memory speed yet."""
        kernel, probe = m.stats.get("memory_probe_kernel"), m.stats.get("memory_probe_median_ms")
        speed = self.reference_speed(m.device, kernel, memory=True) if kernel and probe else None
        return speed / probe if speed else None

    def factor(self, device: str, stats: dict[str, Any]) -> float | None:
        """ms per relative unit for a measurement's ``stats``; None when it cannot be normalised."""
        kernel = stats.get("reference_kernel")
        return self.reference_speed(device, kernel) if kernel else None

    def normalised_ms(self, m: Measurement, method: str | None = None) -> float | None:
        """``m``'s latency at the device's first speed under ``method`` (default: the device's, see
        :meth:`method`): ``raw`` leaves it as measured; ``memory-v1`` (or no method yet) scales by its
        memory probes where it has them and the device a memory speed, and otherwise, as ``rounds-v1``
        does, by its round probes. None when it has no round probes (it was measured with ``normalise:
        false``) or the device has no speed for its probes yet."""
        relative = m.stats.get("relative_latency")
        if not relative:
            return None
        method = method or self.method(m.device)
        if method == RAW:
            return m.latency_ms
        memory = self.memory_factor(m) if method != METHOD else None
        if memory is not None:
            return m.latency_ms * memory
        speed = self.factor(m.device, m.stats)
        return relative * speed if speed else None

    def latency_ms(self, m: Measurement, method: str | None = None) -> float:
        """``m``'s speed-normalised latency (under ``method``, default the device's) where it has one, else
        its raw latency."""
        normalised = self.normalised_ms(m, method)
        return m.latency_ms if normalised is None else normalised

    def probe_scale(self, device: str, kernel: str | None, probes: list[float]) -> float:
        """Factor that puts times taken between reference-kernel ``probes`` (ms, of probe ``kernel``) at
        the device's reference speed; 1.0 without probes or a reference speed."""
        speed = self.reference_speed(device, kernel) if kernel else None
        return speed / statistics.mean(probes) if speed and probes and min(probes) > 0 else 1.0

    def profile_scale(self, m: Measurement) -> float:
        """The factor that puts ``m``'s stored per-node profile (taken right after its sessions) at the
        device's first speed, as :meth:`normalised_ms` does its latency: 1.0 under ``raw``, ``m``'s
        :meth:`memory_factor` where memory probes apply, else :meth:`probe_scale` of the reference-kernel
        probes taken around the profile."""
        method = self.method(m.device)
        normalised = bool(m.stats.get("relative_latency"))
        if normalised and method == RAW:
            return 1.0
        memory = self.memory_factor(m) if normalised and method != METHOD else None
        if memory is not None:
            return memory
        return self.probe_scale(m.device, m.stats.get("reference_kernel"), m.stats.get("profile_reference_ms") or [])

    def reply_scale(self, device: str, reply: dict[str, Any]) -> float:
        """:meth:`probe_scale` of an agent ``profile`` reply (its ``reference_ms`` and ``reference_kernel``);
        1.0 on a device whose speed check chose ``raw``."""
        if self.method(device) == RAW:
            return 1.0
        return self.probe_scale(device, reply.get("reference_kernel"), reply.get("reference_ms") or [])


def compare(pairs: list[tuple[Measurement, Measurement]], normaliser: Normaliser) -> dict[str, Any]:
    """The speed check: per method of :data:`METHODS`, how well the second measurement of each pair agrees
    with the first (share within ±10% and RMSPE of second ÷ first, over the pairs every method can
    normalise), and ``method``, the one with the largest share (ties: the lower RMSPE, then
    :data:`METHODS` order); ``method`` is None with fewer than :data:`MIN_CHECK_PAIRS` pairs."""
    from cost_models.metrics import rmspe, within  # scipy: kept off the start-up of every measure command

    values = [{method: (normaliser.normalised_ms(first, method), normaliser.normalised_ms(second, method))
               for method in METHODS} for first, second in pairs]
    usable = [v for v in values if all(a and b for a, b in v.values())]
    scores = {}
    for method in METHODS:
        firsts, seconds = [v[method][0] for v in usable], [v[method][1] for v in usable]
        scores[method] = {"within_10": within(firsts, seconds, 0.10), "rmspe": rmspe(firsts, seconds)} if usable else {}
    n = len(usable)
    best = (min(METHODS, key=lambda m: (-scores[m]["within_10"], scores[m]["rmspe"], METHODS.index(m)))
            if n >= MIN_CHECK_PAIRS else None)
    return {"method": best, "pairs": n, "scores": scores}

