"""hardware.yaml validation: every malformed file exits 2 naming its line and field."""
import subprocess
import sys
from pathlib import Path

import pytest

from hwnas import config
from hwnas.cli import main
from hwnas.errors import BadInput

REPO = Path(__file__).resolve().parents[1]
HEAD = "devices:\n  - name: d\n    kind: x86_cpu\n"
LOCAL = "    transport: {type: local}\n"
ORT = "    runtime: {backend: onnxruntime}\n"
SSH = "    transport:\n      type: ssh\n      host: h\n      user: u\n"

# (yaml text, line expected in the message, text expected in the message)
BAD = {
    "unknown kind": ("devices:\n  - name: d\n    kind: toaster\n" + LOCAL + ORT, 3, "devices[0].kind"),
    "missing kind": ("devices:\n  - name: d\n" + LOCAL + ORT, 2, "devices[0].kind"),
    "missing name": ("devices:\n  - kind: x86_cpu\n" + LOCAL + ORT, 2, "devices[0].name"),
    "empty name": ("devices:\n  - name: ''\n    kind: x86_cpu\n" + LOCAL + ORT, 2, "devices[0].name"),
    "slash in name": ("devices:\n  - name: a/b\n    kind: x86_cpu\n" + LOCAL + ORT, 2, "devices[0].name"),
    "missing transport": (HEAD + ORT, 2, "devices[0].transport"),
    "unknown transport": (HEAD + "    transport: {type: carrier_pigeon}\n" + ORT, 4, "devices[0].transport"),
    "missing runtime": (HEAD + LOCAL, 2, "devices[0].runtime"),
    "unknown backend": (HEAD + LOCAL + "    runtime: {backend: tflite}\n", 5, "devices[0].runtime"),
    "zero threads": (HEAD + LOCAL + "    runtime: {backend: onnxruntime, threads: 0}\n", 5,
                     "devices[0].runtime.threads"),
    "threads not int": (HEAD + LOCAL + "    runtime: {backend: onnxruntime, threads: many}\n", 5, "runtime.threads"),
    "bad provider": (HEAD + LOCAL + "    runtime: {backend: onnxruntime, providers: [cpu]}\n", 5, "runtime.providers"),
    "empty providers": (HEAD + LOCAL + "    runtime: {backend: onnxruntime, providers: []}\n", 5, "runtime.providers"),
    "port out of range": (HEAD + SSH + "      port: 70000\n" + ORT, 8, "devices[0].transport.port"),
    "ssh without host": (HEAD + "    transport:\n      type: ssh\n      user: u\n" + ORT, 4, "transport.host"),
    "ssh password": (HEAD + SSH + "      password: hunter2\n" + ORT, 8, "secrets do not belong"),
    "unknown ssh key": (HEAD + SSH + "      hostname: x\n" + ORT, 8, "transport.hostname: unknown key"),
    "unknown device key": (HEAD + LOCAL + ORT + "    colour: red\n", 6, "devices[0].colour: unknown key"),
    "negative affinity": (HEAD + LOCAL + ORT + "    affinity: [0, -1]\n", 6, "devices[0].affinity[1]"),
    "tvm target without kind": (HEAD + LOCAL + "    runtime: {backend: tvm, target: {mcpu: a72}}\n", 5,
                                "runtime.target"),
    "tvm negative trials": (HEAD + LOCAL + "    runtime: {backend: tvm, target: {kind: llvm}, trials: -1}\n", 5,
                            "runtime.trials"),
    "simulator without clock": (HEAD + LOCAL
                                + "    runtime: {backend: simulator, simulator: scalesim, array: [8, 8]}\n",
                                5, "runtime.clock_mhz"),
    "bad measurement repeat": (HEAD + LOCAL + ORT + "    measurement: {repeat: 1}\n", 6, "measurement.repeat"),
    "duplicate names": (HEAD + LOCAL + ORT + "  - name: d\n    kind: x86_cpu\n" + LOCAL + ORT, 6,
                        "devices[1].name: device name 'd' is used twice"),
    "dot-dot name": ("devices:\n  - name: '..'\n    kind: x86_cpu\n" + LOCAL + ORT, 2, "devices[0].name"),
    "hidden name": ("devices:\n  - name: .d\n    kind: x86_cpu\n" + LOCAL + ORT, 2, "names folders"),
    "space in name": ("devices:\n  - name: my pi\n    kind: x86_cpu\n" + LOCAL + ORT, 2, "devices[0].name"),
    "recursive alias": ("x: &loop [1, *loop]\n" + HEAD + LOCAL + ORT, 1, "alias refers to the node"),
    "no devices": ("workspace: w\ndevices: []\n", 2, "devices"),
    "devices not a list": ("devices: {a: 1}\n", 1, "devices"),
    "top level is a list": ("- a\n- b\n", 1, "must be a mapping"),
    "broken yaml": ("devices:\n  - name: [unclosed\n", 3, "not valid YAML"),
    "unset env var": (HEAD + "    transport:\n      type: ssh\n      host: ${HWNAS_TEST_UNSET_VAR}\n"
                      "      user: u\n" + ORT,
                      6, "HWNAS_TEST_UNSET_VAR is not set"),
    "second device bad": (HEAD + LOCAL + ORT + "  - name: e\n    kind: npu\n" + LOCAL
                          + "    runtime: {backend: onnxruntime, threads: -2}\n",
                          9, "devices[1].runtime.threads"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_file_names_line_and_field(tmp_path, case):
    text, line, fragment = BAD[case]
    path = tmp_path / "hardware.yaml"
    path.write_text(text)
    with pytest.raises(BadInput) as err:
        config.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert fragment in message, message
    assert "\n" not in message


@pytest.mark.parametrize("case", ["unknown kind", "ssh password", "broken yaml"])
def test_cli_exits_2_without_traceback(tmp_path, case, capsys):
    path = tmp_path / "hardware.yaml"
    path.write_text(BAD[case][0])
    assert main(["devices", "list", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{BAD[case][1]}" in err and "Traceback" not in err


def test_cli_subprocess_exit_code(tmp_path):
    path = tmp_path / "hardware.yaml"
    path.write_text(BAD["unknown kind"][0])
    proc = subprocess.run([sys.executable, "-m", "hwnas.cli", "devices", "list", "--config", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and ":3:" in proc.stderr and "Traceback" not in proc.stderr


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``hwnas ARGS`` in a subprocess; a hang fails the test (today's alias bomb never ended)."""
    return subprocess.run([sys.executable, "-m", "hwnas.cli", *args], capture_output=True, text=True, timeout=60)


def test_alias_bomb_exits_2_at_once(tmp_path):
    """A real "billion laughs": 10 levels of 10 aliases, 10^10 nodes once expanded, 700 bytes on disk."""
    levels = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = tmp_path / "hardware.yaml"
    path.write_text("\n".join(levels) + "\n" + HEAD + LOCAL + ORT)
    proc = run_cli("devices", "list", "--config", str(path))
    assert proc.returncode == 2, proc.stderr
    assert f"{path}:" in proc.stderr and "alias" in proc.stderr and "Traceback" not in proc.stderr


def test_modest_aliases_still_load(tmp_path):
    path = tmp_path / "hardware.yaml"
    path.write_text(HEAD + LOCAL + "    runtime: &ort {backend: onnxruntime, threads: 2}\n"
                    "  - name: e\n    kind: x86_cpu\n" + LOCAL + "    runtime: *ort\n")
    assert config.load(path).device("e").runtime.threads == 2


def test_config_dev_zero_exits_2_without_reading_it_all():
    proc = run_cli("devices", "list", "--config", "/dev/zero")
    assert proc.returncode == 2, proc.stderr
    assert "/dev/zero: larger than 1 MiB" in proc.stderr and "Traceback" not in proc.stderr


def test_oversized_but_valid_file_exits_2(tmp_path):
    """A valid registry padded with comments past 1 MiB is refused before parsing (50 MB parsed for a minute)."""
    path = tmp_path / "hardware.yaml"
    path.write_text(HEAD + LOCAL + ORT + ("# padding padding padding padding padding padding\n" * 25_000))
    with pytest.raises(BadInput, match="larger than 1 MiB"):
        config.load(path)


def test_non_utf8_file_exits_2_naming_it(tmp_path):
    path = tmp_path / "hardware.yaml"
    path.write_bytes(b"devices: \xff\xfe\n")
    with pytest.raises(BadInput, match=f"{path}: not UTF-8"):
        config.load(path)


def test_env_expansion_and_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("PI_HOST", "192.0.2.7")
    path = tmp_path / "hardware.yaml"
    path.write_text(HEAD + "    transport:\n      type: ssh\n      host: ${PI_HOST}\n      user: pi\n" + ORT)
    reg = config.load(path)
    device = reg.device("d")
    assert device.transport.host == "192.0.2.7" and device.transport.port == 22
    assert device.transport.known_hosts == "~/.ssh/known_hosts" and not device.transport.trust_on_first_use
    assert device.runtime.provider_names == ["CPUExecutionProvider"] and device.runtime.threads == 1
    assert reg.workspace == (tmp_path / ".hwnas").resolve()
    with pytest.raises(BadInput, match="no device named 'x'"):
        reg.device("x")


def test_shipped_hardware_yaml_registers_local():
    reg = config.load(REPO / "hardware.yaml")
    local = reg.device("local")
    assert local.kind == "x86_cpu" and local.transport.type == "local"
    assert local.runtime.backend == "onnxruntime" and local.runtime.threads == 1


def test_shipped_examples_validate_when_uncommented(tmp_path, monkeypatch):
    """The commented-out examples in hardware.yaml are valid entries once uncommented."""
    for var in ("RPI4_HOST", "PHONE_HOST", "NPU_HOST", "SIM_HOST"):
        monkeypatch.setenv(var, "192.0.2.1")
    lines = (REPO / "hardware.yaml").read_text().splitlines()
    text = "\n".join(line[1:] if line.startswith("#  ") else line for line in lines)
    (tmp_path / "hardware.yaml").write_text(text)
    kinds = {d.kind for d in config.load(tmp_path / "hardware.yaml").devices}
    assert {"arm_cpu", "mobile_gpu", "npu", "fpga_sim"} <= kinds
