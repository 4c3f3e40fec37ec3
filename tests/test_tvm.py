"""TVM backend: real compiles of tiny models, run and checked through the real agent."""
import json
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from device_agents import tvm_runner
from hwnas import config, tvm_backend
from hwnas.agent_client import AgentClient
from hwnas.cli import main
from hwnas.errors import AgentError, BadInput
from hwnas.measure import model_item
from hwnas.transports.local import LocalTransport
from tests.helpers import FAST_MEASUREMENT, conv_model

FAST = {"warmup_ms": 5, "repeat": 3, "min_repeat_ms": 2, "threads": 1}


def _config(tmp_path, runtime: str, name: str = "tvm", kind: str = "x86_cpu"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "hardware.yaml"
    path.write_text(f"workspace: {tmp_path / 'ws'}\ndevices:\n  - name: {name}\n    kind: {kind}\n"
                    f"    transport: {{type: local}}\n    runtime: {runtime}\n    measurement: {FAST_MEASUREMENT}\n")
    return path


def _device(tmp_path, runtime: str = "{backend: tvm, target: {kind: llvm}}", **kw):
    reg = config.load(_config(tmp_path, runtime, **kw))
    return reg, reg.devices[0]


def _celu_model(path):
    graph = helper.make_graph([helper.make_node("Celu", ["x"], ["y"])], "celu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.fixture
def agent(tmp_path):
    reg, device = _device(tmp_path)
    client = AgentClient(LocalTransport(device, reg.workspace), timeout_s=60)
    client.start()
    yield client
    client.close()


def test_measure_cli_on_local_tvm_device(tmp_path, capsys):
    model = conv_model(tmp_path / "m.onnx")
    cfg = _config(tmp_path, "{backend: tvm, target: {kind: llvm}}")
    assert main(["measure", "--config", str(cfg), "--device", "tvm", "--onnx", str(model), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["backend"] == "tvm" and row["latency_ms"] > 0 and row["valid"] in (True, False)


def test_library_is_cached_by_content(tmp_path):
    reg, device = _device(tmp_path)
    item = model_item(conv_model(tmp_path / "m.onnx"))
    path, fmt = tvm_backend.artifact(device, item, reg.workspace)
    assert fmt == "tvm" and path.parent == reg.workspace / "tvm_cache" and tvm_runner.elf_machine(str(path)) == "x86_64"
    mtime = path.stat().st_mtime_ns
    again, _ = tvm_backend.artifact(device, item, reg.workspace)
    assert again == path and again.stat().st_mtime_ns == mtime


def test_agent_checks_outputs_against_onnxruntime(agent, tmp_path):
    reg, device = _device(tmp_path / "d")
    item = model_item(conv_model(tmp_path / "m.onnx"))
    sha = agent.load(tvm_backend.artifact(device, item, reg.workspace)[0], "tvm")
    fields = tvm_backend.measure_fields(agent, item)
    result = agent.request("measure", model=sha, backend="tvm", settings=FAST, **fields)
    assert result["output_check"]["against"] == "onnxruntime" and result["output_check"]["max_rel_err"] < 1e-3
    assert result["median_ms"] > 0 and len(result["rounds_ms"]) == 3


def test_output_mismatch_is_an_error_not_a_number(agent, tmp_path):
    reg, device = _device(tmp_path / "d")
    compiled = model_item(conv_model(tmp_path / "a.onnx", seed=1))
    other = model_item(conv_model(tmp_path / "b.onnx", seed=2))  # same shapes, other weights
    sha = agent.load(tvm_backend.artifact(device, compiled, reg.workspace)[0], "tvm")
    fields = tvm_backend.measure_fields(agent, other)
    with pytest.raises(AgentError, match="output check failed.*differs from onnxruntime"):
        agent.request("measure", model=sha, backend="tvm", settings=FAST, **fields)


def test_unchecked_library_is_flagged_invalid(agent, tmp_path):
    reg, device = _device(tmp_path / "d")
    item = model_item(conv_model(tmp_path / "m.onnx"))
    sha = agent.load(tvm_backend.artifact(device, item, reg.workspace)[0], "tvm")
    specs = tvm_backend.measure_fields(agent, item)["inputs"]
    result = agent.request("measure", model=sha, backend="tvm", settings=FAST, inputs=specs)
    assert result["valid"] is False and any("not checked" in w for w in result["warnings"])


def test_cross_compiled_aarch64_library_is_refused_by_x86_agent(agent, tmp_path):
    reg, device = _device(tmp_path / "d", "{backend: tvm, target: {kind: llvm, mtriple: aarch64-linux-gnu, "
                                          "mcpu: cortex-a72}, cross_compiler: aarch64-linux-gnu-gcc}", kind="arm_cpu")
    item = model_item(conv_model(tmp_path / "m.onnx"))
    path, _ = tvm_backend.artifact(device, item, reg.workspace)
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64
    sha = agent.load(path, "tvm")
    with pytest.raises(BadInput, match="built for aarch64 but this device is x86_64"):
        agent.request("measure", model=sha, backend="tvm", settings=FAST, **tvm_backend.measure_fields(agent, item))


@pytest.mark.parametrize("runtime, cause", [
    ("{backend: tvm, target: {kind: no-such-target}}", "TVM rejects runtime.target"),
    ("{backend: tvm, target: {kind: llvm, mtriple: aarch64-linux-gnu}}", "set runtime.cross_compiler"),
    ("{backend: tvm, target: {kind: llvm, mtriple: aarch64-linux-gnu}, cross_compiler: no-such-gcc}",
     "cross compiler 'no-such-gcc'.*not on this host's PATH"),
])
def test_bad_tvm_setup_exits_2_naming_device_and_cause(tmp_path, capsys, caplog, runtime, cause):
    cfg = _config(tmp_path, runtime, name="edge")
    model = conv_model(tmp_path / "m.onnx")
    assert main(["measure", "--config", str(cfg), "--device", "edge", "--onnx", str(model), "--json"]) == 2
    err = capsys.readouterr().err + caplog.text  # the fleet logs a device's error
    assert "device edge" in err and re.search(cause, err), err


def test_op_tvm_cannot_import_exits_2(tmp_path, capsys, caplog):
    cfg = _config(tmp_path, "{backend: tvm, target: {kind: llvm}}", name="edge")
    model = _celu_model(tmp_path / "celu.onnx")
    assert main(["measure", "--config", str(cfg), "--device", "edge", "--onnx", str(model), "--json"]) == 2
    err = capsys.readouterr().err + caplog.text
    assert "device edge: TVM cannot import celu.onnx" in err and "Celu" in err, err


def test_device_report_matches_target_to_cpu(tmp_path):
    _, device = _device(tmp_path, "{backend: tvm, target: {kind: llvm, mtriple: aarch64-linux-gnu}}")
    report = tvm_backend.device_report(device, {"machine": "x86_64", "runtimes": {"tvm": "0.27.0"}})
    assert report["target_matches_cpu"] is False and "aarch64" in report["reasons"][0]
    assert tvm_backend.device_report(device, {"machine": "aarch64", "runtimes": {}})["target_matches_cpu"] is True


def test_devices_check_reports_tvm_runtime(tmp_path, capsys):
    cfg = _config(tmp_path, "{backend: tvm, target: {kind: llvm}}")
    main(["devices", "check", "--config", str(cfg), "--json", "--pings", "1"])
    report = json.loads(capsys.readouterr().out)[0]
    assert report["tvm"]["tvm_runtime"] == tvm_runner.version() and report["tvm"]["target_matches_cpu"] is True


def test_elf_machine_reads_the_header(tmp_path):
    blob = bytearray(64)
    blob[:6] = b"\x7fELF\x02\x01"
    blob[18:20] = (183).to_bytes(2, "little")
    (tmp_path / "a.so").write_bytes(bytes(blob))
    assert tvm_runner.elf_machine(str(tmp_path / "a.so")) == "aarch64"
    (tmp_path / "b.so").write_bytes(b"not an elf at all....")
    with pytest.raises(ValueError, match="not an ELF"):
        tvm_runner.elf_machine(str(tmp_path / "b.so"))


def test_compare_tolerates_rounding_only():
    ref = [np.linspace(-1, 1, 10, dtype=np.float32)]
    assert tvm_runner.compare([ref[0] + 1e-6], ref) < 1e-3
    with pytest.raises(tvm_runner.OutputMismatch):
        tvm_runner.compare([ref[0] + 0.1], ref)


@pytest.mark.slow
def test_tuning_is_stored_and_not_repeated(tmp_path):
    reg, device = _device(tmp_path, "{backend: tvm, target: {kind: llvm, num-cores: 1}, trials: 2}")
    item = model_item(conv_model(tmp_path / "m.onnx", cin=4, cout=4, size=8))
    path, _ = tvm_backend.artifact(device, item, reg.workspace)
    tuning = tvm_backend.tuning_dir(device, reg.workspace, item.sha256,
                                    tvm_backend.canonical_target(tvm_backend.parse_target(device)))
    assert tvm_backend.tuned_trials(tuning) == 2 and (tuning / "database_tuning_record.json").stat().st_size > 0
    records = {p.name: p.stat().st_mtime_ns for p in tuning.glob("database_*.json")}
    again, _ = tvm_backend.artifact(device, item, reg.workspace)  # a second tuning would rewrite the records
    assert again == path and records == {p.name: p.stat().st_mtime_ns for p in tuning.glob("database_*.json")}
