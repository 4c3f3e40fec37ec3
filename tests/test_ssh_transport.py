"""The SSH transport against a real sshd: check and measure, deployment by content hash, models once, jump host."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import device_agents
from hwnas.cli import main
from hwnas.store import Store
from tests import sshd_harness as harness
from tests.helpers import probe_model_files

# drift retries off: see tests/helpers.py
FAST = "{warmup_ms: 0, repeat: 3, min_repeat_ms: 1, sessions: 1, timeout_s: 30, drift_threshold: 1000}"


def write_config(tmp_path: Path, *entries: str) -> Path:
    path = tmp_path / "hardware.yaml"
    path.write_text(f"workspace: {json.dumps(str(tmp_path / 'ws'))}\ndevices:\n" + "".join(entries))
    return path


def run_json(capsys, *args):
    code = main([*args, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out or "null"), captured.err


def test_check_and_measure_over_ssh_deploys_by_hash_once(tmp_path, ssh_server, capsys):
    remote = tmp_path / "remote"
    cfg = write_config(tmp_path, harness.ssh_device_yaml("loop", ssh_server, remote, FAST))
    code, reports, err = run_json(capsys, "devices", "check", "--config", str(cfg))
    assert code == 0, err
    report = reports[0]
    assert report["reachable"] and report["agent"] == device_agents.agent_version()
    assert report["rtt_ms"] > 0 and report["facts"]["runtimes"]["onnxruntime"]
    agent_dir = remote / f"agent-{device_agents.tree_hash()[:16]}"
    assert report["agent_dir"] == str(agent_dir)
    uploaded = sorted(p.relative_to(agent_dir / "device_agents").as_posix()
                      for p in (agent_dir / "device_agents").rglob("*.py"))
    assert uploaded == sorted(harness_agent_files())
    stamp = (agent_dir / "device_agents" / "agent.py").stat().st_mtime_ns

    models = harness.tiny_models(tmp_path / "models", 3)
    code, rows, err = run_json(capsys, "measure", "--config", str(cfg), "--device", "loop",
                               "--onnx", *map(str, models))
    assert code == 0, err
    assert [r["model"] for r in rows] == list(map(str, models)) and all(r["latency_ms"] > 0 for r in rows)
    cached = sorted((remote / "models").iterdir())
    assert [p.name for p in cached] == sorted([f"{r['sha256']}.onnx" for r in rows] + probe_model_files(tmp_path))
    model_stamps = [p.stat().st_mtime_ns for p in cached]

    code, rows, err = run_json(capsys, "measure", "--config", str(cfg), "--device", "loop",
                               "--onnx", *map(str, models))
    assert code == 0, err
    assert [p.stat().st_mtime_ns for p in sorted((remote / "models").iterdir())] == model_stamps  # sent once
    assert (agent_dir / "device_agents" / "agent.py").stat().st_mtime_ns == stamp  # deployed once
    assert [p.name for p in remote.iterdir() if p.name.startswith("agent-")] == [agent_dir.name]  # no .part left
    assert Store(tmp_path / "ws").count(device="loop") == 6


def harness_agent_files():
    from hwnas.deploy import agent_files
    return list(agent_files())


def test_jump_host_reaches_a_device_only_visible_behind_it(tmp_path, netns_ok, capsys):
    """Target sshd listens on 127.0.0.1 inside a namespace: reachable only through the jump sshd there."""
    with harness.namespace("jmp") as ns:
        jump = harness.start(harness.prepare(tmp_path / "jump", host=ns.ns_ip, port=22, netns=ns.name))
        target = harness.start(harness.prepare(tmp_path / "target", host="127.0.0.1", port=2222, netns=ns.name))
        try:
            known = tmp_path / "known_hosts"
            known.write_text(jump.known_hosts.read_text() + target.known_hosts.read_text())
            target.known_hosts = known
            jump_entry = {"host": ns.ns_ip, "port": 22, "key_file": str(jump.user_key)}
            entry = harness.ssh_device_yaml("behind", target, tmp_path / "remote", FAST).replace(
                '"connect_timeout_s": 3}', f'"connect_timeout_s": 3, "jump": {json.dumps(jump_entry)}}}')
            cfg = write_config(tmp_path, entry)
            code, reports, err = run_json(capsys, "devices", "check", "--config", str(cfg))
            assert code == 0, err
            assert reports[0]["reachable"] and reports[0]["facts"]["pid"] > 0
        finally:
            harness.stop(jump)
            harness.stop(target)


def test_remote_python_and_workdir_with_tilde_are_home_relative(tmp_path, ssh_server, capsys):
    name = f"hwnas-test-{os.getpid()}-{tmp_path.name}"
    cfg = write_config(tmp_path, harness.ssh_device_yaml("tilde", ssh_server, f"~/{name}", FAST))
    try:
        code, reports, err = run_json(capsys, "devices", "check", "--config", str(cfg))
        assert code == 0, err
        assert reports[0]["agent_dir"].startswith(name + "/agent-")
        assert (Path.home() / reports[0]["agent_dir"] / "device_agents" / "agent.py").is_file()
    finally:
        import shutil
        shutil.rmtree(Path.home() / name, ignore_errors=True)


# --- permanent remote problems: named, never retried --------------------------------------------------------

def measure_cli(cfg: Path, tmp_path: Path, device: str) -> subprocess.CompletedProcess:
    """``hwnas measure`` of one tiny model in a subprocess (stderr checked for retries and tracebacks)."""
    model = harness.tiny_models(tmp_path / "models", 1)[0]
    return subprocess.run([sys.executable, "-m", "hwnas.cli", "measure", "--config", str(cfg), "--device", device,
                           "--onnx", str(model)], capture_output=True, text=True, timeout=120)


def assert_not_retried(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "fault 1 of" not in proc.stderr and "retrying" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "stored in" not in proc.stdout


def test_missing_remote_python_is_named_not_socket_closed(tmp_path, ssh_server):
    cfg = write_config(tmp_path, harness.ssh_device_yaml("nopy", ssh_server, tmp_path / "remote", FAST,
                                                         python="/opt/no-such/python3"))
    proc = measure_cli(cfg, tmp_path, "nopy")
    assert_not_retried(proc)
    assert "the Python interpreter '/opt/no-such/python3' (transport.python) is missing on the device" in proc.stderr
    assert "Socket is closed" not in proc.stderr


def test_workdir_under_a_file_is_named_with_its_cause(tmp_path, ssh_server):
    (tmp_path / "plain-file").write_text("x")
    workdir = tmp_path / "plain-file" / "hwnas"
    cfg = write_config(tmp_path, harness.ssh_device_yaml("nodir", ssh_server, workdir, FAST))
    proc = measure_cli(cfg, tmp_path, "nodir")
    assert_not_retried(proc)
    assert f"transport.workdir {workdir} is not usable on the device (Not a directory)" in proc.stderr


def test_read_only_workdir_is_named_with_its_cause(tmp_path, ssh_server):
    """A real read-only file system (a tmpfs mounted ro) under the work dir; SFTP alone says "(Failure)"."""
    mount = tmp_path / "ro"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here ({made.stderr.decode().strip()})")
    try:
        cfg = write_config(tmp_path, harness.ssh_device_yaml("ro", ssh_server, mount / "hwnas", FAST))
        proc = measure_cli(cfg, tmp_path, "ro")
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    assert_not_retried(proc)
    assert f"transport.workdir {mount / 'hwnas'} is not usable on the device (Read-only file system)" in proc.stderr
    assert "(Failure)" not in proc.stderr
