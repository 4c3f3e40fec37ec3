"""From the measurement store to latency tables: records, metadata and overhead calibration.

``lut`` never imports hwnas; this module turns stored Measurements into the plain
``(key, mean_ms, std_ms, count)`` records a :class:`lut.table.LatencyTable` is built from.
A key's value is its newest measurement: ``mean`` is the stored latency (median over
sessions of the session medians), ``std`` the standard deviation of its pooled
round times, ``count`` the number of timed rounds.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwnas.errors import BadInput
from hwnas.spaces import Space
from hwnas.store import Measurement, Store
from lut.table import BASELINE, LatencyTable, Overhead, fit_overhead

OVERHEAD_MODES = ("offset", "affine")


def record(m: Measurement) -> tuple[str, float, float, int]:
    """The LUT record of one stored measurement."""
    return m.signature, m.latency_ms, float(m.stats.get("std_ms") or 0.0), sum(len(r) for r in m.raw)


def table(store: Store, device: str, backend: str, space: Space | None = None) -> LatencyTable:
    """The block LUT of a device + backend (only ``space``'s keys and the baseline when given)."""
    rows = store.select(device, backend, item="block")
    if space is not None:
        keys = space.layout().keys() | {BASELINE}
        rows = [m for m in rows if m.signature in keys]
    if not rows:
        where = f" for space {space.name}" if space else ""
        raise BadInput(f"no block measurements of device {device!r} ({backend}){where} in {store.path}; "
                       f"run `hwnas profile --device {device} --what blocks` first")
    newest = rows[-1]
    spaces = sorted({m.space for m in rows if m.space and m.signature != BASELINE})
    meta = {"device": device, "backend": backend, "runtime_version": newest.runtime_version,
            "kind": newest.kind, "providers": newest.providers, "threads": newest.threads,
            "agent_version": newest.agent_version, "space": space.name if space else ",".join(spaces),
            "value": "median over sessions of session-median latency", "measured_utc": newest.created_utc}
    return LatencyTable.from_records([record(m) for m in rows], **meta)


def networks(store: Store, device: str, backend: str, space: str) -> list[Measurement]:
    """Stored whole-network measurements of ``space`` on a device + backend (newest per arch)."""
    return store.select(device, backend, item="network", space=space)


def cross_validated(sums: np.ndarray, measured: np.ndarray, mode: str, folds: int = 5,
                    seed: int = 0) -> np.ndarray:
    """Out-of-fold calibrated predictions: each network is predicted by an overhead fitted without it."""
    out = np.empty_like(measured, dtype=float)
    for part in np.array_split(np.random.default_rng(seed).permutation(len(sums)), folds):
        train = np.setdiff1d(np.arange(len(sums)), part)
        out[part] = fit_overhead(sums[train], measured[train], mode).apply(sums[part])
    return out


def choose_overhead(sums: Sequence[float], measured: Sequence[float]) -> tuple[Overhead, dict[str, float]]:
    """The overhead mode with the lowest cross-validated RMSPE, fitted on all networks; and every mode's score."""
    x, y = np.asarray(sums, dtype=float), np.asarray(measured, dtype=float)
    scores = {"none": float(np.sqrt(np.mean(((x - y) / y) ** 2)))}
    for mode in OVERHEAD_MODES:
        pred = cross_validated(x, y, mode, folds=min(5, len(x)))
        scores[mode] = float(np.sqrt(np.mean(((pred - y) / y) ** 2)))
    best = min(scores, key=scores.get)
    return fit_overhead(x, y, best), scores


def calibrate(lut: LatencyTable, space: Space, rows: Sequence[Measurement]) -> dict[str, float] | None:
    """Fit ``lut``'s overhead for ``space`` on measured networks (needs >= 5); returns the CV scores."""
    predictor = lut.predictor(space.layout())
    usable = []
    for m in rows:
        try:
            usable.append((float(predictor.raw(space.encode([m.arch]))[0]), m.latency_ms))
        except ValueError:
            continue  # a network at a resolution the LUT has no blocks for
    if len(usable) < 5:
        return None
    overhead, scores = choose_overhead([u[0] for u in usable], [u[1] for u in usable])
    lut.overheads[space.name] = overhead
    return scores
