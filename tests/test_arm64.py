"""An ARM board over SSH, emulated: a Debian arm64 root run through qemu-user-static + binfmt_misc.

``scripts/arm64_root.sh`` builds the root once (debootstrap, python3 + numpy from Debian, the
aarch64 onnxruntime and apache-tvm wheels from PyPI) under ``~/.cache/hwnas/arm64-root``; these
tests skip when it is not built (about 8 minutes on a loaded 2-core machine, so the suite does
not build it) or when HWNAS_ARM64_TESTS=0; when they run they take ~4.5 min here. The host's
sshd, started in a private mount namespace with /proc, /sys and /dev
mounted into the root, chroots every session into it: the agent is aarch64 python under qemu,
reached over real SSH with a verified host key. Timings are emulated (marked so); what this
proves is correctness: the agent runs there, and a TVM library cross-compiled for
aarch64-linux-gnu runs there with outputs equal to ONNX Runtime's.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import onnx
import pytest

from hwnas.cli import main
from hwnas.store import Store
from tests import sshd_harness
from tests.helpers import conv_model

REPO = Path(__file__).resolve().parents[1]
# emulated timings are noisy and meaningless: a high CoV threshold keeps validity about correctness
FAST = ("{warmup_ms: 1, repeat: 3, min_repeat_ms: 1, sessions: 1, timeout_s: 900, drift_threshold: 1000, "
        "cov_threshold: 1000, max_remeasure: 0}")
pytestmark = pytest.mark.slow


def _root() -> Path | None:
    out = subprocess.run(["bash", str(REPO / "scripts" / "arm64_root.sh"), "--check"], check=False,
                         capture_output=True, text=True)
    return Path(out.stdout.strip()) if out.returncode == 0 else None


@pytest.fixture(scope="module")
def arm64(tmp_path_factory):
    """(sshd server chrooting into the arm64 root, the agent's work dir inside the root)."""
    if os.environ.get("HWNAS_ARM64_TESTS") == "0":
        pytest.skip("HWNAS_ARM64_TESTS=0")
    root = _root()
    if root is None:
        pytest.skip("the arm64 root is not built: run `bash scripts/arm64_root.sh` (about 8 min, root)")
    reason = sshd_harness.sshd_missing() or (None if shutil.which("unshare") else "unshare is missing")
    if reason:
        pytest.skip(reason)
    subprocess.run(["bash", str(REPO / "scripts" / "arm64_root.sh")], check=True, capture_output=True)  # binfmt
    server = sshd_harness.prepare(tmp_path_factory.mktemp("arm64-sshd"), extra_config=f"ChrootDirectory {root}\n")
    mounts = (f"mount -t proc proc {root}/proc && mount --rbind /sys {root}/sys && "
              f"mount --rbind /dev {root}/dev && exec {sshd_harness.SSHD} -f {server.config}")
    # the mounts live in sshd's own mount namespace: they vanish with it, never left on the host
    (server.root / "sshd.pid").unlink(missing_ok=True)
    subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", mounts], check=True)
    sshd_harness.wait_started(server)
    workdir = f"/tmp/hwnas-test-{uuid.uuid4().hex[:8]}"
    try:
        yield server, workdir
    finally:
        sshd_harness.stop(server)
        shutil.rmtree(f"{root}{workdir}", ignore_errors=True)


def _config(tmp: Path, server, workdir: str, runtime: str) -> Path:
    entry = sshd_harness.ssh_device_yaml("rpi-emu", server, workdir, measurement=FAST, python="/usr/bin/python3")
    entry = entry.replace("kind: x86_cpu", "kind: arm_cpu").replace(
        "runtime: {backend: onnxruntime, providers: [CPUExecutionProvider], threads: 1}", f"runtime: {runtime}")
    path = tmp / "hardware.yaml"
    path.write_text(f"workspace: {tmp / 'ws'}\ndevices:\n{entry}")
    return path


def _ir10_conv(path: Path) -> Path:
    """A small conv model saved as ONNX IR 10: the root's onnxruntime 1.22 reads IR <= 10 only."""
    model = onnx.load(str(conv_model(path, 4, 4, 8)))
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def test_devices_check_reports_aarch64(tmp_path, arm64, capsys):
    server, workdir = arm64
    cfg = _config(tmp_path, server, workdir, "{backend: onnxruntime, providers: [CPUExecutionProvider], threads: 1}")
    assert main(["devices", "check", "--config", str(cfg), "--json", "--pings", "2"]) == 0
    report = json.loads(capsys.readouterr().out)[0]
    assert report["reachable"] and report["facts"]["machine"] == "aarch64", report
    assert report["facts"]["emulated"] is True and report["runtime_version"]


def test_measure_onnx_over_ssh_is_marked_emulated(tmp_path, arm64, capsys):
    server, workdir = arm64
    cfg = _config(tmp_path, server, workdir, "{backend: onnxruntime, providers: [CPUExecutionProvider], threads: 1}")
    model = _ir10_conv(tmp_path / "conv.onnx")
    assert main(["measure", "--config", str(cfg), "--device", "rpi-emu", "--onnx", str(model), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["latency_ms"] > 0 and row["emulated"] is True and row["compute_summary"].startswith("CPU")
    stored = Store(tmp_path / "ws").latest("rpi-emu", "onnxruntime", f"onnx:{row['sha256']}")
    assert stored.stats["emulated"] is True and stored.facts["machine"] == "aarch64"


def test_tvm_aarch64_library_runs_there_and_matches_onnxruntime(tmp_path, arm64, capsys):
    server, workdir = arm64
    cfg = _config(tmp_path, server, workdir, "{backend: tvm, target: {kind: llvm, mtriple: aarch64-linux-gnu}, "
                                             "cross_compiler: aarch64-linux-gnu-gcc}")
    model = _ir10_conv(tmp_path / "conv.onnx")
    assert main(["measure", "--config", str(cfg), "--device", "rpi-emu", "--onnx", str(model), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["valid"] and row["emulated"] is True, row
    check = row["output_check"]
    assert check["against"] == "onnxruntime" and check["max_rel_err"] <= check["rtol"], row
