"""Faults injected during a 100-model ``hwnas measure`` over SSH: one named test per fault.

Each ends with every model measured exactly once in the store (rows counted,
request keys distinct), except on a device that was frozen for good, which is
marked unhealthy while the other device finishes.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hwnas.store import Store
from tests import sshd_harness as harness

pytestmark = pytest.mark.slow
N = 100
# drift retries off (see tests/helpers.py); small interleave windows, so results are stored
# while the run goes on and a fault strikes between stored windows
FAST = ("{warmup_ms: 0, repeat: 3, min_repeat_ms: 1, sessions: 1, timeout_s: 3, drift_threshold: 1000, "
        "interleave: 4}")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return harness.tiny_models(tmp_path_factory.mktemp("models"), N)


def write_config(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "hardware.yaml"
    path.write_text(f"workspace: {tmp_path / 'ws'}\ndevices:\n" + "".join(entries))
    return path


def start_measure(cfg: Path, devices: list[str], models: list[Path]) -> subprocess.Popen:
    args = [sys.executable, "-m", "hwnas.cli", "measure", "--config", str(cfg), "--json",
            "--onnx", *map(str, models)]
    for name in devices:
        args += ["--device", name]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interruptible)


def _interruptible() -> None:
    """In the child before exec: SIGINT at its default and unblocked, as a terminal's Ctrl-C finds a
    command. A test run started as a background job of a non-interactive shell has SIGINT ignored,
    and an ignored disposition is inherited: Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def stored(tmp_path: Path, device: str) -> int:
    db = tmp_path / "ws" / "measurements.sqlite"
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM measurements WHERE device=?", (device,)).fetchone()[0]
    except sqlite3.OperationalError:  # the store is still creating its schema
        return 0
    finally:
        conn.close()


def wait_for(condition, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"hwnas exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the run to progress")
        time.sleep(0.05)


def assert_measured_exactly_once(tmp_path: Path, device: str, models: list[Path]) -> None:
    db = tmp_path / "ws" / "measurements.sqlite"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT request_key, source FROM measurements WHERE device=?", (device,)).fetchall()
    assert len(rows) == len(models), f"{device}: {len(rows)} rows for {len(models)} models"
    assert len({key for key, _ in rows}) == len(rows), "a request was recorded twice"
    assert sorted(source for _, source in rows) == sorted(map(str, models))


def finish(proc: subprocess.Popen, timeout: float = 150) -> tuple[int, list, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, json.loads(out or "[]"), err


def test_agent_sigkilled_three_times(tmp_path, ssh_server, models):
    workdir = tmp_path / "remote"
    cfg = write_config(tmp_path, harness.ssh_device_yaml("dev", ssh_server, workdir, FAST))
    proc = start_measure(cfg, ["dev"], models)
    killed = []
    for threshold in (10, 40, 70):
        wait_for(lambda t=threshold: stored(tmp_path, "dev") >= t and harness.agent_pids(workdir), 120, proc)
        pid = harness.agent_pids(workdir)[0]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        wait_for(lambda p=pid: p not in harness.agent_pids(workdir), 10)
    code, rows, err = finish(proc)
    assert code == 0, err
    assert len(set(killed)) == 3 and err.count("fault 1 of 3 in a row") >= 3
    assert len(rows) == N
    assert_measured_exactly_once(tmp_path, "dev", models)
    assert Store(tmp_path / "ws").health("dev")["healthy"]


def test_sshd_restarted_mid_run(tmp_path, ssh_server, models):
    workdir = tmp_path / "remote"
    cfg = write_config(tmp_path, harness.ssh_device_yaml("dev", ssh_server, workdir, FAST))
    proc = start_measure(cfg, ["dev"], models)
    wait_for(lambda: stored(tmp_path, "dev") >= 30, 120, proc)
    harness.stop(ssh_server)  # sshd, its sessions and the agent under them all go
    time.sleep(1.0)
    harness.start(ssh_server)
    code, rows, err = finish(proc)
    assert code == 0, err
    assert "fault 1 of 3 in a row" in err  # the fault was seen and survived
    assert len(rows) == N
    assert_measured_exactly_once(tmp_path, "dev", models)


def test_namespace_link_down_for_five_seconds(tmp_path, netns_ok, models):
    workdir = tmp_path / "remote"
    with harness.namespace("ld") as ns, \
            harness.sshd(tmp_path / "sshd", host=ns.ns_ip, port=22, netns=ns.name) as server:
        # slower rounds than FAST, so the rest of the run (~70 models x ~150 ms) outlasts the outage
        slow = FAST.replace("min_repeat_ms: 1", "min_repeat_ms: 50")
        cfg = write_config(tmp_path, harness.ssh_device_yaml("dev", server, workdir, slow))
        proc = start_measure(cfg, ["dev"], models)
        wait_for(lambda: stored(tmp_path, "dev") >= 30, 120, proc)
        # results are stored per window of 4; the next window first uploads its models over SFTP (which
        # rides out a 5 s outage within its own timeout), so pull the link once measuring is under way
        time.sleep(1.0)
        ns.link(up=False)
        assert stored(tmp_path, "dev") < N and proc.poll() is None  # work is in flight when the link drops
        time.sleep(5.0)
        ns.link(up=True)
        code, rows, err = finish(proc)
        assert code == 0, err
        assert "no reply from the agent" in err  # the in-flight request timed out and was retried
        assert len(rows) == N
        assert_measured_exactly_once(tmp_path, "dev", models)
        assert len(harness.agent_pids(workdir)) == 0  # the agent stranded behind the dead link was killed


def test_agent_frozen_past_its_timeout(tmp_path, ssh_server, models):
    """Every agent of 'frozen' gets SIGSTOPped once it has stored a window: it is marked unhealthy,
    'steady' finishes."""
    frozen_dir, steady_dir = tmp_path / "frozen", tmp_path / "steady"
    cfg = write_config(tmp_path, harness.ssh_device_yaml("frozen", ssh_server, frozen_dir, FAST),
                       harness.ssh_device_yaml("steady", ssh_server, steady_dir, FAST))
    proc = start_measure(cfg, ["frozen", "steady"], models)
    stopped: set[int] = set()
    done = threading.Event()

    def freezer() -> None:
        while not done.is_set():
            if stored(tmp_path, "frozen") >= 16:
                for pid in harness.agent_pids(frozen_dir):
                    if pid not in stopped:
                        os.kill(pid, signal.SIGSTOP)
                        stopped.add(pid)
            time.sleep(0.05)

    thread = threading.Thread(target=freezer, daemon=True)
    thread.start()
    try:
        code, rows, err = finish(proc)
    finally:
        done.set()
        thread.join()
    assert code == 1 and "frozen: marked unhealthy after 3 faults in a row" in err, err
    assert len(stopped) >= 3 and harness.agent_pids(frozen_dir) == []  # every frozen agent was killed
    health = Store(tmp_path / "ws").health("frozen")
    assert health and not health["healthy"] and "no reply" in health["last_error"]
    assert_measured_exactly_once(tmp_path, "steady", models)
    assert len([r for r in rows if r["device"] == "steady"]) == N
    with sqlite3.connect(tmp_path / "ws" / "measurements.sqlite") as conn:
        keys = [k for (k,) in conn.execute("SELECT request_key FROM measurements WHERE device='frozen'")]
    assert 16 <= len(keys) < N and len(set(keys)) == len(keys)


def test_ctrl_c_kills_the_remote_agent_and_leaves_whole_rows(tmp_path, ssh_server, models):
    workdir = tmp_path / "remote"
    # three sessions a model: the run lasts several seconds after the first rows land, so the
    # interrupt reaches it mid-run even when this test process is slowed by load
    cfg = write_config(tmp_path, harness.ssh_device_yaml("dev", ssh_server, workdir,
                                                         FAST.replace("sessions: 1", "sessions: 3")))
    proc = start_measure(cfg, ["dev"], models)
    wait_for(lambda: stored(tmp_path, "dev") >= 16, 120, proc)
    assert proc.poll() is None, "the run ended before the interrupt could be sent"
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, timeout=30)
    assert code == 130 and "interrupted" in err and "Traceback" not in err, (code, err[-2000:])
    wait_for(lambda: harness.agent_pids(workdir) == [], 5)
    store = Store(tmp_path / "ws")
    rows = store.select("dev", newest_only=False)
    assert 16 <= len(rows) < N and len({m.request_key for m in rows}) == len(rows)
    assert all(m.latency_ms > 0 and len(m.raw) == 3 and m.stats for m in rows)  # whole: every session
