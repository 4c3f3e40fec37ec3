"""The local transport: the same agent, run as a subprocess on this machine."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import device_agents
from hwnas.transports.base import AgentProcess, Transport


class LocalTransport(Transport):
    """Runs ``python -m device_agents`` as a child process; its work dir is in the workspace."""

    @property
    def workdir(self) -> Path:
        """The agent's work dir: ``<workspace>/agents/<device>``."""
        return self.workspace / "agents" / self.device.name

    def start_agent(self) -> AgentProcess:
        """Start the agent subprocess with the installed ``device_agents`` package."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        package_root = str(Path(device_agents.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
        proc = subprocess.Popen(
            [os.path.expanduser(self.device.transport.python or sys.executable), "-m", "device_agents",
             "--workdir", str(self.workdir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, start_new_session=True,
        )

        def write(frame: bytes) -> None:
            proc.stdin.write(frame)
            proc.stdin.flush()

        def kill() -> None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                with contextlib.suppress(OSError):  # stdin's unflushed bytes meet a dead pipe: nothing to say
                    stream.close()

        agent = AgentProcess(write, proc.stdout, proc.stderr, kill, self.device.name)
        agent.pid = proc.pid
        return agent
