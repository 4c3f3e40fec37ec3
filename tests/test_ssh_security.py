"""Security over SSH: host keys verified (unknown and changed keys refused), trust on first use only when
asked, hostile names and paths harmless, and an agent that writes nothing outside its work dir."""
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hwnas.cli import main
from hwnas.store import Store
from tests import sshd_harness as harness
from tests.helpers import probe_model_files

# drift retries off: see tests/helpers.py
FAST = "{warmup_ms: 0, repeat: 3, min_repeat_ms: 1, sessions: 1, timeout_s: 30, drift_threshold: 1000}"


def write_config(tmp_path: Path, entry: str) -> Path:
    path = tmp_path / "hardware.yaml"
    path.write_text(f"workspace: {json.dumps(str(tmp_path / 'ws'))}\ndevices:\n{entry}")
    return path


def check(capsys, cfg: Path):
    code = main(["devices", "check", "--config", str(cfg), "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_unknown_host_key_refused_by_default(tmp_path, ssh_server, capsys):
    ssh_server.known_hosts.write_text("")
    cfg = write_config(tmp_path, harness.ssh_device_yaml("dev", ssh_server, tmp_path / "remote", FAST))
    code, reports, _ = check(capsys, cfg)
    assert code == 1 and not reports[0]["reachable"]
    message = reports[0]["error"]
    assert "not in" in message and "SHA256:" in message
    assert f"ssh-keyscan -p {ssh_server.port} 127.0.0.1 >> " in message and "trust_on_first_use: true" in message
    assert ssh_server.known_hosts.read_text() == ""  # nothing trusted behind the user's back
    assert not (tmp_path / "remote").exists()        # nothing uploaded


def test_unknown_host_key_trusted_on_first_use_only_when_asked(tmp_path, ssh_server, capsys, caplog):
    expected = ssh_server.known_hosts.read_text()
    ssh_server.known_hosts.unlink()
    entry = harness.ssh_device_yaml("dev", ssh_server, tmp_path / "remote", FAST).replace(
        '"connect_timeout_s": 3}', '"connect_timeout_s": 3, "trust_on_first_use": true}')
    cfg = write_config(tmp_path, entry)
    code, reports, err = check(capsys, cfg)
    assert code == 0 and reports[0]["reachable"], err
    assert "trusted new host key" in caplog.text
    assert ssh_server.known_hosts.read_text().split() == expected.split()
    caplog.clear()
    code, reports, err = check(capsys, cfg)  # the second time the saved key is used, no new trust
    assert code == 0 and "trusted new host key" not in caplog.text


def test_changed_host_key_refused_even_with_trust_on_first_use(tmp_path, ssh_server, capsys):
    harness.keygen(tmp_path / "other")
    other = (tmp_path / "other.pub").read_text().split()[:2]
    ssh_server.known_hosts.write_text(f"{ssh_server.host_id} {' '.join(other)}\n")
    before = ssh_server.known_hosts.read_text()
    entry = harness.ssh_device_yaml("dev", ssh_server, tmp_path / "remote", FAST).replace(
        '"connect_timeout_s": 3}', '"connect_timeout_s": 3, "trust_on_first_use": true}')
    code, reports, _ = check(capsys, write_config(tmp_path, entry))
    assert code == 1 and not reports[0]["reachable"]
    assert "CHANGED" in reports[0]["error"] and "ssh-keygen -R" in reports[0]["error"]
    assert ssh_server.known_hosts.read_text() == before


def test_hostile_device_name_workdir_and_python_path_run_nothing(tmp_path, ssh_server, capsys):
    token = secrets.token_hex(4)
    marks = [f"pw{token}{i}" for i in range(6)]
    hostile = f"e;touch {marks[0]} $(touch {marks[1]})`touch {marks[2]}`'\" x"
    cfg = write_config(tmp_path, harness.ssh_device_yaml(hostile, ssh_server, tmp_path / "remote", FAST))
    assert main(["devices", "check", "--config", str(cfg)]) == 2  # names are safe path components
    assert "devices[0].name" in capsys.readouterr().err
    name = "e.hostile-paths_1"
    workdir = tmp_path / f"work dir; touch {marks[3]} $(touch {marks[4]}) 'q\" x"
    bindir = tmp_path / f"bin $(touch {marks[5]}); 'x"
    bindir.mkdir()
    (bindir / "python 3").symlink_to(sys.executable)
    cfg = write_config(tmp_path, harness.ssh_device_yaml(name, ssh_server, workdir, FAST,
                                                         python=str(bindir / "python 3")))
    models = harness.tiny_models(tmp_path / "models", 2)
    code = main(["measure", "--config", str(cfg), "--device", name, "--onnx", *map(str, models), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = json.loads(captured.out)
    assert [r["device"] for r in rows] == [name, name]
    assert sorted(p.name for p in (workdir / "models").iterdir()) == sorted(
        [f"{r['sha256']}.onnx" for r in rows] + probe_model_files(tmp_path))
    for place in (Path.home(), tmp_path, Path("/"), Path("/tmp"), workdir):
        for mark in marks:
            assert not (place / mark).exists(), f"a remote shell ran an injected command ({place / mark})"
    assert Store(tmp_path / "ws").count(device=name) == 2


_CALL = re.compile(r'^\d+\s+(\w+)\((.*)\)\s+=\s+(-?\d+)')
_ARG = re.compile(r'(\d+)<([^>]*)>|AT_FDCWD|"((?:[^"\\]|\\.)*)"')


def _paths(args: str, cwd: str) -> list[str]:
    """Absolute paths named in a syscall's arguments (``strace -y`` prints fds as ``N</path>``)."""
    paths, base = [], cwd
    for match in _ARG.finditer(args):
        if match.group(3) is None:
            base = match.group(2) if match.group(2) is not None else cwd
            continue
        name = match.group(3)
        paths.append(os.path.normpath(name if name.startswith("/") else os.path.join(base, name)))
        base = cwd
    return paths


def written_paths(log: str, cwd: str) -> list[str]:
    """Paths the traced processes created, opened for writing, renamed, linked or removed (successfully)."""
    paths = []
    for line in log.splitlines():
        match = _CALL.match(line)
        if not match or int(match.group(3)) < 0:
            continue
        call, args = match.group(1), match.group(2)
        if call in ("openat", "open", "creat"):
            if call == "creat" or re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC", args):
                paths.extend(_paths(args, cwd)[:1])
        else:
            paths.extend(_paths(args, cwd))
    return paths


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_agent_writes_nothing_outside_its_workdir(tmp_path, ssh_server, capsys):
    """The remote python is wrapped in strace; every path the agent writes must lie inside its work dir."""
    workdir = (tmp_path / "remote").resolve()
    trace = tmp_path / "trace.log"
    wrapper = tmp_path / "traced-python"
    wrapper.write_text("#!/bin/sh\nexec strace -f -y -qq -o \"$HWNAS_TRACE\" -e trace=open,openat,creat,mkdir,mkdirat,"
                       "rename,renameat,renameat2,unlink,unlinkat,link,linkat,symlink,symlinkat,truncate "
                       f"{sys.executable} \"$@\"\n".replace("$HWNAS_TRACE", str(trace)))
    wrapper.chmod(0o755)
    cfg = write_config(tmp_path, harness.ssh_device_yaml("traced", ssh_server, workdir, FAST, python=str(wrapper)))
    models = harness.tiny_models(tmp_path / "models", 2)
    code = main(["measure", "--config", str(cfg), "--device", "traced", "--onnx", *map(str, models), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    written = written_paths(trace.read_text(), str(Path.home()))
    assert written, "strace recorded no writes at all: the trace is not working"
    outside = sorted({p for p in written
                      if not p.startswith(str(workdir) + "/") and p not in ("/dev/null", "/dev/tty")})
    assert outside == []


# --- key files: bad input, refused at once (never retried), with the right advice ---------------------------

def measure_cli(cfg: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """``hwnas measure`` of one tiny model in a subprocess; a retry loop (169 s today for a bad key) times out."""
    model = harness.tiny_models(tmp_path / "models", 1)[0]
    return subprocess.run([sys.executable, "-m", "hwnas.cli", "measure", "--config", str(cfg), "--device", "dev",
                           "--onnx", str(model)], capture_output=True, text=True, timeout=90)


def with_key(tmp_path: Path, server, key: Path) -> Path:
    entry = harness.ssh_device_yaml("dev", server, tmp_path / "remote", FAST).replace(str(server.user_key), str(key))
    return write_config(tmp_path, entry)


def test_garbage_key_file_exits_2_at_once_naming_it(tmp_path, ssh_server):
    key = tmp_path / "id_garbage"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o600)
    proc = measure_cli(with_key(tmp_path, ssh_server, key), tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert f"key_file {key} is not a usable private key" in proc.stderr
    assert "retrying" not in proc.stderr and "Traceback" not in proc.stderr
    assert "stored in" not in proc.stdout  # nothing was stored


def test_passphrase_key_is_sent_to_ssh_agent_not_authorized_keys(tmp_path, ssh_server, capsys):
    key = tmp_path / "id_locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "correct horse", "-f", str(key)], check=True)
    code, reports, err = check(capsys, with_key(tmp_path, ssh_server, key))
    assert code == 2 and not reports[0]["reachable"]
    message = reports[0]["error"]
    assert f"key_file {key} is protected by a passphrase" in message and f"ssh-add {key}" in message
    assert "authorized_keys" not in message and "Traceback" not in err


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_key_readable_by_others_is_refused_like_openssh(tmp_path, ssh_server, capsys, mode):
    key = tmp_path / "id_open"
    shutil.copy(ssh_server.user_key, key)
    key.chmod(mode)
    code, reports, _ = check(capsys, with_key(tmp_path, ssh_server, key))
    assert code == 2 and not reports[0]["reachable"]
    assert f"readable by others (mode {mode:04o})" in reports[0]["error"] and f"chmod 600 {key}" in reports[0]["error"]
    assert not (tmp_path / "remote").exists()  # refused before connecting
    key.chmod(0o600)  # the same key, private again, works
    code, reports, err = check(capsys, with_key(tmp_path, ssh_server, key))
    assert code == 0 and reports[0]["reachable"], err
