"""Store faults injected for real: a second process holding the write lock, a small tmpfs that
fills up, a read-only mount, a workspace that is a file. One named test per fault; every run is a
real ``hwnas`` subprocess (or ``main``) with real agents, bounded by a timeout so a regression
fails instead of hanging.
"""
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from hwnas.cli import main
from hwnas.errors import StoreFull, StoreLocked
from hwnas.store import Store
from tests import sshd_harness as harness
from tests.test_store import measurement

# drift off (see tests/helpers.py); rounds long enough that 40 models take a few seconds a device
SLOW_ENOUGH = "{warmup_ms: 5, repeat: 3, min_repeat_ms: 20, sessions: 1, timeout_s: 60, drift_threshold: 1000, " \
              "interleave: 4}"
RUN_TIMEOUT_S = 120


def two_local_devices(tmp: Path, workspace: Path, lock_timeout_s: float = 30) -> Path:
    path = tmp / "hardware.yaml"
    entries = "".join(
        f"  - name: {name}\n    kind: x86_cpu\n    transport: {{type: local}}\n"
        f"    runtime: {{backend: onnxruntime, providers: [CPUExecutionProvider], threads: 1}}\n"
        f"    measurement: {SLOW_ENOUGH}\n" for name in ("a", "b"))
    path.write_text(f"workspace: {workspace}\nstore_lock_timeout_s: {lock_timeout_s}\ndevices:\n{entries}")
    return path


def start_measure(cfg: Path, models: list[Path], *devices: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "hwnas.cli", "measure", "--config", str(cfg), "--json",
            "--onnx", *map(str, models)]
    for name in devices:
        args += ["--device", name]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"hwnas hung (killed after {RUN_TIMEOUT_S} s): {err[-2000:]}") from None
    return proc.returncode, out, err


def rows(db: Path, device: str | None = None) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=30)
    try:
        where, params = ("WHERE device=?", (device,)) if device else ("", ())
        return conn.execute(f"SELECT COUNT(*) FROM measurements {where}", params).fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        conn.close()


def wait_for(condition, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"hwnas exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        assert time.monotonic() < deadline, "timed out waiting for the run to progress"
        time.sleep(0.05)


@contextlib.contextmanager
def lock_holder(db: Path, hold_s: float):
    """A second process holding ``BEGIN EXCLUSIVE`` on the store for ``hold_s`` seconds."""
    code = ("import sqlite3, sys, time\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n"
            "db.execute('ROLLBACK')\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(hold_s)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def assert_store_whole(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for raw, stats in conn.execute("SELECT raw, stats FROM measurements"):
            assert json.loads(raw) and json.loads(stats)["p10_ms"] > 0


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return harness.tiny_models(tmp_path_factory.mktemp("models"), 40)


@contextlib.contextmanager
def tmpfs(size: str):
    """A real small tmpfs, unmounted afterwards; skips the test where mounting is impossible."""
    point = Path(tempfile.mkdtemp(prefix="hwnas-tmpfs-"))
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                            capture_output=True, text=True, check=False)
    if result.returncode:
        point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)
        point.rmdir()


def remount(point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(point)], check=True)


# --- the write lock held by another process --------------------------------------------------------------------

def test_lock_held_mid_run_on_two_devices_ends_with_exit_1_not_a_hang(tmp_path, models):
    """Defect 1: a worker whose BEGIN failed kept the thread lock, so the other device's worker waited forever."""
    db = tmp_path / "ws" / "measurements.sqlite"
    cfg = two_local_devices(tmp_path, tmp_path / "ws", lock_timeout_s=2)
    proc = start_measure(cfg, models, "a", "b")
    wait_for(lambda: rows(db, "a") >= 1 and rows(db, "b") >= 1, proc)
    with lock_holder(db, hold_s=60):
        assert proc.poll() is None and rows(db) < 2 * len(models)  # the lock strikes mid-run
        code, _, err = finish(proc)
    assert code == 1, err
    assert f"the store {db} is locked by another process (waited 2 s)" in err
    assert "waiting up to 2 s" in err and "Traceback" not in err
    assert_store_whole(db)


def test_lock_released_within_the_wait_lets_both_devices_finish(tmp_path, models):
    db = tmp_path / "ws" / "measurements.sqlite"
    cfg = two_local_devices(tmp_path, tmp_path / "ws", lock_timeout_s=30)
    proc = start_measure(cfg, models[:8], "a", "b")
    wait_for(lambda: rows(db, "a") >= 1 and rows(db, "b") >= 1, proc)
    with lock_holder(db, hold_s=3) as holder:
        holder.wait(timeout=30)
        code, out, err = finish(proc)
    assert code == 0, err
    assert "is locked by another process; waiting up to 30 s" in err and "Traceback" not in err
    assert len(json.loads(out)) == 16 and rows(db, "a") == rows(db, "b") == 8


def test_a_failed_begin_releases_the_thread_lock(tmp_path):
    store = Store(tmp_path, lock_timeout_s=0.5)
    with lock_holder(store.path, hold_s=4) as holder:
        with pytest.raises(StoreLocked, match="is locked by another process"):
            store.add(measurement(signature="onnx:first"))
        # the other thread is not stuck behind a lock the failed transaction kept: it waits for the
        # other process (bounded) like anyone else, and writes once that process lets go
        store.lock_timeout_s = 30
        writer = threading.Thread(target=store.add, args=(measurement(signature="onnx:second"),))
        writer.start()
        holder.wait(timeout=30)
        writer.join(timeout=30)
    assert not writer.is_alive() and store.count() == 1


def test_an_up_to_date_store_opens_and_reads_while_another_process_writes(tmp_path):
    Store(tmp_path).add(measurement())
    with lock_holder(tmp_path / "measurements.sqlite", hold_s=30):
        store = Store(tmp_path, lock_timeout_s=0.5)
        assert store.count() == 1 and store.latest("pi", "onnxruntime", "onnx:abc").latency_ms == 1.0


# --- a full disk -----------------------------------------------------------------------------------------------

def fill(point: Path) -> None:
    """Fill a mount until the kernel says ENOSPC."""
    with open(point / "filler", "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * (1 << 16))
            f.flush()


def test_a_full_disk_writes_nothing_and_says_so(tmp_path):
    with tmpfs("4m") as point:
        store = Store(point / "ws")
        store.add(measurement())
        fill(point)
        with pytest.raises(StoreFull, match="no space left on the device; nothing was half-written"):
            for i in range(200):  # the WAL may have room for a few rows before it must grow
                store.add(measurement(signature=f"onnx:{i}"), node_profile=[{"name": f"n{j}", "dur_us": 1.0}
                                                                              for j in range(200)])
        stored = store.count()
        store.close()
        (point / "filler").unlink()
        reopened = Store(point / "ws")
        assert reopened.count() == stored
        with sqlite3.connect(reopened.path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            orphans = conn.execute("SELECT COUNT(*) FROM node_profiles WHERE measurement_id NOT IN "
                                   "(SELECT id FROM measurements)").fetchone()[0]
        assert orphans == 0 and all(len(reopened.node_profile(m.id)) in (0, 200) for m in reopened.select("pi"))
        reopened.close()


def test_the_disk_filling_mid_run_exits_1_without_a_traceback(tmp_path, models):
    with tmpfs("48m") as point:
        db = point / "ws" / "measurements.sqlite"
        cfg = two_local_devices(tmp_path, point / "ws")
        proc = start_measure(cfg, models, "a")
        wait_for(lambda: rows(db, "a") >= 4, proc)
        fill(point)
        code, _, err = finish(proc)
        assert code == 1, err
        assert "no space left" in err.lower() and "Traceback" not in err, err
        (point / "filler").unlink()
        assert_store_whole(db)
        assert not list((point / "ws" / "agents").rglob("*.part"))  # the agent left no partial model file


def test_an_agent_whose_disk_is_full_replies_with_an_error_and_keeps_serving(tmp_path):
    from hwnas.agent_client import AgentClient
    from hwnas.config import load
    from hwnas.errors import AgentError
    from hwnas.transports import open_transport
    from tests.helpers import conv_model, local_config

    with tmpfs("8m") as point:
        reg = load(local_config(tmp_path))
        transport = open_transport(reg.device("local"), point / "ws")
        client = AgentClient(transport, timeout_s=60)
        client.start()
        try:
            fill(point)
            with pytest.raises(AgentError, match="cannot cache the model in the agent's work dir: No space left"):
                client.load(conv_model(tmp_path / "m.onnx", cin=64, cout=64))
            assert client.ping() >= 0  # still alive
        finally:
            client.close()
            transport.close()
        assert not list(point.rglob("*.part"))


# --- read-only stores and unusable workspaces: bad input, exit 2 ---------------------------------------------

def measure_main(tmp_path: Path, workspace: Path, capsys) -> tuple[int, str]:
    from tests.helpers import conv_model, local_config

    cfg = local_config(tmp_path)
    cfg.write_text(cfg.read_text().replace(f"workspace: {tmp_path / 'ws'}", f"workspace: {workspace}"))
    model = conv_model(tmp_path / "m.onnx")
    code = main(["measure", "--config", str(cfg), "--device", "local", "--onnx", str(model)])
    return code, capsys.readouterr().err


def assert_one_sentence(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hwnas: error: ") and "Traceback" not in err, err


def test_a_read_only_store_exits_2(tmp_path, capsys):
    with tmpfs("4m") as point:
        store = Store(point / "ws")
        store.add(measurement())
        store.close()
        remount(point, "ro")
        try:
            code, err = measure_main(tmp_path, point / "ws", capsys)
        finally:
            remount(point, "rw")
        assert code == 2 and f"the store {point / 'ws' / 'measurements.sqlite'} is read-only" in err
        assert_one_sentence(err)
        store = Store(point / "ws")
        assert store.count() == 1
        store.close()


def test_a_workspace_under_a_read_only_folder_exits_2(tmp_path, capsys):
    with tmpfs("1m") as point:
        remount(point, "ro")
        try:
            code, err = measure_main(tmp_path, point / "ws", capsys)
        finally:
            remount(point, "rw")
        assert code == 2 and f"cannot create the workspace {point / 'ws'}: Read-only file system" in err
        assert_one_sentence(err)


@pytest.mark.parametrize("inside", [False, True])
def test_a_workspace_that_is_a_file_exits_2(tmp_path, capsys, inside):
    (tmp_path / "afile").write_text("not a folder")
    workspace = tmp_path / "afile" / "ws" if inside else tmp_path / "afile"
    code, err = measure_main(tmp_path, workspace, capsys)
    assert code == 2 and f"workspace {workspace}: the path (or a part of it) is a file, not a folder" in err
    assert_one_sentence(err)
    assert (tmp_path / "afile").read_text() == "not a folder"
    assert os.path.isfile(tmp_path / "afile")
