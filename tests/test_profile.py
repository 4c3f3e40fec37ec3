"""``hwnas profile`` and ``hwnas lut`` end to end on the local device (real agent, real store)."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import yaml

from hwnas.cli import main
from hwnas.store import Store
from lut.table import BASELINE
from tests.helpers import local_config

# drift retries off (see tests/helpers.py); small interleave windows, so results are stored
# while the run goes on and a fault strikes between stored windows
FAST = ("{warmup_ms: 2, repeat: 3, min_repeat_ms: 1, sessions: 2, timeout_s: 60, drift_threshold: 1000, "
        "interleave: 4}")


def _json(args, capsys):
    code = main(args + ["--json"])
    return code, json.loads(capsys.readouterr().out)


def test_block_sweep_resumes_and_builds_luts(tmp_path, capsys):
    cfg = str(local_config(tmp_path, measurement=FAST))
    base = ["--config", cfg, "--device", "local", "--space", "nasbench201"]
    code, first = _json(["profile", *base, "--what", "blocks", "--per-node"], capsys)
    assert code == 0 and first[0]["needed"] == 20 and first[0]["measured"] == 20
    code, again = _json(["profile", *base, "--what", "blocks"], capsys)
    assert code == 0 and again[0]["measured"] == 0 and again[0]["stored_before"] == 20
    store = Store(tmp_path / "ws")
    assert store.count(device="local", item="block") == 20
    code, nets = _json(["profile", *base, "--what", "networks", "--num", "6"], capsys)
    assert code == 0 and nets[0]["measured"] == 6
    net = store.select("local", item="network")[0]
    assert net.signature == f"net:nasbench201:{net.arch}" and net.space == "nasbench201"
    code, built = _json(["lut", "build", "--config", cfg, "--device", "local", "--out", str(tmp_path / "x.yaml")],
                        capsys)
    assert code == 0 and built["entries"] == 20 and "nasbench201" in built["overheads"]
    doc = yaml.safe_load((tmp_path / "x.yaml").read_text())
    (tmp_path / "adir.json").mkdir()  # --out onto a directory: exit 2 naming it, no temporary file left
    assert main(["lut", "build", "--config", cfg, "--device", "local", "--out", str(tmp_path / "adir.json")]) == 2
    assert f"--out {tmp_path / 'adir.json'}: cannot write" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    assert BASELINE in doc and all({"count", "mean", "std"} <= set(v) for v in doc.values())
    code, shown = _json(["lut", "show", "--config", cfg, "--device", "local"], capsys)
    assert code == 0 and len(shown["entries"]) == 20 and shown["meta"]["backend"] == "onnxruntime"
    sig = "nor_conv_3x3-input:32x32x16-output:32x32x16"
    code, nodes = _json(["lut", "show", "--config", cfg, "--device", "local", "--nodes", sig], capsys)
    assert code == 0 and nodes["nodes"] and any(n["op_type"] in ("Conv", "FusedConv") for n in nodes["nodes"])
    assert (tmp_path / "ws" / "onnx" / "nasbench201" / "blocks").is_dir()


def test_backend_mismatch_and_bad_arguments_exit_2(tmp_path, capsys):
    cfg = str(local_config(tmp_path, measurement=FAST))
    assert main(["profile", "--config", cfg, "--device", "local", "--backend", "tvm"]) == 2
    assert "register an entry with `backend: tvm`" in capsys.readouterr().err
    assert main(["profile", "--config", cfg, "--device", "local", "--space", "resnet"]) == 2
    assert main(["profile", "--config", cfg, "--device", "local", "--space", "mbv3", "--resolution", "225"]) == 2
    assert main(["lut", "build", "--config", cfg, "--device", "local"]) == 2  # nothing profiled yet
    err = capsys.readouterr().err
    assert "Traceback" not in err and "hwnas profile" in err


def test_killed_sweep_rerun_stores_each_signature_once(tmp_path):
    cfg = str(local_config(tmp_path, measurement=FAST))
    args = [sys.executable, "-m", "hwnas.cli", "profile", "--config", cfg, "--device", "local",
            "--space", "nasbench201", "--what", "networks", "--num", "24", "--json"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    db = tmp_path / "ws" / "measurements.sqlite"
    deadline, stored = time.monotonic() + 240, 0
    while proc.poll() is None and time.monotonic() < deadline and not stored:
        time.sleep(0.05)
        if db.exists():
            try:
                stored = sqlite3.connect(db).execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
            except sqlite3.OperationalError:
                continue  # schema not created yet
    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and the agent it started
    proc.wait()
    assert 0 < stored < 24
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)[0]
    assert report["stored_before"] >= stored and report["stored_before"] + report["measured"] == 24
    rows = sqlite3.connect(db).execute("SELECT signature, COUNT(*) FROM measurements GROUP BY signature").fetchall()
    assert len(rows) == 24 and all(n == 1 for _, n in rows)
