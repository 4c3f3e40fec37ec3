"""The real agent as a subprocess, driven through the local transport and AgentClient."""
import os
import signal
import threading
from pathlib import Path

import pytest

from hwnas import config
from hwnas.agent_client import AgentClient, file_sha256
from hwnas.errors import AgentError, BadInput, DeviceUnreachable
from hwnas.transports.local import LocalTransport
from tests.helpers import conv_model, local_config

FAST = {"warmup_ms": 5, "repeat": 5, "min_repeat_ms": 2, "threads": 1}


@pytest.fixture
def agent(tmp_path):
    registry = config.load(local_config(tmp_path))
    client = AgentClient(LocalTransport(registry.device("local"), registry.workspace), timeout_s=60)
    client.start()
    yield client
    client.close()


def test_hello_reports_device_facts(agent):
    facts = agent.facts
    assert facts["protocol"] == 1 and facts["cores"] >= 1 and facts["memory_bytes"] > 0
    assert facts["runtimes"]["onnxruntime"] and "CPUExecutionProvider" in facts["providers"]
    assert facts["agent"].startswith("0.1.0+") and facts["python"].startswith("3.")
    flags = set(Path("/proc/cpuinfo").read_text().split())
    widest = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else facts["vector_isa"]
    assert facts["vector_isa"] == widest


def test_model_bytes_travel_once(agent, tmp_path):
    model = conv_model(tmp_path / "m.onnx")
    sha = agent.load(model)
    assert sha == file_sha256(model)
    assert agent.request("load", sha256=sha, format="onnx")["cached"] is True
    assert (agent.transport.workdir / "models" / f"{sha}.onnx").read_bytes() == model.read_bytes()


def test_measure_returns_stats_and_raw_rounds(agent, tmp_path):
    sha = agent.load(conv_model(tmp_path / "m.onnx"))
    result = agent.measure(sha, FAST)
    assert len(result["rounds_ms"]) == 5 and all(t > 0 for t in result["rounds_ms"])
    assert result["p10_ms"] <= result["median_ms"] <= result["p90_ms"]
    assert result["number"] >= 1 and result["cov"] >= 0
    assert isinstance(result["drift"], bool) and len(result["reference_ms"]) == 2
    assert result["providers"] == ["CPUExecutionProvider"]


def test_profile_lists_nodes(agent, tmp_path):
    sha = agent.load(conv_model(tmp_path / "m.onnx"))
    nodes = agent.profile(sha, FAST, runs=3)["nodes"]
    assert nodes and all(n["dur_us"] >= 0 and n["provider"] for n in nodes)
    assert {"Conv", "FusedConv"} & {n["op_type"] for n in nodes}


def test_malformed_requests_get_errors_not_crashes(agent):
    process = agent._process
    for garbage in (b"not json\n", b"[1,2]\n", b'{"id": 5, "op": "measure"}\n', b'{"id": 6, "op": "nope"}\n'):
        process.send(garbage)
        reply = process.recv(10)
        assert b'"ok":false' in reply and b'"protocol"' in reply
    assert agent.ping() >= 0  # still serving


def test_unknown_model_and_bad_hash(agent):
    with pytest.raises(AgentError, match="not loaded"):
        agent.measure("0" * 64, FAST)
    with pytest.raises(AgentError, match="64 lowercase hex"):
        agent.request("load", sha256="../../etc/passwd", format="onnx")


def test_runtime_rejects_model_as_bad_input(agent, tmp_path):
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"\x08\x07garbage")
    sha = agent.load(bogus)
    with pytest.raises(BadInput, match="cannot load the model"):
        agent.measure(sha, FAST)


def test_agent_dying_mid_request_is_a_clear_error(agent, tmp_path):
    sha = agent.load(conv_model(tmp_path / "m.onnx", cin=32, cout=32, size=56))
    pid = agent._process.pid
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    with pytest.raises(DeviceUnreachable, match="agent exited"):
        agent.measure(sha, {**FAST, "warmup_ms": 20000})


def test_version_mismatch_refused(tmp_path):
    registry = config.load(local_config(tmp_path))
    client = AgentClient(LocalTransport(registry.device("local"), registry.workspace))
    client._process = client.transport.start_agent()
    try:
        with pytest.raises(AgentError, match="host speaks protocol 99"):
            client.request("hello", protocol=99)
        with pytest.raises(AgentError, match="send 'hello' first"):
            client.request("ping")
    finally:
        client._process.kill()


def test_vector_isa_reads_arm_features_and_is_none_under_emulation(monkeypatch):
    """On ARM the widest extension comes from ``Features``; under qemu-user /proc/cpuinfo describes the
    x86 host, so no extension is claimed."""
    from device_agents import facts
    monkeypatch.setattr(facts, "_read", lambda _path: "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32\n")
    monkeypatch.setattr(facts, "emulated", lambda: False)
    assert facts.vector_isa() == "asimd"
    monkeypatch.setattr(facts, "emulated", lambda: True)
    assert facts.vector_isa() is None
