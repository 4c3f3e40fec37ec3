"""Saving and loading latency tables as JSON, CSV or OFA-style YAML (chosen by file suffix).

* ``.json`` — ``{"format": "hwnas-lut", "version": 1, "meta": {...}, "overheads": {space: {...}},
  "entries": {key: {"count", "mean", "std"}}}``; everything round-trips.
* ``.csv`` — one row per key: ``key,count,mean_ms,std_ms,device,backend,runtime_version,unit``
  (metadata repeated per row so the file stands alone in any CSV tool; overheads are not kept).
* ``.yaml``/``.yml`` — the Once-for-All lookup-table shape ``{key: {count, mean, std}}`` in ms,
  metadata in a ``# key: value`` comment header (OFA readers ignore it); overheads are not kept.

Loading uses ``yaml.safe_load`` only. Errors are ``ValueError`` naming the file and the cause.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import yaml

from lut.atomic import write_text_atomic
from lut.table import Entry, LatencyTable, Overhead

FORMAT = "hwnas-lut"
VERSION = 1
SUFFIXES = (".json", ".csv", ".yaml", ".yml")
_CSV_META = ("device", "backend", "runtime_version", "unit")


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unknown LUT format {suffix or '(no suffix)'!r}; use .json, .csv or .yaml")
    return "yaml" if suffix in (".yaml", ".yml") else suffix[1:]


def _ofa_entries(table: LatencyTable) -> dict[str, dict[str, Any]]:
    return {k: {"count": e.count, "mean": e.mean_ms, "std": e.std_ms} for k, e in sorted(table.entries.items())}


def save(table: LatencyTable, path: str | Path) -> Path:
    """Write ``table`` to ``path`` in the format its suffix names (atomically); returns the path."""
    path = Path(path)
    kind = _kind(path)
    meta = {"unit": "ms", **table.meta}
    if kind == "json":
        doc = {"format": FORMAT, "version": VERSION, "meta": meta,
               "overheads": {s: o.to_dict() for s, o in sorted(table.overheads.items())},
               "entries": _ofa_entries(table)}
        write_text_atomic(path, json.dumps(doc, indent=1) + "\n")
    elif kind == "csv":
        rows = [["key", "count", "mean_ms", "std_ms", *_CSV_META]]
        rows += [[k, e.count, repr(e.mean_ms), repr(e.std_ms), *(meta.get(m, "") for m in _CSV_META)]
                 for k, e in sorted(table.entries.items())]
        write_text_atomic(path, _csv_text(rows))
    else:
        header = "".join(f"# {k}: {json.dumps(v)}\n" for k, v in sorted(meta.items()))
        body = yaml.safe_dump(_ofa_entries(table), sort_keys=True, default_flow_style=False)
        write_text_atomic(path, f"# hwnas latency lookup table (OFA style: mean/std in ms)\n{header}{body}")
    return path


def _csv_text(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _entry(path: Path, key: str, value: Any) -> Entry:
    if not isinstance(value, dict) or "mean" not in value:
        raise ValueError(f"{path}: entry {key!r} must be a mapping with mean (and count, std)")
    try:
        return Entry(float(value["mean"]), float(value.get("std", 0.0)), int(value.get("count", 1)))
    except (TypeError, ValueError):
        raise ValueError(f"{path}: entry {key!r} has a non-numeric count/mean/std") from None


def load(path: str | Path) -> LatencyTable:
    """Read a table written by :func:`save` (or any OFA-style YAML LUT)."""
    path = Path(path)
    kind = _kind(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    if kind == "json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"{path}: not an hwnas LUT (format must be {FORMAT!r})")
        if doc.get("version", 0) > VERSION:
            raise ValueError(f"{path}: LUT format version {doc['version']} is newer than this hwnas reads")
        entries = {k: _entry(path, k, v) for k, v in doc.get("entries", {}).items()}
        overheads = {s: Overhead(o["mode"], float(o["a"]), float(o["b"]), int(o.get("n", 0)))
                     for s, o in doc.get("overheads", {}).items()}
        return LatencyTable(entries, dict(doc.get("meta", {})), overheads)
    if kind == "csv":
        rows = list(csv.DictReader(text.splitlines()))
        missing = {"key", "mean_ms"} - set(rows[0] if rows else {})
        if missing:
            raise ValueError(f"{path}: CSV LUT needs columns key and mean_ms (missing {', '.join(sorted(missing))})")
        entries = {r["key"]: _entry(path, r["key"], {"mean": r["mean_ms"], "std": r.get("std_ms") or 0,
                                                     "count": r.get("count") or 1}) for r in rows}
        meta = {m: rows[0][m] for m in _CSV_META if rows[0].get(m)}
        return LatencyTable(entries, meta)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: an OFA-style LUT is a mapping of key -> {{count, mean, std}}")
    meta: dict[str, Any] = {}
    for line in text.splitlines():
        if not line.startswith("# ") or ": " not in line:
            continue
        name, _, value = line[2:].partition(": ")
        try:
            meta[name] = json.loads(value)
        except json.JSONDecodeError:
            continue  # a free-text comment line, not metadata
    return LatencyTable({str(k): _entry(path, str(k), v) for k, v in doc.items()}, meta)
