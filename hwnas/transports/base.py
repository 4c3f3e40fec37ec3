"""What every transport provides: a running agent process with a line channel, and model upload."""
from __future__ import annotations

import collections
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import IO

from device_agents import protocol
from hwnas.errors import AgentTimeout, DeviceUnreachable

_EOF = object()


class AgentProcess:
    """A started agent: write frames to it, read reply lines with a timeout.

    A reader thread moves lines from the agent's protocol stream into a queue, so
    a pipe and an SSH channel behave the same way; another keeps the last lines of
    the agent's stderr for error messages.
    """

    def __init__(self, write: Callable[[bytes], None], reply_stream: IO[bytes], stderr_stream: IO[bytes] | None,
                 kill: Callable[[], None], name: str) -> None:
        self._write = write
        self._kill = kill
        self.name = name
        self._lines: queue.Queue = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self.alive = True
        threading.Thread(target=self._pump, args=(reply_stream,), daemon=True, name=f"{name}-reply").start()
        if stderr_stream is not None:
            threading.Thread(target=self._drain, args=(stderr_stream,), daemon=True, name=f"{name}-stderr").start()

    def _pump(self, stream: IO[bytes]) -> None:
        try:
            while True:
                line = stream.readline(protocol.MAX_LINE + 1)
                if not line:
                    break
                self._lines.put(line)
        except (OSError, ValueError):
            pass  # the stream was closed under us: same as EOF
        finally:
            self._lines.put(_EOF)

    def _drain(self, stream: IO[bytes]) -> None:
        try:
            for line in iter(stream.readline, b""):
                self._stderr.append(line.decode("utf-8", "replace").rstrip())
        except (OSError, ValueError):
            pass  # stderr closed with the process

    def stderr_tail(self) -> str:
        """The last lines the agent wrote to stderr, joined (for error messages)."""
        return " | ".join(line for line in self._stderr if line)

    def send(self, frame: bytes) -> None:
        """Write one frame; raises DeviceUnreachable if the agent is gone."""
        if not self.alive:
            raise DeviceUnreachable(f"{self.name}: agent is not running")
        try:
            self._write(frame)
        except (OSError, EOFError, ValueError) as exc:
            self.alive = False
            tail = self.stderr_tail()
            raise DeviceUnreachable(f"{self.name}: agent stopped accepting requests ({tail or exc})") from None

    def recv(self, timeout: float) -> bytes:
        """Next reply line; AgentTimeout after ``timeout`` s, DeviceUnreachable on EOF."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AgentTimeout(f"{self.name}: no reply from the agent within {timeout:g} s") from None
        if line is _EOF:
            self.alive = False
            self._lines.put(_EOF)
            tail = self.stderr_tail()
            raise DeviceUnreachable(f"{self.name}: agent exited" + (f" ({tail})" if tail else ""))
        return line

    def kill(self) -> None:
        """Stop the agent process now."""
        self.alive = False
        self._kill()


class Transport(ABC):
    """Starts agents on one device and moves files to it."""

    def __init__(self, device, workspace: Path) -> None:
        self.device = device
        self.workspace = Path(workspace)

    def connect(self) -> None:  # noqa: B027 - an optional hook, not abstract: most transports have nothing to open
        """Open (or re-open after a loss) the connection to the device; a no-op where there is none.

        Raises DeviceUnreachable when the device cannot be reached (worth retrying later)."""

    @abstractmethod
    def start_agent(self) -> AgentProcess:
        """Start (deploying first if needed) an agent process and return its channel."""

    def put_model(self, sha256: str, fmt: str, path: Path) -> bool:
        """Place a model in the agent's cache out of band; False if this transport cannot (bytes go in-band)."""
        return False

    def close(self) -> None:  # noqa: B027 - an optional hook, not abstract: most transports hold nothing
        """Release connections held by the transport."""
