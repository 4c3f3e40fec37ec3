"""Safe, versioned persistence of whole-network cost models: JSON only, never pickle.

One file holds everything a model needs to predict, as plain JSON::

    {"format": "hwnas-costmodel", "version": 1,
     "manifest": {"hwnas", "sklearn", "numpy", "python" versions, "device", "backend", "space",
                  "feature_schema": [...], "layout_sha256", "training_sha256", "n_train", "created_utc", ...},
     "lut": {"meta": {...}, "entries": {key: {"mean", "std", "count"}}},
     "model": NetworkCostModel.to_dict(),
     "kernels": KernelTable.to_dict() or null (spaces with kernel features),
     "sha256": hash of the canonical JSON of manifest + lut + model + kernels}

Loading parses JSON (``json.loads``: no code runs), checks the format and version,
the checksum (a hand-edited or truncated file is refused), and the model's own
structure (:meth:`NetworkCostModel.from_dict`); :func:`check_manifest` then compares
the feature schema and layout with what the current code computes. Every problem
is a :class:`ModelFileError` naming the file and the cause. Library versions are
recorded for provenance only: predictions use numpy on the stored arrays, so a
scikit-learn upgrade never breaks a saved model.
"""
from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from cost_models.kernels import KernelTable
from cost_models.network_model import NetworkCostModel
from lut.atomic import write_text_atomic
from lut.table import Entry, LatencyTable

FORMAT = "hwnas-costmodel"
VERSION = 2


class ModelFileError(ValueError):
    """A cost-model file that cannot be used (unreadable, tampered, unknown version, wrong schema)."""


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Versions of hwnas and the libraries a model was trained with (recorded, not required)."""
    return {"hwnas": _version("hwnas"), "sklearn": _version("scikit-learn"), "numpy": np.__version__,
            "python": platform.python_version()}


def data_sha256(rows: Sequence[tuple[str, float]]) -> str:
    """Hash of training data given as (architecture, latency ms) pairs (order-independent)."""
    text = json.dumps(sorted([str(a), float(y)] for a, y in rows), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: body[k] for k in ("manifest", "lut", "model", "kernels")})).hexdigest()


def _lut_doc(table: LatencyTable, keys: Sequence[str] | None) -> dict[str, Any]:
    wanted = sorted(table.entries) if keys is None else sorted(set(keys) & set(table.entries))
    return {"meta": {k: v for k, v in table.meta.items() if isinstance(v, (str, int, float, bool, type(None)))},
            "entries": {k: {"mean": table[k].mean_ms, "std": table[k].std_ms, "count": table[k].count}
                        for k in wanted}}


def save(path: str | Path, model: NetworkCostModel, table: LatencyTable, manifest: dict[str, Any],
         keys: Sequence[str] | None = None, kernels: KernelTable | None = None) -> Path:
    """Write ``model``, the LUT entries it uses (``keys``; default all), its kernel table (if any)
    and ``manifest`` atomically.

    The manifest gets the library versions, the feature schema and a creation time added.
    """
    path = Path(path)
    full = {**manifest, **versions(), "feature_schema": list(model.feature_names_in_),
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")}
    body = {"format": FORMAT, "version": VERSION, "manifest": full, "lut": _lut_doc(table, keys),
            "model": model.to_dict(), "kernels": kernels.to_dict() if kernels is not None else None}
    body["sha256"] = _checksum(body)
    write_text_atomic(path, json.dumps(body, indent=1, allow_nan=False) + "\n")
    return path


def _table(path: Path, doc: Any) -> LatencyTable:
    if not isinstance(doc, dict) or not isinstance(doc.get("entries"), dict) or not isinstance(doc.get("meta"), dict):
        raise ModelFileError(f"{path}: 'lut' must hold 'meta' and 'entries' mappings")
    entries = {}
    for key, value in doc["entries"].items():
        try:
            entries[key] = Entry(float(value["mean"]), float(value["std"]), int(value["count"]))
        except (TypeError, ValueError, KeyError):
            raise ModelFileError(f"{path}: LUT entry {key!r} needs numeric mean, std and count") from None
    return LatencyTable(entries, dict(doc["meta"]))


def load(path: str | Path) -> tuple[NetworkCostModel, LatencyTable, KernelTable | None, dict[str, Any]]:
    """Read a file written by :func:`save`: (model, its LUT, its kernel table or None, manifest).
    ModelFileError on any problem, a hostile file's nesting included."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the cost model ({exc.strerror or exc})") from None
    try:
        return _parse(path, data)
    except RecursionError:  # json and the section readers recurse: deep nesting is not a cost model
        raise ModelFileError(f"{path}: JSON nested too deeply to be an hwnas cost model") from None


def _parse(path: Path, data: bytes) -> tuple[NetworkCostModel, LatencyTable, KernelTable | None, dict[str, Any]]:
    try:
        body = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not a JSON cost model ({exc})") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an hwnas cost model (format must be {FORMAT!r})")
    version = body.get("version")
    if version != VERSION:
        raise ModelFileError(f"{path}: cost-model format version {version!r} is not one this hwnas reads "
                             f"({VERSION}); refit with `hwnas costmodel fit`")
    missing = [k for k in ("manifest", "lut", "model", "kernels", "sha256") if k not in body]
    if missing:
        raise ModelFileError(f"{path}: cost model lacks {', '.join(missing)}")
    try:
        intact = body["sha256"] == _checksum(body)
    except ValueError:  # NaN/inf smuggled into the file
        intact = False
    if not intact:
        raise ModelFileError(f"{path}: checksum mismatch — the file was modified or damaged after it was "
                             "written; refit with `hwnas costmodel fit`")
    if not isinstance(body["manifest"], dict):
        raise ModelFileError(f"{path}: 'manifest' must be a mapping")
    try:
        model = NetworkCostModel.from_dict(body["model"])
    except ValueError as exc:
        raise ModelFileError(f"{path}: bad model section ({exc})") from None
    try:
        kernels = KernelTable.from_dict(body["kernels"]) if body["kernels"] is not None else None
    except ValueError as exc:
        raise ModelFileError(f"{path}: bad kernels section ({exc})") from None
    return model, _table(path, body["lut"]), kernels, body["manifest"]


def check_manifest(path: str | Path, manifest: dict[str, Any], model: NetworkCostModel,
                   schema: Sequence[str], expect: dict[str, Any]) -> None:
    """ModelFileError when the feature ``schema`` computed now, or any ``expect``-ed manifest value, differs."""
    for key, value in expect.items():
        if manifest.get(key) != value:
            raise ModelFileError(f"{path}: manifest {key} is {manifest.get(key)!r}, expected {value!r}; "
                                 "refit with `hwnas costmodel fit`")
    if list(manifest.get("feature_schema") or []) != list(schema):
        try:
            model.check_schema(schema)
        except ValueError as exc:
            raise ModelFileError(f"{path}: {exc}; the search space changed since the model was fitted — "
                                 "refit with `hwnas costmodel fit`") from None
        raise ModelFileError(f"{path}: manifest feature_schema differs from the model's own; refit the model")
    model.check_schema(schema)
