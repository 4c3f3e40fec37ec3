"""The SSH transport (paramiko): verified host keys, agent deployed by content hash, one exec channel per agent.

Host keys are checked against the entry's ``known_hosts`` file; an unknown or
changed key is refused (:class:`HostKeyRejected`) with a message saying how to
trust it. Only ``trust_on_first_use: true`` accepts an unknown key, and then it
is appended to the known_hosts file. A changed key is always refused.

The agent runs as ``python -m device_agents`` on one exec channel: stdin/stdout
carry the protocol, stderr is separate; its first stderr line is the remote pid,
so a frozen or orphaned agent can be killed (``kill -KILL``, verified against
``/proc/<pid>/cmdline`` for agents left behind by a lost connection).

Permanent problems are told apart from a lost connection and never retried: a key
file that is unreadable, not a key, passphrase-protected or readable by others
(refused, as OpenSSH refuses it) is bad input; a missing remote interpreter or a
work dir that cannot be created or written is a device failure naming the cause.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import posixpath
import shlex
import socket
import threading
from pathlib import Path

import paramiko

from hwnas import deploy
from hwnas.errors import BadInput, DeviceFailure, DeviceUnreachable, HostKeyRejected
from hwnas.transports.base import AgentProcess, Transport

log = logging.getLogger("hwnas")
logging.getLogger("paramiko").setLevel(logging.WARNING)  # its per-connection INFO lines are noise on stderr

KEEPALIVE_S = 10
KILL_TIMEOUT_S = 5.0


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style ``SHA256:...`` fingerprint of a public key."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


def _keyscan_hint(host: str, port: int, known_hosts: Path) -> str:
    port_args = ["-p", str(port)] if port != 22 else []
    return deploy.command(["ssh-keyscan", *port_args, host]) + " >> " + shlex.quote(str(known_hosts))


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    """Refuse an unknown host key with a message saying how to trust it."""

    def __init__(self, device: str, host: str, port: int, known_hosts: Path) -> None:
        self.device, self.host, self.port, self.known_hosts = device, host, port, known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        """Raise HostKeyRejected (never accept)."""
        raise HostKeyRejected(
            f"device {self.device}: host key of {hostname} ({fingerprint(key)}) is not in {self.known_hosts}; "
            f"after checking the fingerprint, trust it with `{_keyscan_hint(self.host, self.port, self.known_hosts)}` "
            "or set transport.trust_on_first_use: true for this device")


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Accept an unknown host key once and append it to the known_hosts file (opt-in only)."""

    def __init__(self, device: str, known_hosts: Path) -> None:
        self.device, self.known_hosts = device, known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        """Remember the key in memory and in the known_hosts file."""
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.known_hosts, "a", encoding="ascii") as handle:
            handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        log.warning("%s: trusted new host key of %s on first use (%s), saved to %s",
                    self.device, hostname, fingerprint(key), self.known_hosts)


def load_private_key(key_file: str, device: str) -> paramiko.PKey:
    """The private key in ``key_file``; BadInput (never retried) if it cannot be used as it is.

    Like OpenSSH, a key readable by group or others is refused. A passphrase-protected key
    is not decrypted here (no secrets in hardware.yaml): it belongs in ssh-agent.
    """
    path = Path(key_file).expanduser()
    where = f"device {device}: transport key_file {key_file}"
    if not path.is_file():
        raise BadInput(f"{where} does not exist or is not a file")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise BadInput(f"{where} is readable by others (mode {mode:04o}); OpenSSH refuses such keys and so "
                       f"does hwnas: run `{deploy.command(['chmod', '600', str(path)])}`")
    try:
        return paramiko.PKey.from_path(path)
    except (paramiko.PasswordRequiredException, TypeError) as exc:
        # cryptography says "Key is password-protected, but password was not provided." as a TypeError
        if isinstance(exc, TypeError) and "password" not in str(exc):
            raise
        raise BadInput(f"{where} is protected by a passphrase; load it into ssh-agent "
                       f"(`{deploy.command(['ssh-add', str(path)])}`) and remove key_file from the entry, "
                       "so hwnas uses the agent's keys") from None
    except (OSError, ValueError, paramiko.SSHException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).split(". ")[0] or type(exc).__name__
        raise BadInput(f"{where} is not a usable private key ({reason})") from None


class SshTransport(Transport):
    """Drives the agent on a device over SSH; one connection, reopened by :meth:`connect` after a loss."""

    def __init__(self, device, workspace: Path) -> None:
        super().__init__(device, workspace)
        self.cfg = device.transport
        self.workdir = deploy.remote_path(self.cfg.workdir)
        self.agent_dir: str | None = None
        self._client: paramiko.SSHClient | None = None
        self._jump: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._present: set[str] = set()
        self._orphans: set[int] = set()
        self._lock = threading.RLock()

    # --- connection ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the SSH connection is up (as far as paramiko knows)."""
        client = self._client
        transport = client.get_transport() if client is not None else None
        return transport is not None and transport.is_active()

    def _key_file(self, key_file: str | None) -> paramiko.PKey | None:
        return None if key_file is None else load_private_key(key_file, self.device.name)

    def _open(self, host: str, port: int, user: str, key_file: str | None,
              sock: socket.socket | paramiko.Channel | None) -> paramiko.SSHClient:
        name = self.device.name
        known_hosts = Path(self.cfg.known_hosts).expanduser()
        client = paramiko.SSHClient()
        if known_hosts.exists():
            try:
                client.load_host_keys(str(known_hosts))
            except (OSError, paramiko.SSHException) as exc:
                raise BadInput(f"device {name}: cannot read known_hosts {known_hosts} ({exc})") from None
        client.set_missing_host_key_policy(
            _TrustOnFirstUse(name, known_hosts) if self.cfg.trust_on_first_use
            else _RefuseUnknown(name, host, port, known_hosts))
        timeout = self.cfg.connect_timeout_s
        try:
            if sock is None:
                sock = socket.create_connection((host, port), timeout=timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.connect(host, port, username=user, pkey=self._key_file(key_file),
                           allow_agent=key_file is None, look_for_keys=False, timeout=timeout,
                           banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout, sock=sock)
        except paramiko.BadHostKeyException as exc:
            client.close()
            remove = deploy.command(["ssh-keygen", "-R", self._host_id(host, port), "-f", str(known_hosts)])
            raise HostKeyRejected(
                f"device {name}: host key of {host}:{port} CHANGED (known {fingerprint(exc.expected_key)}, "
                f"offered {fingerprint(exc.key)}) — refusing to connect; if the device was really reinstalled, "
                f"remove the old entry with `{remove}` "
                "and trust the new key") from None
        except paramiko.AuthenticationException as exc:
            client.close()
            how = f"key {key_file}" if key_file else "ssh-agent keys"
            raise DeviceFailure(f"device {name}: SSH login as {user}@{host}:{port} with {how} was refused ({exc}); "
                                "add the public key to the device's authorized_keys") from None
        except (HostKeyRejected, BadInput):
            client.close()
            raise
        except (OSError, EOFError, paramiko.SSHException) as exc:
            client.close()
            raise DeviceUnreachable(f"device {name}: cannot connect to {user}@{host}:{port} "
                                    f"({exc or type(exc).__name__})") from None
        client.get_transport().set_keepalive(KEEPALIVE_S)
        return client

    @staticmethod
    def _host_id(host: str, port: int) -> str:
        return host if port == 22 else f"[{host}]:{port}"

    def connect(self) -> None:
        """Open the SSH connection (through the jump host if configured) unless it is up."""
        with self._lock:
            if self.connected:
                return
            self._drop()
            cfg, sock = self.cfg, None
            if cfg.jump is not None:
                self._jump = self._open(cfg.jump.host, cfg.jump.port, cfg.jump.user or cfg.user,
                                        cfg.jump.key_file or cfg.key_file, None)
                try:
                    sock = self._jump.get_transport().open_channel(
                        "direct-tcpip", (cfg.host, cfg.port), ("127.0.0.1", 0), timeout=cfg.connect_timeout_s)
                except (OSError, EOFError, paramiko.SSHException) as exc:
                    self._drop()
                    raise DeviceUnreachable(f"device {self.device.name}: jump host {cfg.jump.host} cannot reach "
                                            f"{cfg.host}:{cfg.port} ({exc})") from None
            try:
                self._client = self._open(cfg.host, cfg.port, cfg.user, cfg.key_file, sock)
            except Exception:
                self._drop()
                raise
        self._kill_orphans()

    def _drop(self) -> None:
        """Forget the connection (it is dead or being replaced)."""
        for closable in (self._sftp, self._client, self._jump):
            if closable is not None:
                closable.close()
        self._sftp = self._client = self._jump = None
        self._present.clear()
        self.agent_dir = None

    def _sftp_client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self.connect()
            try:
                self._sftp = self._client.open_sftp()
                self._sftp.get_channel().settimeout(self.cfg.connect_timeout_s * 3)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                raise DeviceUnreachable(f"device {self.device.name}: cannot open SFTP ({exc})") from None
        return self._sftp

    def run(self, argv: list[str], timeout: float = KILL_TIMEOUT_S, with_stderr: bool = False) -> tuple[int, bytes]:
        """Run a command (every argument quoted) on the device; returns (exit status, stdout
        [+ stderr with ``with_stderr``])."""
        self.connect()
        try:
            channel = self._client.get_transport().open_session(timeout=timeout)
            channel.settimeout(timeout)
            channel.set_combine_stderr(with_stderr)
            channel.exec_command(deploy.command(argv))
            out = channel.makefile("rb").read()
            if not channel.status_event.wait(timeout):
                raise TimeoutError("no exit status")
            channel.close()
            return channel.recv_exit_status(), out
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise DeviceUnreachable(f"device {self.device.name}: remote command failed "
                                    f"({exc or type(exc).__name__})") from None

    # --- agent -------------------------------------------------------------------------------

    def _workdir_problem(self) -> str | None:
        """Why the work dir cannot be created or written, as the device's own tools say it; None if it can.

        Asked after an SFTP failure: SFTP v3 reports most causes as a bare "Failure" or "No such file"."""
        probe = posixpath.join(self.workdir, ".hwnas-write-test")
        for argv in (["mkdir", "-p", "--", self.workdir], ["touch", "--", probe]):
            status, out = self.run(argv, with_stderr=True)
            if status != 0:
                text = out.decode("utf-8", "replace").strip().splitlines()
                return text[-1].rsplit(": ", 1)[-1] if text else f"{argv[0]} exited with status {status}"
        self.run(["rm", "-f", "--", probe])
        return None

    def _sftp_failed(self, exc: BaseException, doing: str) -> DeviceFailure:
        """The error to raise for an SFTP failure: permanent (a work dir problem, never retried) when the
        connection is still up and the work dir is unusable; DeviceUnreachable (retried) otherwise."""
        problem = None
        if isinstance(exc, OSError) and self.connected:
            try:
                problem = self._workdir_problem()
            except DeviceUnreachable:
                problem = None
            if problem is None and isinstance(exc, PermissionError):
                problem = f"{exc.strerror or 'permission denied'} under it"
        with self._lock:
            self._drop()
        if problem is not None:
            return DeviceFailure(f"device {self.device.name}: transport.workdir {self.workdir} is not usable on "
                                 f"the device ({problem}); point it at a writable folder")
        return DeviceUnreachable(f"device {self.device.name}: {doing} failed ({exc or type(exc).__name__})")

    def _deploy(self) -> str:
        if self.agent_dir is None:
            try:
                self.agent_dir, uploaded = deploy.ensure_agent(self._sftp_client(), self.workdir)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                raise self._sftp_failed(exc, f"agent upload to {self.workdir}") from None
            if uploaded:
                log.info("%s: deployed agent to %s", self.device.name, self.agent_dir)
        return self.agent_dir

    def start_agent(self) -> AgentProcess:
        """Deploy the agent if this version is absent, start it on one exec channel, return its channel."""
        name = self.device.name
        self.connect()
        directory = self._deploy()
        try:
            channel = self._client.get_transport().open_session(timeout=self.cfg.connect_timeout_s)
            channel.settimeout(self.cfg.connect_timeout_s)
            channel.exec_command(deploy.agent_command(self.cfg.python, self.workdir, directory))
            stderr = channel.makefile_stderr("rb")
            first = stderr.readline(200).decode("ascii", "replace")
            channel.settimeout(None)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._drop()
            raise DeviceUnreachable(f"device {name}: cannot start the agent ({exc or type(exc).__name__})") from None
        if first.startswith(deploy.NO_PYTHON):
            channel.close()
            raise DeviceFailure(f"device {name}: the Python interpreter {self.cfg.python!r} (transport.python) is "
                                "missing on the device; install Python 3 there or set transport.python to its path")
        if not first.startswith(deploy.PID_PREFIX) or not first[len(deploy.PID_PREFIX):].strip().isdigit():
            channel.close()
            raise DeviceFailure(f"device {name}: the remote shell did not start the agent ({first.strip()!r})")
        pid = int(first[len(deploy.PID_PREFIX):])

        def kill() -> None:
            self._kill(pid)
            channel.close()

        agent = AgentProcess(channel.sendall, channel.makefile("rb"), stderr, kill, name)
        agent.pid = pid
        return agent

    def _kill(self, pid: int) -> None:
        """SIGKILL a remote agent now; if the connection is gone, remember it for after the reconnect."""
        if not self.connected:
            self._orphans.add(pid)
            return
        try:
            self.run(["kill", "-KILL", str(pid)])
        except DeviceUnreachable:
            self._orphans.add(pid)
            with self._lock:
                self._drop()  # a connection that cannot run `kill` is dead

    def _kill_orphans(self) -> None:
        """Kill agents left behind by a lost connection (only if the pid is still one of ours)."""
        for pid in sorted(self._orphans):
            try:
                status, out = self.run(["cat", f"/proc/{pid}/cmdline"])
                if status == 0 and b"device_agents" in out and self.workdir.encode() in out:
                    self.run(["kill", "-KILL", str(pid)])
                    log.info("%s: killed agent %d left behind by a lost connection", self.device.name, pid)
            except DeviceUnreachable:
                return
            self._orphans.discard(pid)

    def put_model(self, sha256: str, fmt: str, path: Path) -> bool:
        """Upload a model into the device's cache over SFTP (once per sha256); always True."""
        if sha256 in self._present:
            return True
        try:
            sent = deploy.put_model(self._sftp_client(), self.workdir, sha256, fmt, Path(path))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._sftp_failed(exc, "model upload") from None
        if sent:
            log.debug("%s: uploaded model %s (%d bytes)", self.device.name, sha256[:12], os.path.getsize(path))
        self._present.add(sha256)
        return True

    def close(self) -> None:
        """Close the SFTP session and the connection(s)."""
        with self._lock:
            self._drop()
