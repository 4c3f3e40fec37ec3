"""Execution providers: options per provider, placement summaries, missing providers, CPU fallback.

All real: the local agent, this host's onnxruntime. The host has CPUExecutionProvider and
AzureExecutionProvider (a provider that takes no nodes of a local model), so asking for Azure first
makes every node fall back to the CPU — the same code path as an NPU provider that cannot take
some nodes. A provider the host lacks (QNN, with its options) takes the missing-provider path.
"""
from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest

from hwnas import config
from hwnas.cli import main
from hwnas.errors import BadInput
from tests.helpers import FAST_MEASUREMENT, conv_model

# a noisy CI machine must not make a result invalid here: only placement decides validity
STEADY = FAST_MEASUREMENT.replace("}", ", cov_threshold: 1000, max_remeasure: 0}")
QNN = "{name: QNNExecutionProvider, options: {backend_path: libQnnHtp.so}}"


def _config(tmp: Path, providers: str, extra: str = "") -> Path:
    path = tmp / "hardware.yaml"
    path.write_text(
        f"workspace: {tmp / 'ws'}\n"
        "devices:\n"
        "  - name: board\n"
        "    kind: npu\n"
        "    transport: {type: local}\n"
        f"    runtime: {{backend: onnxruntime, providers: {providers}, threads: 1{extra}}}\n"
        f"    measurement: {STEADY}\n")
    return path


def test_providers_take_options_and_bad_ones_name_the_field(tmp_path):
    device = config.load(_config(tmp_path, f"[{QNN}, CPUExecutionProvider]")).device("board")
    assert device.runtime.provider_names == ["QNNExecutionProvider", "CPUExecutionProvider"]
    assert device.runtime.providers[0].options == {"backend_path": "libQnnHtp.so"}
    path = _config(tmp_path, "[{name: QNNExecutionProvider, option: {a: b}}]")
    with pytest.raises(BadInput, match=rf"{path}:6: devices\[0\].runtime.providers\[0\].option: unknown key"):
        config.load(path)


def test_missing_provider_fails_check_and_measure_with_the_available_list(tmp_path, capsys, caplog):
    have = ", ".join(ort.get_available_providers())
    cfg = _config(tmp_path, f"[{QNN}, CPUExecutionProvider]")
    assert main(["devices", "check", "--config", str(cfg), "--json", "--pings", "1"]) == 1
    report = json.loads(capsys.readouterr().out)[0]
    assert report["reachable"] and not report["fit"]
    assert f"QNNExecutionProvider is not available on the device (it has {have})" in report["reasons"][0]
    model = conv_model(tmp_path / "m.onnx")
    assert main(["measure", "--config", str(cfg), "--device", "board", "--onnx", str(model), "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == []
    assert f"(it has {have})" in caplog.text


def test_placement_summary_in_measure_json(tmp_path, capsys):
    cfg = _config(tmp_path, "[CPUExecutionProvider]")
    model = conv_model(tmp_path / "m.onnx")
    assert main(["measure", "--config", str(cfg), "--device", "board", "--onnx", str(model), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["compute_summary"] == "CPU 2" and row["placement"] == {"CPUExecutionProvider": 2}
    assert row["valid"] and not row["warnings"]


@pytest.mark.skipif("AzureExecutionProvider" not in ort.get_available_providers(),
                    reason="this onnxruntime build has no second provider to fall back from")
@pytest.mark.parametrize("require_all", [False, True])
def test_cpu_fallback_is_a_warning_and_invalid_when_all_nodes_are_required(tmp_path, capsys, require_all):
    extra = ", require_all_nodes: true" if require_all else ""
    cfg = _config(tmp_path, "[AzureExecutionProvider, CPUExecutionProvider]", extra)
    model = conv_model(tmp_path / "m.onnx")
    assert main(["measure", "--config", str(cfg), "--device", "board", "--onnx", str(model), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["compute_summary"] == "CPU 2"
    assert "2 of 2 nodes fell back to CPUExecutionProvider (asked for AzureExecutionProvider first)" in row["warnings"]
    assert row["valid"] is (not require_all)


def test_devices_check_reports_where_a_small_model_runs(tmp_path, capsys):
    cfg = _config(tmp_path, "[CPUExecutionProvider]")
    assert main(["devices", "check", "--config", str(cfg), "--json", "--pings", "1"]) == 0
    placement = json.loads(capsys.readouterr().out)[0]["placement"]
    assert placement["compute_summary"] == "CPU 2" and not placement["warnings"]
    if "AzureExecutionProvider" in ort.get_available_providers():
        cfg = _config(tmp_path, "[AzureExecutionProvider, CPUExecutionProvider]")
        assert main(["devices", "check", "--config", str(cfg), "--json", "--pings", "1"]) == 0
        report = json.loads(capsys.readouterr().out)[0]
        assert "fell back to CPUExecutionProvider" in report["placement"]["warnings"][0]
        assert not report["fit"] and report["placement"]["warnings"][0] in report["reasons"]
    assert main(["devices", "check", "--config", str(cfg), "--pings", "1"]) == 0  # the table shows it
    assert "CPU 2" in capsys.readouterr().out
