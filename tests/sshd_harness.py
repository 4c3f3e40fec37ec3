"""Real sshd servers for tests: on 127.0.0.1 or inside network namespaces the test creates.

Plain functions and context managers (fixtures live in the test files). Every
server gets its own generated host key, user key, authorized_keys and
known_hosts in a temporary directory, and is stopped by PID. Traffic only ever
goes to loopback or to namespaces created here (10.213.X.0/30 veth pairs).
"""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SSHD = "/usr/sbin/sshd"


@dataclass
class SshServer:
    """One running sshd and the files a client needs to reach it."""

    root: Path
    host: str
    port: int
    netns: str | None = None
    pid: int = 0
    user_key: Path = field(init=False)
    known_hosts: Path = field(init=False)
    config: Path = field(init=False)

    def __post_init__(self) -> None:
        self.user_key = self.root / "id_ed25519"
        self.known_hosts = self.root / "known_hosts"
        self.config = self.root / "sshd_config"

    @property
    def host_id(self) -> str:
        """How known_hosts names this server."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def sshd_missing() -> str | None:
    """Why sshd tests cannot run here, or None."""
    if not os.path.exists(SSHD):
        return "openssh-server is not installed (/usr/sbin/sshd)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is not installed"
    return None


def netns_missing() -> str | None:
    """Why network-namespace tests cannot run here (not root, no `ip netns`), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    name = f"hwnas-probe-{os.getpid()}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network namespace ({probe.stderr.strip()})"
    subprocess.run(["ip", "netns", "del", name], check=True)
    return None


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path) -> None:
    """Generate an ed25519 key pair without passphrase."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _netns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def prepare(root: Path, host: str = "127.0.0.1", port: int | None = None, netns: str | None = None,
            extra_config: str = "") -> SshServer:
    """Write keys, authorized_keys, known_hosts and sshd_config for a server (not started)."""
    root.mkdir(parents=True, exist_ok=True)
    server = SshServer(root, host, port or free_port(), netns)
    keygen(root / "host_key")
    keygen(server.user_key)
    shutil.copy(root / "id_ed25519.pub", root / "authorized_keys")
    (root / "authorized_keys").chmod(0o600)
    server.config.write_text(
        f"Port {server.port}\nListenAddress {host}\nHostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
        "PasswordAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin yes\nUsePAM no\n"
        "StrictModes no\nSubsystem sftp internal-sftp\nMaxStartups 50\nMaxSessions 50\n" + extra_config)
    host_pub = (root / "host_key.pub").read_text().split()[:2]
    server.known_hosts.write_text(f"{server.host_id} {' '.join(host_pub)}\n")
    return server


def start(server: SshServer, timeout: float = 10.0) -> SshServer:
    """Start (or restart) the server's sshd and wait until it accepts connections."""
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    (server.root / "sshd.pid").unlink(missing_ok=True)
    subprocess.run(_netns_prefix(server.netns) + [SSHD, "-f", str(server.config)], check=True)
    return wait_started(server, timeout)


def wait_started(server: SshServer, timeout: float = 10.0) -> SshServer:
    """Wait until a just-started sshd has written its pid file and accepts connections."""
    pidfile = server.root / "sshd.pid"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pidfile.exists() and pidfile.read_text().strip():
            server.pid = int(pidfile.read_text())
            probe = subprocess.run(_netns_prefix(server.netns) + [
                sys.executable, "-c", "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)",
                server.host, str(server.port)], capture_output=True)
            if probe.returncode == 0:
                return server
        time.sleep(0.05)
    raise RuntimeError(f"sshd on {server.host}:{server.port} did not come up")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def stop(server: SshServer, sessions: bool = True) -> None:
    """Stop the sshd (by PID); with ``sessions`` also every session and process started through it."""
    if not server.pid:
        return
    pids = process_tree(server.pid) if sessions else [server.pid]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.pid = 0


@contextlib.contextmanager
def sshd(root: Path, **kwargs) -> Iterator[SshServer]:
    """A running sshd on 127.0.0.1 (or ``host`` in ``netns``), stopped with its sessions afterwards."""
    server = start(prepare(root, **kwargs))
    try:
        yield server
    finally:
        stop(server)


@dataclass
class Namespace:
    """A network namespace joined to the host by a veth pair."""

    name: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str

    def link(self, up: bool) -> None:
        """Set the namespace side of the veth link up or down (a pulled cable)."""
        subprocess.run(["ip", "-n", self.name, "link", "set", "dev", self.ns_if, "up" if up else "down"], check=True)


def _used_subnets() -> set[int]:
    out = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    return {int(word.split(".")[2]) for word in out.split() if word.startswith("10.213.")}


@contextlib.contextmanager
def namespace(tag: str) -> Iterator[Namespace]:
    """A fresh namespace ``hwnas-<tag>-<pid>`` with 10.213.X.1 (host) <-> 10.213.X.2 (namespace); torn down after."""
    name = f"hwnas-{tag}-{os.getpid()}"
    free = sorted(set(range(1, 255)) - _used_subnets())
    subnet = random.Random(f"{name}{time.time_ns()}").choice(free)
    suffix = f"{os.getpid() % 10000}{tag}"[-8:]
    ns = Namespace(name, f"hwh{suffix}", f"hwd{suffix}", f"10.213.{subnet}.1", f"10.213.{subnet}.2")
    cmds = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if],
        ["ip", "link", "set", ns.ns_if, "netns", name],
        ["ip", "addr", "add", f"{ns.host_ip}/30", "dev", ns.host_if],
        ["ip", "link", "set", ns.host_if, "up"],
        ["ip", "-n", name, "addr", "add", f"{ns.ns_ip}/30", "dev", ns.ns_if],
        ["ip", "-n", name, "link", "set", ns.ns_if, "up"],
        ["ip", "-n", name, "link", "set", "lo", "up"],
    ]
    try:
        for cmd in cmds:
            subprocess.run(cmd, check=True, capture_output=True)
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", ns.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def agent_pids(workdir: str | Path) -> list[int]:
    """PIDs of agent processes started with ``--workdir <workdir>`` (exact argument match)."""
    pids = []
    want = str(workdir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"device_agents" in argv and b"--workdir" in argv and want in argv:
            pids.append(int(entry.name))
    return pids


def ssh_device_yaml(name: str, server: SshServer, workdir: Path | str, measurement: str = "",
                    extra: str = "", python: str | None = None) -> str:
    """One hardware.yaml device entry reaching ``server`` (flow-style transport, JSON-quoted strings)."""
    import json
    transport = {"type": "ssh", "host": server.host, "port": server.port, "user": "root",
                 "key_file": str(server.user_key), "known_hosts": str(server.known_hosts),
                 "python": python or sys.executable, "workdir": str(workdir), "connect_timeout_s": 3}
    lines = [f"  - name: {json.dumps(name)}", "    kind: x86_cpu",
             f"    transport: {json.dumps(transport)}",
             "    runtime: {backend: onnxruntime, providers: [CPUExecutionProvider], threads: 1}"]
    if measurement:
        lines.append(f"    measurement: {measurement}")
    return "\n".join(lines) + "\n" + extra


def tiny_models(out_dir: Path, n: int) -> list[Path]:
    """``n`` distinct tiny ONNX models (x * w_i + b_i on a 1x16 tensor), built with onnx.helper."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        w = numpy_helper.from_array(rng.standard_normal((1, 16)).astype(np.float32), "w")
        b = numpy_helper.from_array(np.full((1, 16), i, dtype=np.float32), "b")
        graph = helper.make_graph(
            [helper.make_node("Mul", ["x", "w"], ["y"]), helper.make_node("Add", ["y", "b"], ["z"])],
            f"tiny{i}", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
            [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 16])], [w, b])
        path = out_dir / f"tiny{i:03d}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        paths.append(path)
    return paths
