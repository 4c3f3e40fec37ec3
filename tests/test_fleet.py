"""A fleet of 3 SSH devices (one sshd per network namespace) plus ``local``, checked and measured concurrently."""
import contextlib
import json
import threading
import time

import pytest

from hwnas import fleet
from hwnas.cli import main
from hwnas.store import Store
from tests import sshd_harness as harness

pytestmark = pytest.mark.slow
# drift retries off: see tests/helpers.py
FAST = "{warmup_ms: 0, repeat: 3, min_repeat_ms: 1, sessions: 1, timeout_s: 30, drift_threshold: 1000}"


@pytest.fixture
def fleet_config(tmp_path, netns_ok):
    """hardware.yaml with ns0..ns2 (SSH, each in its own namespace) and local; everything torn down after."""
    with contextlib.ExitStack() as stack:
        entries = []
        for i in range(3):
            ns = stack.enter_context(harness.namespace(f"f{i}"))
            server = stack.enter_context(harness.sshd(tmp_path / f"sshd{i}", host=ns.ns_ip, port=22, netns=ns.name))
            entries.append(harness.ssh_device_yaml(f"ns{i}", server, tmp_path / f"remote{i}", FAST))
        entries.append("  - name: local\n    kind: x86_cpu\n    transport: {type: local}\n"
                       "    runtime: {backend: onnxruntime, providers: [CPUExecutionProvider], threads: 1}\n"
                       f"    measurement: {FAST}\n")
        path = tmp_path / "hardware.yaml"
        path.write_text(f"workspace: {tmp_path / 'ws'}\ndevices:\n" + "".join(entries))
        yield path


def test_fleet_of_three_ssh_devices_and_local_checked_and_measured_concurrently(tmp_path, fleet_config, capsys):
    names = ["ns0", "ns1", "ns2", "local"]
    assert main(["devices", "check", "--config", str(fleet_config), "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["device"] for r in reports] == names and all(r["reachable"] for r in reports)
    assert len({r["facts"]["pid"] for r in reports}) == 4

    models = harness.tiny_models(tmp_path / "models", 12)
    args = ["measure", "--config", str(fleet_config), "--onnx", *map(str, models), "--json"]
    for name in names:
        args += ["--device", name]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted((r["device"], r["model"]) for r in rows) == sorted((n, str(m)) for n in names for m in models)
    store = Store(tmp_path / "ws")
    for name in names:
        assert store.count(device=name) == 12


def test_one_worker_per_device_and_devices_overlap(tmp_path, fleet_config):
    """Work on different devices overlaps in time; work on one device never does."""
    from hwnas import config
    registry = config.load(fleet_config)
    active: dict[str, int] = {}
    overlap = {"max_total": 0, "max_per_device": 0}
    lock = threading.Lock()

    def work(device, client):
        with lock:
            active[device.name] = active.get(device.name, 0) + 1
            overlap["max_total"] = max(overlap["max_total"], sum(active.values()))
            overlap["max_per_device"] = max(overlap["max_per_device"], active[device.name])
        for _ in range(5):
            client.ping()
            time.sleep(0.2)
        with lock:
            active[device.name] -= 1
        return device.name

    outcomes = fleet.run(registry, registry.devices, work)
    assert [o.value for o in outcomes] == ["ns0", "ns1", "ns2", "local"] and not any(o.error for o in outcomes)
    assert overlap["max_total"] >= 2 and overlap["max_per_device"] == 1
