"""Cost models for search code: fit from the store, save, load, and batched latency queries.

Search code asks a fitted model for thousands of latencies at once::

    from hwnas import load_cost_model
    cm = load_cost_model(device="local", space="nasbench201", config="hardware.yaml")
    ms = cm.predict(archs)                        # list of arch strings, or an encoded int array
    ms, std = cm.predict(codes, return_std=True)  # std: spread of the bootstrap ensemble (ms)

A :class:`CostModel` joins a search space (encoding), a compiled
:class:`~cost_models.features.FeatureMap` (block LUT + layout) and a fitted
:class:`~cost_models.network_model.NetworkCostModel`. Nothing in it changes after
construction, so one instance may be queried from many threads at once.

Models live in ``<workspace>/cost_models/<device>-<backend>-<space>.json``
(:mod:`cost_models.persistence`: JSON + manifest, no pickle). This module gathers the
training records from the store and passes plain arrays to ``cost_models``.

For ONNX Runtime devices and a space that can list kernel probes (``nasbench201``),
the features include the kernel counts of :mod:`cost_models.kernels`, computed once
per space and onnxruntime version (about a minute) and cached in
``$XDG_CACHE_HOME/hwnas/kernels/`` (default ``~/.cache``); a saved model carries its
own copy.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cost_models import kernels as kernel_counts
from cost_models import persistence
from cost_models.features import FeatureMap, layout_sha256
from cost_models.network_model import NetworkCostModel
from hwnas import config as hwconfig
from hwnas import lut_store, spaces
from hwnas.errors import BadInput
from hwnas.progress import bar
from hwnas.spaces import Space
from hwnas.store import Store
from lut.atomic import write_text_atomic
from lut.table import BASELINE, LatencyTable

MIN_NETWORKS = 8
CHUNK = 32_768


def model_path(workspace: Path, device: str, backend: str, space: str) -> Path:
    """Where the cost model of a device + backend + space is saved."""
    return Path(workspace) / "cost_models" / f"{device}-{backend}-{space}.json"


class CostModel:
    """A fitted whole-network latency model of one space on one device: batched, thread-safe queries."""

    def __init__(self, space: Space, features: FeatureMap, model: NetworkCostModel,
                 manifest: dict[str, Any] | None = None) -> None:
        model.check_schema(features.schema)
        self.space = space
        self.features = features
        self.model = model
        self.manifest = dict(manifest or {})

    def encode(self, archs: Sequence[str] | np.ndarray) -> np.ndarray:
        """The layout encoding (n, 1 + n_slots) of architecture strings, architecture objects (e.g. a
        tuple of NAS-Bench-201 edge ops), choice codes (:meth:`hwnas.spaces.Space.to_choices`; for
        ``nasbench201`` the (n, 6) op codes) or an already encoded array.

        Raises BadInput naming a malformed architecture or array.
        """
        width = self.features.layout.n_slots + 1
        genes = len(self.space.choices())
        if isinstance(archs, np.ndarray):
            if archs.ndim == 2 and archs.dtype.kind in "iu":
                if archs.shape[1] == width:
                    return archs
                if archs.shape[1] == genes:
                    try:
                        return self.space.encode_choices(archs)
                    except ValueError as exc:
                        raise BadInput(str(exc)) from None
            raise BadInput(f"{self.space.name}: an encoded batch must be an (n, {width}) int array or (n, {genes}) "
                           f"{self.space.choice_label}, got {archs.dtype} of shape {archs.shape}")
        try:
            return self.space.encode([self.space.arch_text(a) for a in archs])
        except (TypeError, ValueError, KeyError) as exc:
            raise BadInput(f"{self.space.name}: {exc}") from None

    def feature_matrix(self, archs: Sequence[str] | np.ndarray) -> np.ndarray:
        """The model features of architectures (BadInput when the LUT lacks a block they use)."""
        try:
            return self.features.transform(self.encode(archs))
        except ValueError as exc:
            raise BadInput(f"{self.space.name}: {exc}") from None

    def predict(self, archs: Sequence[str] | np.ndarray,
                return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predicted latency (ms) per architecture; with ``return_std`` also its uncertainty (ms).

        Large batches are processed in chunks of :data:`CHUNK` rows (bounded memory, cache-friendly).
        """
        codes = self.encode(archs)
        parts = [self.model.predict(self.feature_matrix(codes[s:s + CHUNK]), return_std=return_std)
                 for s in range(0, max(codes.shape[0], 1), CHUNK)]
        if not return_std:
            return np.concatenate(parts)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def lut_sum(self, archs: Sequence[str] | np.ndarray) -> np.ndarray:
        """The plain (uncalibrated) block LUT sum (ms) per architecture."""
        return self.feature_matrix(archs)[:, 0]


@dataclass
class Networks:
    """Measured whole networks usable for training: architectures, latencies (ms), session spreads."""

    archs: list[str]
    latency_ms: np.ndarray
    spread: np.ndarray
    skipped: int = 0


def networks(store: Store, device: str, backend: str, space: Space, features: FeatureMap) -> Networks:
    """Stored network measurements of ``space`` whose blocks are all in the LUT (others counted as skipped)."""
    rows = [m for m in lut_store.networks(store, device, backend, space.name) if m.arch and m.latency_ms > 0]
    if not rows:
        return Networks([], np.zeros(0), np.zeros(0))
    mask = features.covered(space.encode([m.arch for m in rows]))
    kept = [m for m, ok in zip(rows, mask) if ok]
    return Networks([m.arch for m in kept], np.array([m.latency_ms for m in kept]),
                    np.array([m.session_spread or 0.0 for m in kept]), skipped=len(rows) - len(kept))


def lut_table(store: Store, device: str, backend: str, space: Space) -> LatencyTable:
    """The block LUT of a device for ``space`` (BadInput naming the `hwnas profile` command when empty)."""
    try:
        return lut_store.table(store, device, backend, space)
    except BadInput:
        raise BadInput(f"no block measurements of device {device!r} ({backend}) for space {space.name}; run "
                       f"`hwnas profile --device {device} --space {space.name} --what blocks` first") from None


def cache_dir() -> Path:
    """hwnas's user cache directory (``$XDG_CACHE_HOME/hwnas``, default ``~/.cache/hwnas``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hwnas"


def kernel_table(space: Space, backend: str, quiet: bool = False) -> kernel_counts.KernelTable | None:
    """The kernel table of ``space`` as this host's ONNX Runtime CPU optimiser leaves its graphs, for
    an ``onnxruntime`` device (None for other backends or spaces without kernel probes); built once
    per space and runtime version with a progress bar, then read from :func:`cache_dir`."""
    if backend != "onnxruntime" or space.kernel_radices is None:
        return None
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    key = json.dumps([kernel_counts.TABLE_VERSION, space.name, layout_sha256(space.layout()), ort.__version__,
                      providers])
    path = cache_dir() / "kernels" / f"{space.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if path.is_file():
        try:
            return kernel_counts.KernelTable.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass  # an unreadable cache entry is rebuilt
    archs = space.enumerate()
    progress = bar(len(archs), f"kernel table of {space.name} (once per onnxruntime version)", quiet=quiet,
                   unit="arch")
    table = kernel_counts.build(archs, space.kernel_probes, space.kernel_radices, providers, progress.update)
    progress.close()
    write_text_atomic(path, json.dumps(table.to_dict(), separators=(",", ":")))
    return table


def feature_map(store: Store, device: str, backend: str, space: Space,
                quiet: bool = False) -> tuple[FeatureMap, LatencyTable]:
    """The compiled features of ``space`` on a device (block LUT, kernel table where there is one)."""
    table = lut_table(store, device, backend, space)
    return FeatureMap(space.layout(), table, kernels=kernel_table(space, backend, quiet)), table


def training_set(store: Store, device: str, backend: str, space: Space,
                 quiet: bool = False) -> tuple[FeatureMap, LatencyTable, Networks]:
    """The compiled features, the LUT and the usable measured networks; BadInput when too few to fit."""
    features, table = feature_map(store, device, backend, space, quiet)
    nets = networks(store, device, backend, space, features)
    if len(nets.archs) < MIN_NETWORKS:
        raise BadInput(f"device {device!r} has {len(nets.archs)} measured {space.name} network(s) the LUT covers; "
                       f"a cost model needs at least {MIN_NETWORKS}: run `hwnas profile --device {device} --space "
                       f"{space.name} --what networks --num 100` first")
    return features, table, nets


def fit(space: Space, features: FeatureMap, archs: Sequence[str], latency_ms: np.ndarray,
        n_bootstrap: int = 16, seed: int = 0) -> CostModel:
    """A cost model fitted on measured networks ``archs`` with latencies ``latency_ms``."""
    X = features.transform(space.encode(list(archs)))
    model = NetworkCostModel(feature_names=features.schema, n_bootstrap=n_bootstrap,
                             random_state=seed).fit(X, latency_ms)
    return CostModel(space, features, model)


def save(cm: CostModel, path: Path, table: LatencyTable, archs: Sequence[str], latency_ms: np.ndarray,
         **manifest: Any) -> Path:
    """Save a fitted model with its manifest (device, backend, space, schema, training-data hash)."""
    full = {**manifest, "space": cm.space.name, "layout_sha256": layout_sha256(cm.features.layout),
            "training_sha256": persistence.data_sha256(list(zip(archs, latency_ms))), "n_train": len(archs)}
    cm.manifest = full
    return persistence.save(path, cm.model, table, full, keys=sorted(cm.features.layout.keys() | {BASELINE}),
                            kernels=cm.features.kernels)


def load(path: str | Path, space_name: str, device: str | None = None, backend: str | None = None) -> CostModel:
    """Load a saved model and check it against the current space definition (BadInput on any mismatch)."""
    space = spaces.get(space_name)
    try:
        model, table, kernels, manifest = persistence.load(path)
        layout = space.layout()
        expect = {"space": space.name, "layout_sha256": layout_sha256(layout)}
        expect.update({k: v for k, v in (("device", device), ("backend", backend)) if v is not None})
        features = FeatureMap(layout, table, kernels=kernels)
        persistence.check_manifest(path, manifest, model, features.schema, expect)
    except persistence.ModelFileError as exc:
        raise BadInput(str(exc)) from None
    return CostModel(space, features, model, manifest)


def load_cost_model(device: str = "local", space: str = "nasbench201", config: str | Path = "hardware.yaml",
                    path: str | Path | None = None) -> CostModel:
    """The saved cost model of ``device`` and ``space`` from the workspace of the registry ``config``.

    ``path`` loads a model file directly instead. BadInput (an :class:`hwnas.errors.HwnasError`)
    when there is none (fit one with ``hwnas costmodel fit``) or it does not match the space.
    """
    if path is not None:
        return load(path, space)
    reg = hwconfig.load(config)
    dev = reg.device(device)
    path = model_path(reg.workspace, dev.name, dev.backend, space)
    if not path.is_file():
        raise BadInput(f"no {space} cost model for device {device!r} at {path}; run "
                       f"`hwnas costmodel fit --device {device} --space {space} --config {config}` first")
    return load(path, space, dev.name, dev.backend)


def least_certain(cm: CostModel, candidates: Sequence[str], n: int) -> list[tuple[str, float, float]]:
    """The ``n`` candidates of largest relative uncertainty, most uncertain first: (arch, predicted ms, std ms)."""
    if not candidates or n < 1:
        return []
    pred, std = cm.predict(list(candidates), return_std=True)
    order = np.argsort(-(std / pred), kind="stable")[:n]
    return [(candidates[i], float(pred[i]), float(std[i])) for i in order]
