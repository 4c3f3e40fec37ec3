"""Refining a device's cost model with on-device measurements of chosen architectures.

One algorithm, two callers: ``hwnas costmodel refine`` chooses the architectures the
model is least certain about; the search's hardware in the loop
(:mod:`hwnas.search.loop`) chooses its finalists. Either way:

1. :func:`measure_archs` measures the chosen whole networks on the device with the
   normal sweep (fleet, measurement protocol, store); what the store already holds is
   not measured again, so each network is stored once;
2. the stored network measurements are the cost model's training data, so the new
   ones join it as they land;
3. :func:`fit_and_save` refits the model on everything stored and saves it where
   :func:`hwnas.load_cost_model` finds it.

:func:`refine` does all three and reports predicted against measured latency of the
chosen architectures before the refit.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwnas import costmodel_api as api
from hwnas import sweep
from hwnas.config import DeviceConfig, Registry
from hwnas.errors import BadInput
from hwnas.spaces import Space
from hwnas.store import Store


@dataclass
class Measured:
    """What :func:`measure_archs` found for the chosen architectures on one device."""

    latency_ms: dict[str, float | None]    # canonical arch -> stored latency (None: could not be measured)
    newly_measured: int                    # networks this call measured (the rest were stored already)
    error: str | None = None               # the device's failure, if the sweep hit one
    exit_code: int = 0


@dataclass
class Refinement:
    """The outcome of :func:`refine`: predicted vs measured per chosen architecture, and the refit."""

    device: str
    space: str
    chosen: list[dict[str, Any]]           # arch, predicted_ms, std_ms, measured_ms
    newly_measured: int
    prediction_before_refit: dict[str, float] | None
    refit: dict[str, Any] | None
    error: str | None = None
    exit_code: int = 0

    @property
    def measured(self) -> int:
        """How many chosen architectures have a measurement."""
        return sum(r["measured_ms"] is not None for r in self.chosen)


def fit_and_save(registry: Registry, device: DeviceConfig, store: Store, space: Space, seed: int = 0,
                 quiet: bool = False) -> dict[str, Any]:
    """Fit the device's cost model of ``space`` on every stored network measurement, save it, and
    summarise the fit (path, training size, in-sample ±10% and RMSPE, training-data hash)."""
    from cost_models.metrics import summary

    features, table, nets = api.training_set(store, device.name, device.backend, space, quiet)
    cm = api.fit(space, features, nets.archs, nets.latency_ms, seed=seed)
    path = api.save(cm, api.model_path(registry.workspace, device.name, device.backend, space.name), table,
                    nets.archs, nets.latency_ms, device=device.name, backend=device.backend, kind=device.kind,
                    runtime_version=table.meta.get("runtime_version"))
    fitted = summary(nets.latency_ms, cm.predict(nets.archs))
    return {"device": device.name, "backend": device.backend, "space": space.name, "path": str(path),
            "n_train": len(nets.archs), "skipped_not_in_lut": nets.skipped, "alpha": cm.model.alpha_,
            "calibration": {"a": float(cm.model.calibration_[0]), "b_ms": float(cm.model.calibration_[1])},
            "training_sha256": cm.manifest["training_sha256"], "fit_within_10": fitted["within_10"],
            "fit_rmspe": fitted["rmspe"]}


def measure_archs(registry: Registry, device: DeviceConfig, store: Store, space: Space, archs: Sequence[str],
                  sessions: int | None = None, seed: int = 0, quiet: bool = False,
                  run_id: str | None = None) -> Measured:
    """Measure whole networks ``archs`` of ``space`` on ``device`` (skipping what the store holds) and
    return each one's stored latency. A device failure is reported in the result, not raised."""
    needs = sweep.network_needs(space, list(dict.fromkeys(archs)), registry.workspace)
    reports = sweep.run(registry, [device], store, needs, run_id or uuid.uuid4().hex, "networks", space.name,
                        sessions=sessions, quiet=quiet, seed=seed)
    latency = {}
    for need in needs:
        m = store.latest(device.name, device.backend, need.signature)
        latency[need.arch] = m.latency_ms if m else None
    report = reports[0]
    return Measured(latency, report.measured, report.error, report.exit_code)


def least_certain(device: DeviceConfig, store: Store, space: Space, n: int, pool: int,
                  seed: int = 0, resolutions: Sequence[int] | None = None,
                  quiet: bool = False) -> list[tuple[str, float, float]]:
    """The ``n`` unmeasured architectures of a seeded pool of ``pool`` samples (those the LUT covers)
    that a model fitted on the stored networks is least certain about: (arch, predicted ms, std ms)."""
    features, _, nets = api.training_set(store, device.name, device.backend, space, quiet)
    cm = api.fit(space, features, nets.archs, nets.latency_ms, seed=seed)
    measured = set(nets.archs)
    candidates = [a for a in sweep.sample_archs(space, pool, seed, resolutions) if a not in measured]
    if candidates:
        candidates = [a for a, ok in zip(candidates, features.covered(space.encode(candidates))) if ok]
    chosen = api.least_certain(cm, candidates, n)
    if not chosen:
        raise BadInput(f"no unmeasured {space.name} candidates the LUT covers in a pool of {pool}; "
                       "raise --pool or profile the blocks of other resolutions")
    return chosen


def refine(registry: Registry, device: DeviceConfig, store: Store, space: Space,
           chosen: Sequence[tuple[str, float, float]], sessions: int | None = None, seed: int = 0,
           quiet: bool = False) -> Refinement:
    """Measure the ``chosen`` (arch, predicted ms, std ms) on the device, refit and save the cost model.

    The refit happens when at least one chosen architecture got measured; the result
    scores the predictions made before it against the measurements."""
    from cost_models.metrics import summary

    got = measure_archs(registry, device, store, space, [a for a, _, _ in chosen], sessions, seed, quiet)
    rows = []
    for arch, pred, std in chosen:
        rows.append({"arch": arch, "predicted_ms": float(pred), "std_ms": float(std),
                     "measured_ms": got.latency_ms.get(space.check(arch))})
    done = [r for r in rows if r["measured_ms"] is not None]
    before = (summary(np.array([r["measured_ms"] for r in done]), np.array([r["predicted_ms"] for r in done]))
              if done else None)
    refit = fit_and_save(registry, device, store, space, seed=seed, quiet=quiet) if done else None
    return Refinement(device.name, space.name, rows, got.newly_measured, before, refit, got.error, got.exit_code)
