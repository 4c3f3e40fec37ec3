"""Kernel detection on a TVM device: the agent reports the fused kernels the compiled library runs,
rules are learned from them, and the host's split of real CNNs matches what TVM ran.

Everything is real: TVM compiles every test graph for ``llvm`` on this host, the local agent
runs the libraries in the Relax VM and times each fused PrimFunc, and a small kernel predictor
is fitted on samples measured that way (the fixture is module-scoped: learning the rules
compiles about 55 test graphs).
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from cost_models import kernel_model
from cost_models.onnx_kernels import split
from hwnas import config, kernel_fit, kernel_sampling
from hwnas.agent_client import AgentClient
from hwnas.cli import main
from hwnas.errors import BadInput
from hwnas.kernel_graphs import GraphBuilder, save
from hwnas.measure import device_settings, kernel_profile
from hwnas.predict import predictor_path
from hwnas.store import Store
from hwnas.transports.local import LocalTransport
from tests.helpers import FAST_MEASUREMENT

TYPES = {"conv": 3, "dwconv": 2, "pool": 2, "eltwise": 2, "globalpool": 2}


@pytest.fixture(scope="module")
def tvm_device(tmp_path_factory):
    """(registry, device, store, rules, agent) of a TVM llvm device on this host, rules learned."""
    tmp = tmp_path_factory.mktemp("tvmk")
    cfg = tmp / "hardware.yaml"
    cfg.write_text(f"workspace: {tmp / 'ws'}\ndevices:\n  - name: tvm\n    kind: x86_cpu\n"
                   f"    transport: {{type: local}}\n    runtime: {{backend: tvm, target: {{kind: llvm}}}}\n"
                   f"    measurement: {FAST_MEASUREMENT}\n")
    reg = config.load(cfg)
    device = reg.device("tvm")
    store = Store(reg.workspace)
    rules, path = kernel_fit.ensure_rules(reg, device, store)
    client = AgentClient(LocalTransport(device, reg.workspace), timeout_s=600)
    client.start()
    yield reg, device, store, rules, client, path
    client.close()
    store.close()


def _profile(tvm_device, path):
    reg, device, _, _, client, _ = tvm_device
    return kernel_profile(device, client, path, device_settings(device), reg.workspace, runs=2)["nodes"]


def test_agent_reports_tvms_fused_kernels_with_shapes(tvm_device, tmp_path):
    g = GraphBuilder((1, 8, 10, 10))
    y = g.act(g.batchnorm(g.conv("x", 16)), "Relu")
    nodes = _profile(tvm_device, save(g.model([g.pool(y, "MaxPool", 3, 2)]), tmp_path / "m.onnx"))
    ran = sorted(nodes, key=lambda n: n["index"])
    assert [n["op_type"] for n in ran] == ["Conv", "MaxPool"]  # bias, BN and ReLU run inside the conv
    conv = ran[0]
    assert conv["input_shapes"][:2] == [[1, 8, 10, 10], [16, 8, 3, 3]] and conv["output_shapes"] == [[1, 16, 10, 10]]
    assert conv["provider"].startswith("tvm:cpu") and conv["dur_us"] > 0 and conv["runs"] == 2
    assert ran[1]["output_shapes"] == [[1, 16, 5, 5]]


def test_rules_come_from_tvms_own_fusion(tvm_device):
    *_, rules, _, path = tvm_device
    assert path.name.startswith("tvm-tvm-") and rules.meta["backend"] == "tvm"
    assert rules.block == 0 and not rules.nchwc_ops  # no blocked layout on TVM's default llvm pipeline
    conv = set(rules.absorbs["plain"]["Conv"])
    assert {"BatchNormalization", "Relu", "HardSwish", "Add", "Swish", "Mul"} <= conv
    assert {"Relu", "BatchNormalization"} <= set(rules.absorbs["plain"]["Add"])  # element-wise chains fuse
    assert "Relu" in rules.absorbs["plain"]["MaxPool"]


@pytest.mark.parametrize("family", ["resnet", "mobilenet_v3"])
def test_split_matches_the_kernels_tvm_ran(tvm_device, family, tmp_path):
    """ResNet (residual adds) and MobileNetV3 (hard-swish, SE gates) split into exactly TVM's kernels."""
    from bench.corpus_models import export, sample

    conf = sample(family, np.random.default_rng(5))
    conf["resolution"] = 64
    path = tmp_path / f"{family}.onnx"
    export(family, conf, str(path))
    ran = _profile(tvm_device, path)
    mine = split(onnx.load(str(path)), tvm_device[3])
    assert len(mine) == len(ran)
    same = {"Gemm": "MatMul"}  # TVM imports Gemm as matmul (+ add): its kernel is named after the matmul
    assert sorted(same.get(k.op, k.op) for k in mine) == sorted(n["op_type"] for n in ran)


def test_batchnorm_relu_after_a_shared_concat_is_one_kernel(tvm_device, tmp_path):
    """DenseNet's pattern: a concat read twice, then BN + ReLU, which TVM runs as one kernel."""
    g = GraphBuilder((1, 8, 8, 8))
    a, b = g.conv("x", 8), g.conv("x", 8)
    cat = g.op("Concat", [a, b], (1, 16, 8, 8), axis=1)
    y = g.conv(g.act(g.batchnorm(cat), "Relu"), 16)
    model = g.model([g.op("Concat", [cat, y], (1, 32, 8, 8), axis=1)])
    ran = _profile(tvm_device, save(model, tmp_path / "dense.onnx"))
    mine = split(model, tvm_device[3])
    assert len(mine) == len(ran)
    assert [k.nodes for k in mine if k.op == "BatchNormalization"] == [[n.name for n in model.graph.node][3:5]]


def test_a_model_tvm_cannot_lower_is_bad_input_naming_the_device(tvm_device, tmp_path):
    from bench.corpus_models import export, sample

    conf = sample("shufflenet_v2", np.random.default_rng(0))
    conf["resolution"] = 32
    path = tmp_path / "shufflenet.onnx"
    export("shufflenet_v2", conf, str(path))
    with pytest.raises(BadInput, match=r"^device tvm: TVM cannot lower the model"):
        _profile(tvm_device, path)


def test_kernel_predictor_is_built_and_queried_on_tvm(tvm_device, tmp_path, capsys):
    """Samples measured and profiled through TVM, regressors fitted, `hwnas predict` on the TVM device."""
    from bench.corpus_models import export, sample

    reg, device, store, rules, _, _ = tvm_device
    rng = np.random.default_rng(0)
    configs = [c for kind, n in TYPES.items() for c in kernel_sampling.sample(kind, n, rng)]
    for c in configs:
        c["h"] = min(c.get("h", 1), 14)
    kernel_fit.measure(reg, device, store, configs, quiet=True)
    rows, calibration = kernel_fit.training_rows(store, device, rules)
    assert set(rows) == set(TYPES)  # every sample's TVM profile gave its kernel's time
    predictor = kernel_model.fit(rules, rows, calibration, device.name, device.backend)
    kernel_model.save(predictor, predictor_path(reg.workspace, device.name, device.backend))
    conf = sample("resnet", np.random.default_rng(5))
    conf["resolution"] = 64
    path = tmp_path / "resnet.onnx"
    export("resnet", conf, str(path))
    assert main(["predict", "--config", str(reg.path), "--device", "tvm", "--onnx", str(path), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert np.isfinite(row["latency_ms"]) and row["latency_ms"] > 0 and row["predictor"] == "kernels"
    assert row["kernels"] == len(split(onnx.load(str(path)), rules))


def test_costmodel_fit_onnx_kernels_on_a_simulator_exits_2_naming_device_and_cause(tmp_path, capsys):
    cfg = tmp_path / "hardware.yaml"
    cfg.write_text(f"workspace: {tmp_path / 'ws'}\ndevices:\n  - name: npu\n    kind: npu\n"
                   "    transport: {type: local}\n"
                   "    runtime: {backend: simulator, simulator: scalesim, array: [8, 8], clock_mhz: 500}\n")
    assert main(["costmodel", "fit", "--config", str(cfg), "--device", "npu", "--onnx-kernels"]) == 2
    err = capsys.readouterr().err
    assert "device 'npu': kernel detection needs a runtime that reports the kernels it runs" in err
    assert "simulator does not" in err and "Traceback" not in err
