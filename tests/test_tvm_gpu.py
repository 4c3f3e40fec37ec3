"""Mobile GPU through TVM, compile-only here (no GPU on this machine).

What runs here: an ONNX model compiled for an Adreno OpenCL target with an aarch64 host
(LegalizeOps + dlight's default GPU schedules, cross-linked with aarch64-linux-gnu-gcc), and the
measure settings that make the agent open the target's device. What needs a real GPU: opening
``tvm.device("opencl")`` on the phone, the timed calls (each synchronised), the output check.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from device_agents import tvm_runner
from hwnas import backends, config, tvm_backend
from hwnas.measure import device_settings, model_item
from tests.helpers import conv_model

ADRENO = "{kind: opencl, device: adreno, host: {kind: llvm, mtriple: aarch64-linux-gnu}}"


def _device(tmp: Path, target: str):
    path = tmp / "hardware.yaml"
    path.write_text(f"workspace: {tmp / 'ws'}\ndevices:\n  - name: phone\n    kind: mobile_gpu\n"
                    "    transport: {type: local}\n"
                    f"    runtime: {{backend: tvm, target: {target}, cross_compiler: aarch64-linux-gnu-gcc}}\n")
    reg = config.load(path)
    return reg, reg.device("phone")


@pytest.mark.slow
def test_opencl_adreno_library_compiles_for_an_aarch64_phone(tmp_path):
    reg, device = _device(tmp_path, ADRENO)
    path, fmt = tvm_backend.artifact(device, model_item(conv_model(tmp_path / "m.onnx")), reg.workspace)
    data = path.read_bytes()
    assert fmt == "tvm" and tvm_runner.elf_machine(str(path)) == "aarch64"
    assert b"__kernel" in data  # the OpenCL C source of the kernels travels inside the library
    assert device_settings(device)["tvm_device"] == "opencl"


def test_tvm_device_follows_the_target(tmp_path):
    _, device = _device(tmp_path, ADRENO)
    assert backends.get("tvm").settings(device)["tvm_device"] == "opencl"
    _, cpu = _device(tmp_path, "{kind: llvm, mtriple: aarch64-linux-gnu}")
    assert backends.get("tvm").settings(cpu)["tvm_device"] == "cpu"
    assert tvm_runner.device_for("cpu").exist
    with pytest.raises(ValueError, match="no opencl device"):  # this machine has no GPU
        tvm_runner.device_for("opencl")
