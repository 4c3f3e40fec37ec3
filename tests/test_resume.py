"""A crash loses no session: real SIGKILLs in the middle of an interleave window, then re-runs
that measure only the sessions that were not stored (counted from the stored session rows)."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device_agents.timing import summarize
from hwnas.cli import main
from hwnas.store import Store
from tests.helpers import conv_model, local_config

# drift off (tests/helpers.py); one window holds every item, so nothing is combined before the end
THREE = "{warmup_ms: 2, repeat: 3, min_repeat_ms: 1, sessions: 3, timeout_s: 60, drift_threshold: 1000}"
TIMEOUT_S = 180


def sessions_table(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute("SELECT id, signature, measurement_id, created_utc FROM sessions ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the schema is still being created
        return []
    finally:
        conn.close()


def run_until_sessions_then_kill(args: list[str], db: Path, at_least: int, below: int) -> list[tuple]:
    """Start ``hwnas ARGS``, SIGKILL it once ``at_least`` sessions are stored (and fewer than
    ``below``); returns the session rows stored at that moment."""
    proc = subprocess.Popen([sys.executable, "-m", "hwnas.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(sessions_table(db)) < at_least:
            assert proc.poll() is None, f"hwnas exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "timed out waiting for sessions to be stored"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    before = sessions_table(db)
    assert at_least <= len(before) < below, f"{len(before)} sessions stored: the window had ended"
    return before


@pytest.mark.slow
def test_sigkill_mid_window_of_a_network_sweep_loses_no_session(tmp_path):
    cfg = local_config(tmp_path, measurement=THREE)
    db = tmp_path / "ws" / "measurements.sqlite"
    args = ["profile", "--config", str(cfg), "--device", "local", "--space", "nasbench201",
            "--what", "networks", "--num", "20", "--sessions", "3", "--json"]
    before = run_until_sessions_then_kill(args, db, at_least=15, below=60)
    store = Store(tmp_path / "ws")
    assert store.count(item="network") == 0  # the window had not ended: no combined result yet
    assert all(measurement_id is None for _, _, measurement_id, _ in before)

    proc = subprocess.run([sys.executable, "-m", "hwnas.cli", *args], capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)
    assert proc.returncode == 0, proc.stderr
    [report] = json.loads(proc.stdout)
    assert report["needed"] == 20 and report["measured"] == 20
    after = sessions_table(db)
    nets = store.select("local", item="network", newest_only=False)
    assert len(nets) == 20 and len({m.signature for m in nets}) == 20  # every network stored exactly once
    assert all(m.sessions == 3 and len(m.raw) == 3 for m in nets)
    # every session stored before the kill was used, and only the missing ones were measured again
    assert [(sid, sig, at) for sid, sig, _, at in after[:len(before)]] == [
        (sid, sig, at) for sid, sig, _, at in before]  # the rows stored before the kill, unchanged
    remeasured = [row for row in after if row[0] > before[-1][0]]
    assert len(after) == 60 and len(remeasured) == 60 - len(before)
    assert all(mid is not None for _, _, mid, _ in after)  # every one consumed, the old ones included
    per_net: dict[int, int] = {}
    for _, _, mid, _ in after:
        per_net[mid] = per_net.get(mid, 0) + 1
    assert sorted(per_net) == sorted(m.id for m in nets) and set(per_net.values()) == {3}
    # a network's combined rounds are exactly its three stored sessions' rounds, the old ones included
    conn = sqlite3.connect(db)
    for m in nets:
        results = [json.loads(r) for (r,) in conn.execute(
            "SELECT result FROM sessions WHERE measurement_id=? ORDER BY id", (m.id,))]
        assert [r["rounds_ms"] for r in results] == m.raw
    conn.close()


def test_measure_resume_continues_an_interrupted_run_and_measure_again_does_not(tmp_path, capsys):
    cfg = local_config(tmp_path, measurement=THREE)
    db = tmp_path / "ws" / "measurements.sqlite"
    models = [str(conv_model(tmp_path / f"m{i}.onnx", seed=i)) for i in range(5)]
    args = ["measure", "--config", str(cfg), "--device", "local", "--onnx", *models, "--json"]
    before = run_until_sessions_then_kill(args, db, at_least=4, below=15)

    assert main(args + ["--resume"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in resumed] == models and all(r["sessions"] == 3 for r in resumed)
    after = sessions_table(db)
    assert len(after) == 15 and all(mid is not None for _, _, mid, _ in after)  # 15 - len(before) measured now
    assert {sid for sid, *_ in before} <= {sid for sid, *_ in after}

    assert main(args + ["--resume"]) == 0  # a finished run: nothing more is measured, its results are printed
    assert [r["latency_ms"] for r in json.loads(capsys.readouterr().out)] == [r["latency_ms"] for r in resumed]
    assert len(sessions_table(db)) == 15

    assert main(args) == 0  # without --resume: measure again
    capsys.readouterr()
    assert len(sessions_table(db)) == 30 and Store(tmp_path / "ws").count() == 10


def test_host_and_agent_summarise_the_same_rounds_the_same_way(tmp_path, capsys):
    cfg = local_config(tmp_path)
    model = str(conv_model(tmp_path / "m.onnx"))
    base = ["measure", "--config", str(cfg), "--device", "local", "--onnx", model, "--json"]
    assert main(base + ["--sessions", "1"]) == 0 and main(base + ["--sessions", "2"]) == 0
    capsys.readouterr()
    store = Store(tmp_path / "ws")
    one, two = store.select("local", newest_only=False)
    conn = sqlite3.connect(store.path)
    [agent_reply] = [json.loads(r) for (r,) in conn.execute("SELECT result FROM sessions WHERE measurement_id=?",
                                                           (one.id,))]
    conn.close()
    for key in ("mean_ms", "std_ms", "p10_ms", "p90_ms", "cov"):
        assert one.stats[key] == agent_reply[key]  # one session: the host's figures are the agent's own
        assert two.stats[key] == summarize([t for rounds in two.raw for t in rounds])[key]
