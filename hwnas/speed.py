"""Speed-normalised latency: a model's time at the speed the device had when it was first measured.

A shared machine's speed wanders (on the CI VM by tens of percent over minutes). With
``measurement.normalise`` (the default) the agent times two probes in the device's runtime:

* the **reference kernel** — the drift probe, a small fixed conv (9 KB of weights) — after every
  timed round. A round divided by its probe is the model's *relative* time; a session's relative
  time is the median over its rounds, and a model's the median over its sessions;
* the **memory probe** — a 1×1 conv that streams 8.4 MB of weights, more than a core's cache
  holds — before and after every session (:data:`hwnas.measure.MEMORY_PROBE_MODEL`).

A measurement with memory probes is normalised by them: its raw latency × the device's memory
speed ÷ its sessions' median memory probe. One without (stored before the memory probe existed)
falls back to its relative time × the device's reference speed. The memory probe is the better
yardstick on ``local`` (``bench/results/predict_accuracy.json``, stop 18): within one build the
reference kernel slowed by ×1.35-1.5 while kernels and networks slowed far less, and dividing by it
put the predictor at 59% within ±10% where raw latencies give 82% and memory-probe normalisation
81% (with the lowest RMSPE, 8.8%, and the lowest kernel validation error).

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

    def normalised_ms(self, m: Measurement) -> float | None:
        """``m``'s latency at the device's first speed: by its memory probes where it has them (and the
        device a memory speed), else by its round probes; None when it has no round probes (it was
        measured with ``normalise: false``) or the device has no speed for its probes yet."""
        relative = m.stats.get("relative_latency")
        if not relative:
            return None
        memory = self.memory_factor(m)
        if memory is not None:
            return m.latency_ms * memory
        speed = self.factor(m.device, m.stats)
        return relative * speed if speed else None

    def latency_ms(self, m: Measurement) -> float:
        """``m``'s speed-normalised latency where it has one, else its raw latency."""
        normalised = self.normalised_ms(m)
        return m.latency_ms if normalised is None else normalised

    def probe_scale(self, device: str, kernel: str | None, probes: list[float]) -> float:
        """Factor that puts times taken between reference-kernel ``probes`` (ms, of probe ``kernel``) at
        the device's reference speed; 1.0 without probes or a reference speed."""
        speed = self.reference_speed(device, kernel) if kernel else None
        return speed / statistics.mean(probes) if speed and probes and min(probes) > 0 else 1.0

    def profile_scale(self, m: Measurement) -> float:
        """The factor that puts ``m``'s stored per-node profile (taken right after its sessions) at the
        device's first speed: ``m``'s :meth:`memory_factor` where it has one, else :meth:`probe_scale` of
        the reference-kernel probes taken around the profile."""
        memory = self.memory_factor(m) if m.stats.get("relative_latency") else None
        if memory is not None:
            return memory
        return self.probe_scale(m.device, m.stats.get("reference_kernel"), m.stats.get("profile_reference_ms") or [])

    def reply_scale(self, device: str, reply: dict[str, Any]) -> float:
        """:meth:`probe_scale` of an agent ``profile`` reply (its ``reference_ms`` and ``reference_kernel``)."""
        return self.probe_scale(device, reply.get("reference_kernel"), reply.get("reference_ms") or [])
