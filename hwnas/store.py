"""The measurement store: SQLite in the workspace, one transaction per result, full provenance.

Every result is one row of ``measurements``; measuring the same thing again adds
a row and readers take the newest unless asked for all. ``devices`` holds the
health of each device (consecutive failures, unhealthy flag). ``sessions`` holds
every session result as it arrives (so a crash loses no device time), until the
item's combined result consumes it; ``runs`` names the runs ``measure --resume`` can continue.

Schema versions: ``PRAGMA user_version`` (mirrored in ``meta.schema_version``, which the
first version used). Opening an older store applies the forward :data:`MIGRATIONS` in one
transaction; a store written by a newer hwnas is refused with a message. Adding a
migration is one function appended to :data:`MIGRATIONS`.

Store errors say what they are: another process holding the write lock is waited for
(``lock_timeout_s``, with a message on stderr) and then :class:`StoreLocked` (exit 1); a
full disk is :class:`StoreFull` (exit 1; the transaction is rolled back, nothing is
half-written); a read-only store or workspace, or a workspace path that is a file, is
BadInput (exit 2); anything else SQLite rejects is "not a usable hwnas store" (exit 2).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwnas.errors import NO_SPACE, BadInput, StoreFull, StoreLocked

log = logging.getLogger("hwnas")

FILENAME = "measurements.sqlite"
LOCK_TIMEOUT_S = 30.0
"""How long a write waits for another process's write lock on the store before giving up."""
_BUSY_SLICE_S = 1.0  # SQLite's own busy wait per attempt; between attempts we can say we are waiting


def _execute_all(db: sqlite3.Connection, script: str) -> None:
    """Run each statement of ``script`` inside the caller's transaction (``executescript`` would commit)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _create_v1(db: sqlite3.Connection) -> None:
    """Version 1, the landed schema: measurements, device health, per-node profiles."""
    _execute_all(db, """
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
)""")


def _add_sessions(db: sqlite3.Connection) -> None:
    """Version 2: every session result as it arrives (consumed by its item's combined
    measurement), and the runs ``measure --resume`` can continue."""
    _execute_all(db, """
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_key TEXT NOT NULL,
    device TEXT NOT NULL,
    backend TEXT NOT NULL,
    provenance TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    signature TEXT NOT NULL,
    result TEXT NOT NULL,
    measurement_id INTEGER REFERENCES measurements(id),
    created_utc TEXT NOT NULL
);
CREATE INDEX sessions_pending ON sessions (device, backend, run_key, provenance) WHERE measurement_id IS NULL;
CREATE TABLE runs (id TEXT PRIMARY KEY, command TEXT NOT NULL, digest TEXT NOT NULL, created_utc TEXT NOT NULL);
CREATE INDEX runs_by_digest ON runs (command, digest, created_utc)""")


def _add_node_shapes(db: sqlite3.Connection) -> None:
    """Version 3: per-node profiles gain the kernel's execution order and its input and output shapes
    (JSON lists), as the device's runtime reports them. Idempotent (columns already there are left
    alone: stores made by the predict branch before this list existed have them)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(node_profiles)")}
    for column in ("position INTEGER", "input_shapes TEXT", "output_shapes TEXT"):
        if column.split()[0] not in have:
            db.execute(f"ALTER TABLE node_profiles ADD COLUMN {column}")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_create_v1, _add_sessions, _add_node_shapes)
"""``MIGRATIONS[v]`` takes a store from schema version ``v`` to ``v + 1`` (0: an empty file)."""
SCHEMA_VERSION = len(MIGRATIONS)


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


def _is_code(exc: sqlite3.Error, *codes: int) -> bool:
    return (getattr(exc, "sqlite_errorcode", -1) & 0xFF) in codes


def _read_only(path: Path) -> bool:
    """Whether ``path`` (or its folder, when it does not exist) sits on a read-only mount or is not writable."""
    target = path if path.exists() else path.parent
    try:
        return bool(os.statvfs(target).f_flag & os.ST_RDONLY) or not os.access(target, os.W_OK)
    except OSError:
        return False


def _workspace_folder(folder: Path) -> None:
    """Create the workspace folder; BadInput (one sentence) when it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BadInput(f"workspace {folder}: the path (or a part of it) is a file, not a folder; "
                       "set `workspace:` in hardware.yaml to a folder") from None
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise StoreFull(f"cannot create the workspace {folder}: no space left on the device") from None
        raise BadInput(f"cannot create the workspace {folder}: {exc.strerror or exc}") from None


class Store:
    """The SQLite measurement store of one workspace. Safe to share between threads.

    ``lock_timeout_s`` bounds how long a write waits while another process holds the store's
    write lock (a message goes to stderr once it has waited ``_BUSY_SLICE_S``)."""

    def __init__(self, workspace: str | Path, lock_timeout_s: float = LOCK_TIMEOUT_S) -> None:
        self.path = Path(workspace) / FILENAME
        self.lock_timeout_s = lock_timeout_s
        _workspace_folder(self.path.parent)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        with self._errors():
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                       timeout=min(_BUSY_SLICE_S, lock_timeout_s))
            self._db.execute("PRAGMA foreign_keys=ON")
            # WAL + NORMAL: a commit survives the process being killed (SIGKILL, a crash) and is never
            # half-written; only a power cut can lose the last commits. FULL would fsync every
            # session (≈10 ms each on a loaded VM: bench/session_store.py)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn SQLite and OS errors into typed hwnas errors that say which problem it is."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._typed(exc) from None
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise self._full() from None
            raise

    def _full(self) -> StoreFull:
        return StoreFull(f"the store {self.path}: no space left on the device; nothing was half-written "
                         "(free space and run again)")

    def _typed(self, exc: sqlite3.Error) -> Exception:
        if _is_code(exc, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return StoreLocked(f"the store {self.path} is locked by another process (waited "
                               f"{self.lock_timeout_s:.0f} s); let it finish, or use another workspace")
        if _is_code(exc, sqlite3.SQLITE_FULL):
            return self._full()
        if _is_code(exc, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
            what = "is read-only" if _read_only(self.path) else "cannot be opened for writing"
            return BadInput(f"the store {self.path} {what} ({exc}); make the workspace writable, or point "
                            "`workspace:` in hardware.yaml elsewhere")
        if _is_code(exc, sqlite3.SQLITE_IOERR):
            return StoreFull(f"the store {self.path}: the disk failed a write ({exc}); nothing was half-written")
        return BadInput(f"{self.path}: not a usable hwnas store ({exc})")

    def _version(self) -> int:
        """The store's schema version: ``user_version``, or ``meta.schema_version`` (version 1
        predates ``user_version``); 0 for an empty file. The larger wins, so a newer store is
        recognised whichever of the two its hwnas wrote."""
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        has_meta = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if has_meta:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = max(version, int(row[0]) if row else 1)
        return version

    def _check_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise BadInput(f"{self.path}: store schema version {version} is newer than this hwnas "
                           f"understands ({SCHEMA_VERSION}); upgrade hwnas or use another workspace")

    def _migrate(self) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION`: forward migrations in one transaction.
        An up-to-date store is only read here (opening it needs no write lock)."""
        version = self._version()
        self._check_newer(version)
        if version == SCHEMA_VERSION:
            return
        if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self._db.execute("PRAGMA journal_mode=WAL")
        with self._transaction() as db:
            version = self._version()  # another process may have migrated it meanwhile
            self._check_newer(version)
            for migrate in MIGRATIONS[version:]:
                migrate(db)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting up to ``lock_timeout_s`` for another process's write lock."""
        deadline = time.monotonic() + self.lock_timeout_s
        told = False
        while True:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_code(exc, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() >= deadline:
                    raise
                if not told:
                    log.warning("the store %s is locked by another process; waiting up to %.0f s",
                                self.path, self.lock_timeout_s)
                    told = True

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: this thread holds the store's lock throughout and releases it
        whatever happens (a failed BEGIN included); rolled back on any error."""
        with self._lock, self._errors():
            self._begin()
            try:
                yield self._db
                self._db.execute("COMMIT")
            finally:
                if self._db.in_transaction:  # an error, or a COMMIT that failed (disk full, lock)
                    self._db.execute("ROLLBACK")

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            yield self._db

    def add(self, m: Measurement, node_profile: list[dict[str, Any]] | None = None,
            consumes: Sequence[int] = ()) -> int:
        """Store one measurement (and its per-node profile) in one transaction; returns its id.
        The stored sessions ``consumes`` (ids from :meth:`add_session`) are marked as used by
        it in the same transaction.

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
                    self._consume(db, consumes, int(found[0]))
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
            self._consume(db, consumes, mid)
        return mid

    @staticmethod
    def _consume(db: sqlite3.Connection, session_ids: Sequence[int], measurement_id: int) -> None:
        db.executemany("UPDATE sessions SET measurement_id=? WHERE id=?", [(measurement_id, i) for i in session_ids])

    def add_session(self, run_key: str, device: str, backend: str, provenance: str, model_sha256: str,
                    signature: str, result: dict[str, Any]) -> int:
        """Store one session's result (the agent's ``measure`` reply) as soon as it arrives; returns its id.
        It stays pending until a combined measurement consumes it (:meth:`add`)."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO sessions (run_key, device, backend, provenance, model_sha256, signature, result, "
                "created_utc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_key, device, backend, provenance, model_sha256, signature, json.dumps(result), utc_now()))
            return int(cursor.lastrowid)

    def pending_sessions(self, run_key: str, device: str, backend: str,
                         provenance: str) -> dict[tuple[str, str], list[tuple[int, dict[str, Any]]]]:
        """Stored sessions no measurement has consumed yet, of one run key, device, backend and
        provenance: ``{(signature, model_sha256): [(session id, result), ...]}``, oldest first."""
        with self._reading():
            rows = self._db.execute(
                "SELECT id, signature, model_sha256, result FROM sessions WHERE device=? AND backend=? AND "
                "run_key=? AND provenance=? AND measurement_id IS NULL ORDER BY id",
                (device, backend, run_key, provenance)).fetchall()
        found: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
        for sid, signature, sha, result in rows:
            found.setdefault((signature, sha), []).append((int(sid), json.loads(result)))
        return found

    def session_rows(self, device: str) -> list[dict[str, Any]]:
        """Every stored session of a device (id, run key, signature, consuming measurement, time), oldest first."""
        with self._reading():
            rows = self._db.execute("SELECT id, run_key, signature, measurement_id, created_utc FROM sessions "
                                    "WHERE device=? ORDER BY id", (device,)).fetchall()
        return [dict(zip(("id", "run_key", "signature", "measurement_id", "created_utc"), r)) for r in rows]

    def start_run(self, run_id: str, command: str, digest: str) -> None:
        """Record a run (what ``measure --resume`` looks up by command and digest)."""
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?)", (run_id, command, digest, utc_now()))

    def latest_run(self, command: str, digest: str) -> str | None:
        """Id of the newest recorded run of ``command`` with ``digest``, or None."""
        with self._reading():
            row = self._db.execute("SELECT id FROM runs WHERE command=? AND digest=? ORDER BY created_utc DESC, "
                                   "rowid DESC LIMIT 1", (command, digest)).fetchone()
        return row[0] if row else None

    def by_request_key(self, key: str) -> Measurement | None:
        """The measurement stored under an idempotency key, or None."""
        rows = list(self._rows("SELECT * FROM measurements WHERE request_key=? LIMIT 1", (key,)))
        return rows[0] if rows else None

    def _rows(self, sql: str, params: tuple[Any, ...]) -> Iterator[Measurement]:
        with self._reading():
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
        with self._reading():
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

    def round_probe_medians(self, device: str, kernel: str, limit: int, memory: bool = False) -> list[float]:
        """Per measurement, the median of its per-round reference-kernel probes (``kernel``), or with
        ``memory`` of its memory probes (memory-probe kernel ``kernel``), for the oldest ``limit``
        measurements of ``device`` that have them."""
        value_key, kernel_key = (("memory_probe_median_ms", "memory_probe_kernel") if memory
                                 else ("reference_rounds_median_ms", "reference_kernel"))
        with self._reading():
            rows = self._db.execute("SELECT stats FROM measurements WHERE device=? ORDER BY id", (device,)).fetchall()
        medians = []
        for (stats,) in rows:
            stats = json.loads(stats)
            value = stats.get(value_key)
            if stats.get(kernel_key) == kernel and isinstance(value, (int, float)) and value > 0:
                medians.append(float(value))
                if len(medians) == limit:
                    break
        return medians

    def meta_value(self, key: str) -> str | None:
        """The store's meta value under ``key`` (None if unset)."""
        with self._reading():
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta_once(self, key: str, value: str) -> str:
        """Set meta ``key`` unless it is set already (another process may have won); returns the stored value."""
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
            return db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0]

    def signatures(self, device: str, backend: str) -> set[str]:
        """Every signature stored for a device + backend (what a resumed sweep may skip)."""
        return set(self.signature_counts(device, backend))

    def signature_counts(self, device: str, backend: str) -> dict[str, int]:
        """How many measurements each signature stored for a device + backend has."""
        with self._reading():
            rows = self._db.execute("SELECT signature, COUNT(*) FROM measurements WHERE device=? AND backend=? "
                                    "GROUP BY signature", (device, backend)).fetchall()
        return {sig: int(n) for sig, n in rows}

    def count(self, **where: Any) -> int:
        """Number of measurement rows matching column=value filters."""
        clause = " AND ".join(f"{k}=?" for k in where) or "1"
        with self._reading():
            return int(self._db.execute(f"SELECT COUNT(*) FROM measurements WHERE {clause}",
                                        tuple(where.values())).fetchone()[0])

    def node_profile(self, measurement_id: int) -> list[dict[str, Any]]:
        """Per-node times stored with a measurement, slowest first (with ``index``, the execution
        order, and ``input_shapes``/``output_shapes``; None for profiles stored before shapes were)."""
        with self._reading():
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
        with self._reading():
            row = self._db.execute("SELECT healthy, failures, last_error, updated_utc FROM devices WHERE name=?",
                                   (device,)).fetchone()
        if row is None:
            return None
        return {"healthy": bool(row[0]), "failures": row[1], "last_error": row[2], "updated_utc": row[3]}

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            if self._db is not None:
                self._db.close()
