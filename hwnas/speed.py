"""Speed-normalised latency: a model's time in units of the device's reference kernel.

A shared machine's speed wanders (on the CI VM by tens of percent between seconds), and
every kernel slows alike. With ``measurement.normalise`` (the default) the agent times the
reference kernel — the drift probe, a small fixed conv in the device's runtime — after every
timed round. A round divided by its probe (its *relative* time) does not move with the
machine's speed; a session's relative time is the median over its rounds, and a model's the
median over its sessions.

The **reference speed** of a device turns relative times back into milliseconds: the median
probe time of its first :data:`SPEED_MEASUREMENTS` measurements with round probes, fixed in
the store's meta table the first time it is asked for (so every later figure uses the same
constant). A normalised latency is therefore "the model's latency on this device at the speed
it had when it was first measured"; raw latencies (``latency_ms``) are stored unchanged beside it.
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
        self._speeds: dict[tuple[str, str], float | None] = {}

    def reference_speed(self, device: str, kernel: str) -> float | None:
        """The device's reference speed for probe ``kernel`` (ms per probe call), fixed in the store
        on first use; None until :data:`SPEED_MEASUREMENTS` measurements have round probes."""
        if (device, kernel) not in self._speeds:
            key = f"reference_speed:{METHOD}:{device}:{kernel}"
            stored = self.store.meta_value(key)
            if stored is None:
                medians = self.store.round_probe_medians(device, kernel, SPEED_MEASUREMENTS)
                if len(medians) == SPEED_MEASUREMENTS:
                    stored = self.store.set_meta_once(key, json.dumps({"ms": statistics.median(medians),
                                                                       "measurements": len(medians)}))
            self._speeds[(device, kernel)] = json.loads(stored)["ms"] if stored else None
        return self._speeds[(device, kernel)]

    def factor(self, device: str, stats: dict[str, Any]) -> float | None:
        """ms per relative unit for a measurement's ``stats``; None when it cannot be normalised."""
        kernel = stats.get("reference_kernel")
        return self.reference_speed(device, kernel) if kernel else None

    def normalised_ms(self, m: Measurement) -> float | None:
        """``m``'s latency at the device's reference speed; None when it has no round probes or the
        device has no reference speed yet."""
        relative = m.stats.get("relative_latency")
        speed = self.factor(m.device, m.stats) if relative else None
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
        """:meth:`probe_scale` of ``m``'s stored per-node profile (the probes taken around it)."""
        return self.probe_scale(m.device, m.stats.get("reference_kernel"), m.stats.get("profile_reference_ms") or [])

    def reply_scale(self, device: str, reply: dict[str, Any]) -> float:
        """:meth:`probe_scale` of an agent ``profile`` reply (its ``reference_ms`` and ``reference_kernel``)."""
        return self.probe_scale(device, reply.get("reference_kernel"), reply.get("reference_ms") or [])
