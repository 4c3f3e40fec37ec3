"""TVM RPC tracker as a transport: the device is a server in a tracker's pool.

``transport: {type: tvm_rpc, tracker_host, tracker_port, key}``. ``start_agent``
asks the tracker for a server with ``key`` and returns an ``AgentProcess`` whose
far end is an in-process endpoint (a thread) speaking the ordinary agent
protocol, so ``AgentClient`` and ``measure_items`` work unchanged. The endpoint
is the device agent with a remote runtime: ``load`` caches bytes on the host by
sha256 (as the agent does); ``measure`` uploads the compiled library to the RPC
server, checks its outputs against ONNX Runtime run on the host with the same
inputs, then times it on the device with TVM's ``time_evaluator`` (remote warm-up,
``repeat`` rounds of at least ``min_repeat_ms``, CoV re-measure). The reference
kernel drift probe cannot run over TVM RPC; results say so in ``drift_probe``.
``profile`` is unsupported (libraries carry no per-node profile).
"""
from __future__ import annotations

import gc
import queue
import socket
import threading
import time
from pathlib import Path
from typing import Any

from device_agents import agent as agent_mod
from device_agents import agent_version, protocol, timing, tvm_runner
from device_agents.runners.tvm import TimeEvaluator
from hwnas.errors import DeviceUnreachable
from hwnas.transports.base import AgentProcess, Transport

_CLOSED = object()
CONNECT_TIMEOUT_S = 10.0


class _LineQueue:
    """A readable byte stream fed line by line from another thread (``readline`` blocks)."""

    def __init__(self) -> None:
        self._lines: queue.Queue = queue.Queue()

    def put(self, line: bytes) -> None:
        """Queue one line for the reader."""
        self._lines.put(line)

    def close(self) -> None:
        """Make the reader see EOF after the queued lines."""
        self._lines.put(_CLOSED)

    def readline(self, _limit: int = -1) -> bytes:
        """Next line, or b"" at EOF."""
        line = self._lines.get()
        if line is _CLOSED:
            self._lines.put(_CLOSED)
            return b""
        return line


class RpcEndpoint(agent_mod.Agent):
    """The agent protocol served on the host, running and timing libraries on a TVM RPC server."""

    def __init__(self, workdir: Path, remote: Any, where: str) -> None:
        super().__init__(workdir)
        self.remote = remote
        self.where = where
        self.threads: int | None = None
        self.modules: dict[str, Any] = {}  # uploaded once: overwriting a loaded library crashes the server

    def facts(self) -> dict[str, Any]:
        """Facts of the RPC session (the remote CPU is not observable here)."""
        return {"protocol": protocol.PROTOCOL_VERSION, "agent": f"tvm_rpc/{agent_version()}",
                "transport": "tvm_rpc", "rpc": self.where, "machine": None, "cpu": None, "cores": None,
                "runtimes": {"tvm": tvm_runner.version(), "onnxruntime": None}, "providers": []}

    def profile(self, req: dict[str, Any]) -> dict[str, Any]:
        """Per-node profiles need ONNX Runtime on the device, which TVM RPC does not offer."""
        raise agent_mod.RequestFailed("unsupported", "per-node profiles are not available over TVM RPC")

    def _remote_vm(self, path: Path, settings: dict[str, Any]) -> tuple[Any, Any]:
        from tvm import relax

        threads = int(settings.get("threads", 1))
        if self.threads is None:
            self.remote.get_function("runtime.config_threadpool")(1, threads)
            self.threads = threads
        elif threads != self.threads:
            raise agent_mod.RequestFailed("unsupported", "the thread count of a TVM RPC session is fixed "
                                                         f"at {self.threads} once set")
        if path.name not in self.modules:
            self.remote.upload(str(path), target=path.name)
            self.modules[path.name] = self.remote.load_module(path.name)
        device = self.remote.cpu(0)
        return relax.VirtualMachine(self.modules[path.name], device), device

    def measure(self, req: dict[str, Any]) -> dict[str, Any]:
        """Upload, check outputs against ONNX Runtime (host), time remotely with ``time_evaluator``."""
        import tvm

        path, fmt = self._find_model(req["model"])
        if fmt != "tvm" or req.get("backend", "tvm") != "tvm":
            raise agent_mod.RequestFailed("unsupported", "a TVM RPC server runs compiled TVM libraries only")
        extra = self._runner_extras(req)
        if not extra.get("inputs"):
            raise agent_mod.RequestFailed("protocol", "measure over TVM RPC needs 'inputs'")
        settings = req.get("settings") or {}
        try:
            vm, device = self._remote_vm(path, settings)
        except agent_mod.RequestFailed:
            raise
        except Exception as exc:
            raise agent_mod.RequestFailed("bad_model", f"tvm cannot load the model on {self.where}: {exc}") from None
        try:
            feeds = tvm_runner.make_inputs(extra["inputs"], int(settings.get("seed", 0)))
            args = [tvm.runtime.tensor(feeds[s["name"]], device) for s in extra["inputs"]]
            got = tvm_runner.flatten(vm["main"](*args))
        except Exception as exc:
            raise agent_mod.RequestFailed("runtime", f"tvm failed to run the model on {self.where}: {exc}") from None
        try:
            check, warnings = tvm_runner.check_outputs(got, feeds, extra.get("reference"), "onnxruntime (on the host)")
        except tvm_runner.OutputMismatch as exc:
            raise agent_mod.RequestFailed("runtime", f"tvm output check failed: {exc}") from None
        started = time.perf_counter_ns()
        try:  # no drift probe: the reference kernel cannot run over TVM RPC
            result = timing.measure(TimeEvaluator(vm, device, args), settings, None)
        except Exception as exc:
            raise agent_mod.RequestFailed("runtime", f"tvm failed while timing on {self.where}: {exc}") from None
        agent_mod.merge_warnings(result, {"warnings": warnings})
        result["phase_ms"] = {"measure": (time.perf_counter_ns() - started) / 1e6}
        return {**result, "backend": "tvm", "providers": [f"tvm_rpc:{self.where}"],
                "output_check": check, "drift_probe": "not available over TVM RPC"}


class TvmRpcTransport(Transport):
    """Requests a server from a TVM RPC tracker; the agent protocol is served by an in-process endpoint."""

    @property
    def workdir(self) -> Path:
        """Host-side cache of the endpoint: ``<workspace>/agents/<device>``."""
        return self.workspace / "agents" / self.device.name

    def _request_session(self) -> Any:
        from tvm import rpc

        cfg = self.device.transport
        where = f"{cfg.tracker_host}:{cfg.tracker_port} key {cfg.key}"
        timeout = self.device.measurement.timeout_s
        try:  # fail fast when nothing listens (TVM's own client retries for a minute)
            socket.create_connection((cfg.tracker_host, cfg.tracker_port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise DeviceUnreachable(f"{self.device.name}: TVM RPC tracker {where}: {exc}") from None
        box: dict[str, Any] = {}

        def request() -> None:
            try:
                tracker = rpc.connect_tracker(cfg.tracker_host, cfg.tracker_port)
                box["remote"] = tracker.request(cfg.key, priority=1, session_timeout=0, max_retry=3)
            except Exception as exc:  # socket errors, TVMError from the tracker: all mean unreachable
                box["error"] = exc

        worker = threading.Thread(target=request, daemon=True, name=f"{self.device.name}-tracker")
        worker.start()
        worker.join(timeout)
        if "remote" in box:
            return box["remote"], where
        reason = box.get("error", f"no server with key {cfg.key!r} became free within {timeout:g} s")
        raise DeviceUnreachable(f"{self.device.name}: TVM RPC tracker {where}: {reason}")

    def start_agent(self) -> AgentProcess:
        """Get a server from the tracker and start an endpoint thread serving protocol frames."""
        remote, where = self._request_session()
        endpoint = RpcEndpoint(self.workdir, remote, where)
        requests: queue.Queue = queue.Queue()
        replies = _LineQueue()

        def serve() -> None:
            try:
                while True:
                    line = requests.get()
                    if line is _CLOSED:
                        return
                    reply, running = endpoint.handle(line)
                    replies.put(protocol.encode(reply))
                    if not running:
                        return
            finally:
                endpoint.modules.clear()  # drop every handle on the RPC session so that its
                endpoint.remote = None    # connection closes and the server returns to the pool
                gc.collect()
                replies.close()

        threading.Thread(target=serve, daemon=True, name=f"{self.device.name}-rpc-endpoint").start()
        return AgentProcess(requests.put, replies, None, lambda: requests.put(_CLOSED), self.device.name)
