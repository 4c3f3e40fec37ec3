"""The SQLite measurement store: provenance, newest-wins, idempotent retries, schema version."""
import sqlite3
from pathlib import Path

import pytest

from hwnas.errors import BadInput
from hwnas.store import SCHEMA_VERSION, Measurement, Store


def measurement(latency=1.0, signature="onnx:abc", key=None):
    return Measurement(
        device="pi", kind="arm_cpu", backend="onnxruntime", runtime_version="1.32.0",
        providers=["CPUExecutionProvider"], threads=4, affinity=[0, 1], agent_version="0.1.0+abc",
        item="model", model_sha256="ab" * 32, signature=signature, latency_ms=latency,
        stats={"mean_ms": latency, "std_ms": 0.1, "p10_ms": 0.9, "p90_ms": 1.1, "cov": 0.1},
        raw=[[0.9, 1.0, 1.1], [1.0, 1.0, 1.0]], sessions=2, session_spread=0.05, valid=True,
        warnings=[], source="m.onnx", facts={"cpu": "Cortex-A72"}, request_key=key)


def test_every_row_keeps_its_provenance(tmp_path):
    store = Store(tmp_path)
    mid = store.add(measurement())
    row = store.latest("pi", "onnxruntime", "onnx:abc")
    assert row.id == mid
    assert (row.device, row.kind, row.backend, row.runtime_version) == ("pi", "arm_cpu", "onnxruntime", "1.32.0")
    assert row.providers == ["CPUExecutionProvider"] and row.threads == 4 and row.affinity == [0, 1]
    assert row.agent_version == "0.1.0+abc" and row.model_sha256 == "ab" * 32
    assert row.raw == [[0.9, 1.0, 1.1], [1.0, 1.0, 1.0]] and row.stats["p90_ms"] == 1.1
    assert row.created_utc.endswith("Z") and row.facts == {"cpu": "Cortex-A72"}


def test_remeasuring_adds_a_row_and_readers_take_the_newest(tmp_path):
    store = Store(tmp_path)
    store.add(measurement(1.0))
    store.add(measurement(2.0))
    assert store.latest("pi", "onnxruntime", "onnx:abc").latency_ms == 2.0
    assert [m.latency_ms for m in store.history("pi", "onnxruntime", "onnx:abc")] == [1.0, 2.0]
    assert [m.latency_ms for m in store.select("pi")] == [2.0]
    assert len(store.select("pi", newest_only=False)) == 2


def test_a_retried_request_is_recorded_once(tmp_path):
    store = Store(tmp_path)
    first = store.add(measurement(key="k1"))
    assert store.add(measurement(latency=5.0, key="k1")) == first
    assert store.count(device="pi") == 1


def test_newer_schema_is_refused(tmp_path):
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "measurements.sqlite")
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(BadInput, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        Store(tmp_path)


def test_newer_user_version_is_refused(tmp_path):
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "measurements.sqlite")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(BadInput, match=f"schema version {SCHEMA_VERSION + 1} is newer"):
        Store(tmp_path)


def test_not_a_database_is_refused(tmp_path):
    (tmp_path / "measurements.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BadInput, match="not a usable hwnas store"):
        Store(tmp_path)


def test_failed_write_leaves_nothing(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(KeyError):
        store.add(measurement(), node_profile=[{"name": "conv"}])  # no dur_us: fails mid-transaction
    assert store.count() == 0


def test_device_health(tmp_path):
    store = Store(tmp_path)
    assert store.health("pi") is None
    assert store.record_health("pi", False, "timeout", max_failures=2)
    assert not store.record_health("pi", False, "timeout", max_failures=2)
    assert store.health("pi")["healthy"] is False and store.health("pi")["last_error"] == "timeout"
    assert store.record_health("pi", True)
    assert store.health("pi") == {**store.health("pi"), "healthy": True, "failures": 0}


LANDED = Path(__file__).parent / "data" / "store_v1.sql"


def landed_store(folder: Path) -> dict[str, list[tuple]]:
    """A store as the landed hwnas wrote it (schema version 1, no user_version), and its rows."""
    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(folder / "measurements.sqlite")
    db.executescript(LANDED.read_text())
    db.execute("PRAGMA journal_mode=WAL")
    tables = {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
              for t in ("measurements", "devices", "node_profiles", "meta")}
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    db.close()
    return tables


def test_a_store_of_the_landed_schema_migrates_and_keeps_every_row(tmp_path):
    before = landed_store(tmp_path)
    assert len(before["measurements"]) == 3 and before["node_profiles"] and before["devices"]
    store = Store(tmp_path)
    db = sqlite3.connect(tmp_path / "measurements.sqlite")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    for table in ("measurements", "devices", "node_profiles"):
        after = db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
        width = len(before[table][0])  # node_profiles gained kernel shapes (migration 3), NULL on old rows
        assert [row[:width] for row in after] == before[table], table
        assert all(value is None for row in after for value in row[width:]), table
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    db.close()
    # the old rows read back through the API, and the new tables work next to them
    net = store.select("local", item="network")[0]
    assert net.space == "nasbench201" and len(store.node_profile(net.id)) == len(before["node_profiles"])
    assert len(store.select("local")) == 3 and store.health("local")["healthy"]
    sid = store.add_session("run", "local", "onnxruntime", "p", net.model_sha256, net.signature, {"median_ms": 1.0})
    assert store.pending_sessions("run", "local", "onnxruntime", "p") == {
        (net.signature, net.model_sha256): [(sid, {"median_ms": 1.0})]}
    new = store.add(measurement(), consumes=[sid])
    assert store.pending_sessions("run", "local", "onnxruntime", "p") == {}
    assert store.session_rows("local")[0]["measurement_id"] == new
    store.close()
    assert Store(tmp_path).count() == 4  # opening again migrates nothing


def test_every_migration_is_one_step_of_the_schema_version():
    from hwnas.store import MIGRATIONS

    assert SCHEMA_VERSION == len(MIGRATIONS) and all(m.__doc__ for m in MIGRATIONS)
