"""``hwnas measure`` and ``hwnas devices`` end to end on the local device (real agent, real store)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hwnas.cli import main
from hwnas.store import Store
from tests.helpers import conv_model, local_config


def run_json(args, capsys):
    code = main(args + ["--json"])
    return code, json.loads(capsys.readouterr().out)


def test_measure_json_one_object_per_model(tmp_path, capsys):
    cfg = local_config(tmp_path)
    a, b = conv_model(tmp_path / "a.onnx", seed=1), conv_model(tmp_path / "b.onnx", cin=4, seed=2)
    code, rows = run_json(["measure", "--config", str(cfg), "--device", "local", "--onnx", str(a), str(b)], capsys)
    assert code == 0 and [r["model"] for r in rows] == [str(a), str(b)]
    for row in rows:
        assert row["device"] == "local" and row["latency_ms"] > 0 and row["sessions"] == 2
    store = Store(tmp_path / "ws")
    assert store.count(device="local") == 2
    stored = store.latest("local", "onnxruntime", f"onnx:{rows[0]['sha256']}")
    assert stored.latency_ms == rows[0]["latency_ms"] and len(stored.raw) == 2


@pytest.mark.parametrize("content", [b"garbage\n", b"", b"\x08\x01\x12\x04junk"])
def test_bad_model_file_exits_2_and_stores_nothing(tmp_path, capsys, content):
    cfg = local_config(tmp_path)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    good = conv_model(tmp_path / "good.onnx")
    assert main(["measure", "--config", str(cfg), "--device", "local", "--onnx", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
    assert Store(tmp_path / "ws").count() == 0


def test_missing_model_and_unknown_device_exit_2(tmp_path, capsys):
    cfg = local_config(tmp_path)
    assert main(["measure", "--config", str(cfg), "--device", "local", "--onnx", str(tmp_path / "nope.onnx")]) == 2
    assert "no such model file" in capsys.readouterr().err
    good = conv_model(tmp_path / "good.onnx")
    assert main(["measure", "--config", str(cfg), "--device", "pi", "--onnx", str(good)]) == 2
    assert "no device named 'pi'" in capsys.readouterr().err


def test_devices_list_and_check_json(tmp_path, capsys):
    cfg = local_config(tmp_path)
    code, rows = run_json(["devices", "list", "--config", str(cfg)], capsys)
    assert code == 0 and rows[0]["name"] == "local" and rows[0]["backend"] == "onnxruntime"
    code, reports = run_json(["devices", "check", "local", "--config", str(cfg)], capsys)
    report = reports[0]
    assert code == 0 and report["reachable"] and report["rtt_ms"] > 0
    assert report["facts"]["runtimes"]["onnxruntime"] and report["agent"].startswith("0.1.0+")
    assert isinstance(report["fit"], bool)


def test_agent_killed_mid_measure_exits_1_and_store_untouched(tmp_path):
    """Every agent the command starts is killed mid-request: a clear error, exit 1, no row stored."""
    cfg = local_config(tmp_path, measurement="{warmup_ms: 60000, repeat: 3, min_repeat_ms: 2, sessions: 1}")
    model = conv_model(tmp_path / "m.onnx")
    proc = subprocess.Popen([sys.executable, "-m", "hwnas.cli", "measure", "--config", str(cfg),
                             "--device", "local", "--onnx", str(model), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pattern = f"device_agents --workdir {tmp_path / 'ws' / 'agents' / 'local'}"
    killed = 0
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        for pid in map(int, found):
            time.sleep(0.5)  # let it get into the measure request
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=30)
    assert killed >= 1
    assert proc.returncode == 1, stderr
    assert "agent exited" in stderr and "Traceback" not in stderr
    assert json.loads(stdout) == []
    assert Store(tmp_path / "ws").count() == 0
