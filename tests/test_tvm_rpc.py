"""TVM RPC tracker as a transport: a real tracker and two real RPC servers on loopback."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from hwnas import config
from hwnas.cli import main
from hwnas.store import Store
from tests.helpers import FAST_MEASUREMENT, conv_model

KEY = "loopback"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    """Kill a server's whole process group (its popen worker would otherwise survive)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return  # already gone with its group
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def tracker():
    from tvm import rpc

    port = _free_port()
    procs = [_spawn(["tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port),
                     "--port-end", str(port + 1)])]
    try:
        for _ in range(2):
            server_port = _free_port()
            procs.append(_spawn(["tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(server_port),
                                 "--port-end", str(server_port + 50), "--tracker", f"127.0.0.1:{port}",
                                 "--key", KEY]))
        deadline = time.monotonic() + 60
        while True:
            try:
                summary = rpc.connect_tracker("127.0.0.1", port).summary()
                if summary["queue_info"].get(KEY, {}).get("free", 0) == 2:
                    break
            except Exception as exc:  # tracker not listening yet
                last = exc
            else:
                last = summary
            assert time.monotonic() < deadline, f"tracker with two servers did not come up: {last}"
            time.sleep(0.5)
        yield port
    finally:
        for proc in procs:
            _stop(proc)


def _config(tmp_path, port: int, key: str = KEY):
    path = tmp_path / "hardware.yaml"
    path.write_text(
        f"workspace: {tmp_path / 'ws'}\n"
        "devices:\n"
        "  - name: farm\n"
        "    kind: x86_cpu\n"
        f"    transport: {{type: tvm_rpc, tracker_host: 127.0.0.1, tracker_port: {port}, key: {key}}}\n"
        "    runtime: {backend: tvm, target: {kind: llvm}}\n"
        f"    measurement: {FAST_MEASUREMENT}\n")
    return path


def test_measure_through_tracker(tracker, tmp_path, capsys):
    model = conv_model(tmp_path / "m.onnx")
    cfg = _config(tmp_path, tracker)
    assert main(["measure", "--config", str(cfg), "--device", "farm", "--onnx", str(model), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["latency_ms"] > 0 and rows[0]["backend"] == "tvm"
    stored = Store(config.load(cfg).workspace).latest("farm", "tvm", f"onnx:{rows[0]['sha256']}")
    assert stored.latency_ms == rows[0]["latency_ms"] and stored.providers[0].startswith("tvm_rpc:")


def test_two_devices_share_the_pool(tracker, tmp_path):
    from hwnas.session import agent_session

    reg = config.load(_config(tmp_path, tracker))
    device = reg.device("farm")
    with agent_session(reg, device) as first, agent_session(reg, device) as second:
        assert first.facts["transport"] == second.facts["transport"] == "tvm_rpc"
        assert first.facts["runtimes"]["tvm"]


def test_devices_check_reports_tvm(tracker, tmp_path, capsys):
    assert main(["devices", "check", "farm", "--config", str(_config(tmp_path, tracker)), "--json",
                 "--pings", "2"]) == 0
    report = json.loads(capsys.readouterr().out)[0]
    assert report["reachable"] and report["tvm"]["tvm_runtime"]


def test_unknown_tracker_is_a_device_failure(tmp_path):
    assert main(["devices", "check", "farm", "--config", str(_config(tmp_path, _free_port())), "--json",
                 "--pings", "1"]) == 1
