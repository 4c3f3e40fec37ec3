"""Talks to one device agent: handshake, requests with timeouts, models sent once by sha256."""
from __future__ import annotations

import base64
import hashlib
import itertools
import time
from pathlib import Path
from typing import Any

from device_agents import protocol
from hwnas.errors import AgentError, AgentProtocolError, BadInput
from hwnas.transports import Transport

HELLO_TIMEOUT_S = 60.0


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class AgentClient:
    """A session with one agent process, started through a transport.

    ``timeout_s`` bounds every request (``measure`` of a large model included).
    Errors: AgentTimeout, DeviceUnreachable (agent died / connection lost),
    AgentProtocolError (garbage on the stream), AgentError (the agent said no),
    BadInput (the agent rejected the model itself).
    """

    def __init__(self, transport: Transport, timeout_s: float = 300.0,
                 hello_timeout_s: float = HELLO_TIMEOUT_S) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self.hello_timeout_s = hello_timeout_s
        self.measured = 0  # measure requests answered successfully (a fleet worker's sign of progress)
        self.name = transport.device.name
        self._ids = itertools.count(1)
        self._process = None
        self._loaded: set[str] = set()
        self.facts: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        """Start the agent and shake hands; returns the device facts from ``hello``."""
        self._process = self.transport.start_agent()
        self._loaded.clear()
        self.facts = self.request("hello", timeout=self.hello_timeout_s, protocol=protocol.PROTOCOL_VERSION)
        return self.facts

    @property
    def running(self) -> bool:
        """True while the agent process is believed alive."""
        return self._process is not None and self._process.alive

    def request(self, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send one request and wait for its reply; returns ``result`` or raises a typed error."""
        if self._process is None:
            raise AgentError(f"{self.name}: agent not started")
        rid = next(self._ids)
        message = {"id": rid, "op": op, **fields}
        try:  # validated on this end too: a request the agent would refuse is never sent
            protocol.validate_request(message)
        except protocol.ProtocolError as exc:
            raise AgentError(f"{self.name}: {op} request not sent: {exc}", "protocol") from None
        self._process.send(protocol.encode(message))
        deadline = time.monotonic() + (timeout or self.timeout_s)
        while True:
            line = self._process.recv(max(0.0, deadline - time.monotonic()))
            try:
                reply = protocol.validate_reply(protocol.decode(line))
            except protocol.ProtocolError as exc:
                raise AgentProtocolError(f"{self.name}: agent sent an invalid frame ({exc})") from None
            if reply["id"] == rid:
                break
            # a reply to an earlier, timed-out request: skip it
        if reply["ok"]:
            self.measured += op == "measure"
            return reply["result"]
        error = reply["error"]
        if error["type"] == "bad_model":
            raise BadInput(f"{self.name}: {error['message']}")
        raise AgentError(f"{self.name}: {op} failed: {error['message']}", error["type"])

    def ping(self) -> float:
        """Round trip of an empty request, in ms."""
        start = time.perf_counter_ns()
        self.request("ping")
        return (time.perf_counter_ns() - start) / 1e6

    def load(self, path: Path, fmt: str = "onnx", sha256: str | None = None) -> str:
        """Make a model file available to the agent (bytes travel once per hash); returns its sha256."""
        sha = sha256 or file_sha256(path)
        if sha in self._loaded:
            return sha
        if not self.transport.put_model(sha, fmt, path):
            try:
                self.request("load", sha256=sha, format=fmt)
            except AgentError as exc:
                if exc.kind != "missing_model":
                    raise
                data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
                self.request("load", sha256=sha, format=fmt, data_b64=data)
        self._loaded.add(sha)
        return sha

    def measure(self, sha: str, settings: dict[str, Any], backend: str = "onnxruntime",
                **fields: Any) -> dict[str, Any]:
        """Time a loaded model on the device (fresh runtime session); ``fields`` are the optional
        protocol fields of ``measure`` (e.g. a TVM library's ``inputs`` and ``reference``)."""
        return self.request("measure", model=sha, backend=backend, settings=settings, **fields)

    def profile(self, sha: str, settings: dict[str, Any], runs: int = 10,
                inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Per-node times, shapes and execution order of the kernels the device's runtime ran for
        a loaded model (an ONNX model, or a TVM library with its ``inputs`` specs); validated: a
        malformed result raises AgentProtocolError."""
        fields = {"inputs": inputs} if inputs is not None else {}
        result = self.request("profile", model=sha, runs=runs, settings=settings, **fields)
        try:
            return protocol.validate_profile(result)
        except protocol.ProtocolError as exc:
            raise AgentProtocolError(f"agent sent a malformed profile: {exc}") from None

    def abort(self) -> None:
        """Kill the agent process now, without ``bye`` (safe to call from another thread)."""
        process = self._process
        if process is not None:
            process.kill()

    def close(self) -> None:
        """Say ``bye`` (best effort) and stop the agent process."""
        if self._process is None:
            return
        if self._process.alive:
            try:
                self.request("bye", timeout=5.0)
            except AgentError:
                pass  # it is being killed next anyway
        self._process.kill()
        self._process = None
