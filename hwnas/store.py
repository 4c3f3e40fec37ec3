"""The measurement store: SQLite in the workspace, one transaction per result, full provenance.

Every result is one row of ``measurements``; measuring the same thing again adds
a row and readers take the newest unless asked for all. ``devices`` holds the
health of each device (consecutive failures, unhealthy flag). The schema version
lives in ``meta``; a store written by a newer hwnas is refused with a message.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from hwnas.errors import BadInput

SCHEMA_VERSION = 1
FILENAME = "measurements.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    backend TEXT NOT NULL,
    runtime_version TEXT,
    providers TEXT NOT NULL,
    threads INTEGER,
    affinity TEXT,
    agent_version TEXT NOT NULL,
    item TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    signature TEXT NOT NULL,
    space TEXT,
    arch TEXT,
    source TEXT,
    latency_ms REAL NOT NULL,
    mean_ms REAL, std_ms REAL, p10_ms REAL, p90_ms REAL, cov REAL,
    sessions INTEGER NOT NULL,
    session_spread REAL,
    valid INTEGER NOT NULL,
    warnings TEXT NOT NULL,
    stats TEXT NOT NULL,
    raw TEXT NOT NULL,
    facts TEXT,
    request_key TEXT,
    created_utc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS by_signature ON measurements (device, backend, signature, id);
CREATE INDEX IF NOT EXISTS by_request ON measurements (request_key);
CREATE TABLE IF NOT EXISTS devices (
    name TEXT PRIMARY KEY,
    healthy INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    last_error TEXT,
    updated_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS node_profiles (
    measurement_id INTEGER NOT NULL REFERENCES measurements(id),
    name TEXT NOT NULL, op_type TEXT, provider TEXT, dur_us REAL NOT NULL
);
"""


def add_node_shapes(db: sqlite3.Connection) -> None:
    """Migration: per-node profiles gain the kernel's execution order and its input and output
    shapes (JSON lists), as the device's runtime reports them. Idempotent (columns already there
    are left alone), so it is safe on a store created with them. When the store has
    ``PRAGMA user_version`` migrations (issue 11), this is one step of that list."""
    have = {row[1] for row in db.execute("PRAGMA table_info(node_profiles)")}
    for column in ("position INTEGER", "input_shapes TEXT", "output_shapes TEXT"):
        if column.split()[0] not in have:
            db.execute(f"ALTER TABLE node_profiles ADD COLUMN {column}")


def utc_now() -> str:
    """Current UTC time in ISO 8601 with a Z suffix."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Measurement:
    """One measured result with its provenance, as stored (one row)."""

    device: str
    kind: str
    backend: str
    runtime_version: str | None
    providers: list[str]
    threads: int | None
    affinity: list[int] | None
    agent_version: str
    item: str                      # 'model' | 'block' | 'network'
    model_sha256: str
    signature: str
    latency_ms: float              # median over sessions of each session's median
    stats: dict[str, Any]          # mean/std/p10/p90/cov etc. of the pooled rounds
    raw: list[list[float]]         # round times (ms), one list per session
    sessions: int
    session_spread: float          # (max-min)/median of the session medians
    valid: bool
    warnings: list[str] = field(default_factory=list)
    space: str | None = None
    arch: str | None = None
    source: str | None = None      # e.g. the model path as given
    facts: dict[str, Any] | None = None
    request_key: str | None = None  # idempotency key of the request that produced it
    created_utc: str = field(default_factory=utc_now)
    id: int | None = None


_COLUMNS = ("device", "kind", "backend", "runtime_version", "providers", "threads", "affinity",
            "agent_version", "item", "model_sha256", "signature", "space", "arch", "source",
            "latency_ms", "mean_ms", "std_ms", "p10_ms", "p90_ms", "cov", "sessions", "session_spread",
            "valid", "warnings", "stats", "raw", "facts", "request_key", "created_utc")
_JSON_FIELDS = ("providers", "affinity", "warnings", "stats", "raw", "facts")


class Store:
    """The SQLite measurement store of one workspace. Safe to share between threads."""

    def __init__(self, workspace: str | Path) -> None:
        self.path = Path(workspace) / FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            raise BadInput(f"{self.path}: not a usable hwnas store ({exc})") from None

    def _check_schema(self) -> None:
        has_meta = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if has_meta:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise BadInput(f"{self.path}: store schema version {version} is newer than this hwnas "
                               f"understands ({SCHEMA_VERSION}); upgrade hwnas or use another workspace")
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            add_node_shapes(self._db)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    class _Tx:
        def __init__(self, store: "Store") -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            self.store._db.execute("BEGIN IMMEDIATE")
            return self.store._db

        def __exit__(self, exc_type, exc, tb) -> None:
            try:
                self.store._db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.store._lock.release()

    def _transaction(self) -> "Store._Tx":
        return Store._Tx(self)

    def add(self, m: Measurement, node_profile: list[dict[str, Any]] | None = None) -> int:
        """Store one measurement (and its per-node profile) in one transaction; returns its id.

        If ``m.request_key`` is set and a row with that key exists, nothing is written and
        the existing id is returned: a request retried after a fault is never recorded twice.
        """
        row = {name: getattr(m, name, None) for name in _COLUMNS}
        for key in ("mean_ms", "std_ms", "p10_ms", "p90_ms", "cov"):
            row[key] = m.stats.get(key)
        for key in _JSON_FIELDS:
            row[key] = json.dumps(row[key]) if row[key] is not None else None
        row["valid"] = int(m.valid)
        with self._transaction() as db:
            if m.request_key:
                found = db.execute("SELECT id FROM measurements WHERE request_key=?", (m.request_key,)).fetchone()
                if found:
                    return int(found[0])
            cursor = db.execute(
                f"INSERT INTO measurements ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                [row[name] for name in _COLUMNS])
            mid = int(cursor.lastrowid)
            for node in node_profile or []:
                db.execute("INSERT INTO node_profiles (measurement_id, name, op_type, provider, dur_us, position, "
                           "input_shapes, output_shapes) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (mid, node["name"], node.get("op_type"), node.get("provider"), node["dur_us"],
                            node.get("index"), json.dumps(node.get("input_shapes")),
                            json.dumps(node.get("output_shapes"))))
        return mid

    def _rows(self, sql: str, params: tuple[Any, ...]) -> Iterator[Measurement]:
        with self._lock:
            cursor = self._db.execute(sql, params)
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
        for values in rows:
            row = dict(zip(names, values))
            for key in _JSON_FIELDS:
                row[key] = json.loads(row[key]) if row[key] is not None else None
            row["valid"] = bool(row["valid"])
            for key in ("mean_ms", "std_ms", "p10_ms", "p90_ms", "cov"):
                row.pop(key)
            yield Measurement(**row)

    def latest(self, device: str, backend: str, signature: str) -> Measurement | None:
        """Newest measurement of ``signature`` on a device + backend, or None."""
        rows = list(self._rows(
            "SELECT * FROM measurements WHERE device=? AND backend=? AND signature=? ORDER BY id DESC LIMIT 1",
            (device, backend, signature)))
        return rows[0] if rows else None

    def history(self, device: str, backend: str, signature: str) -> list[Measurement]:
        """Every measurement of ``signature`` on a device + backend, oldest first."""
        return list(self._rows(
            "SELECT * FROM measurements WHERE device=? AND backend=? AND signature=? ORDER BY id",
            (device, backend, signature)))

    def select(self, device: str, backend: str | None = None, item: str | None = None,
               space: str | None = None, newest_only: bool = True) -> list[Measurement]:
        """Measurements of one device, filtered; the newest per signature unless ``newest_only`` is False."""
        where, params = ["device=?"], [device]
        for column, value in (("backend", backend), ("item", item), ("space", space)):
            if value is not None:
                where.append(f"{column}=?")
                params.append(value)
        clause = " AND ".join(where)
        if newest_only:
            sql = (f"SELECT * FROM measurements WHERE id IN (SELECT MAX(id) FROM measurements WHERE {clause} "
                   "GROUP BY backend, signature) ORDER BY id")
        else:
            sql = f"SELECT * FROM measurements WHERE {clause} ORDER BY id"
        return list(self._rows(sql, tuple(params)))

    def reference_probes(self, device: str, agent_version: str, kernel: str, limit: int = 100) -> list[float]:
        """Probe times (ms) of reference kernel ``kernel`` stored with the newest ``limit``
        measurements of ``device`` by agent version ``agent_version``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT stats FROM measurements WHERE device=? AND agent_version=? ORDER BY id DESC LIMIT ?",
                (device, agent_version, limit)).fetchall()
        probes = []
        for (stats,) in rows:
            stats = json.loads(stats)
            if stats.get("reference_kernel") != kernel:
                continue
            for pair in stats.get("reference_ms") or []:
                probes += [float(v) for v in pair or [] if isinstance(v, (int, float)) and v > 0]
        return probes

    def signatures(self, device: str, backend: str) -> set[str]:
        """Every signature stored for a device + backend (what a resumed sweep may skip)."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT signature FROM measurements WHERE device=? AND backend=?",
                                    (device, backend)).fetchall()
        return {r[0] for r in rows}

    def count(self, **where: Any) -> int:
        """Number of measurement rows matching column=value filters."""
        clause = " AND ".join(f"{k}=?" for k in where) or "1"
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM measurements WHERE {clause}",
                                        tuple(where.values())).fetchone()[0])

    def node_profile(self, measurement_id: int) -> list[dict[str, Any]]:
        """Per-node times stored with a measurement, slowest first (with ``index``, the execution
        order, and ``input_shapes``/``output_shapes``; None for profiles stored before shapes were)."""
        with self._lock:
            rows = self._db.execute("SELECT name, op_type, provider, dur_us, position, input_shapes, output_shapes "
                                    "FROM node_profiles WHERE measurement_id=? ORDER BY dur_us DESC",
                                    (measurement_id,)).fetchall()
        keys = ("name", "op_type", "provider", "dur_us", "index", "input_shapes", "output_shapes")
        nodes = [dict(zip(keys, r)) for r in rows]
        for node in nodes:
            for key in ("input_shapes", "output_shapes"):
                node[key] = json.loads(node[key]) if node[key] else None
        return nodes

    def record_health(self, device: str, ok: bool, error: str | None = None, max_failures: int = 3) -> bool:
        """Count a success (resets) or failure for a device; returns whether it is still healthy."""
        with self._transaction() as db:
            row = db.execute("SELECT failures FROM devices WHERE name=?", (device,)).fetchone()
            failures = 0 if ok else (row[0] if row else 0) + 1
            healthy = failures < max_failures
            db.execute("INSERT OR REPLACE INTO devices VALUES (?, ?, ?, ?, ?)",
                       (device, int(healthy), failures, None if ok else error, utc_now()))
        return healthy

    def health(self, device: str) -> dict[str, Any] | None:
        """The stored health of a device, or None if never recorded."""
        with self._lock:
            row = self._db.execute("SELECT healthy, failures, last_error, updated_utc FROM devices WHERE name=?",
                                   (device,)).fetchone()
        if row is None:
            return None
        return {"healthy": bool(row[0]), "failures": row[1], "last_error": row[2], "updated_utc": row[3]}

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
