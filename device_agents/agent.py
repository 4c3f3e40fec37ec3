"""The agent's request loop: read frames from stdin, dispatch, reply on the protocol stream.

Malformed requests get an error reply; the loop only ends on ``bye`` or EOF.
Models live in ``<workdir>/models/<sha256>.<format>``; the agent writes nothing
outside its work dir (temporary files go to ``<workdir>/tmp``).
"""
from __future__ import annotations

import base64
import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from device_agents import agent_version, facts, protocol, runners, timing

_SUFFIX = {"onnx": ".onnx", "tvm": ".so"}


class RequestFailed(Exception):
    """Raised inside a handler to send an error reply of a given type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _runner_module(backend: str) -> Any:
    try:
        return runners.load(backend)
    except (KeyError, ImportError) as exc:
        raise RequestFailed("unsupported", f"backend {backend} is not available on this device: {exc}") from None


def _runtime_versions() -> dict[str, str | None]:
    """Every backend's runtime version here (None where it is not installed)."""
    versions: dict[str, str | None] = {}
    for backend in runners.names():
        try:
            versions[backend] = _runner_module(backend).version()
        except RequestFailed:
            versions[backend] = None
    return versions


def merge_warnings(result: dict[str, Any], session_facts: dict[str, Any]) -> None:
    """Move a runner's ``warnings`` (the result is then invalid: e.g. an output check that could not
    be made, nodes off the required provider) and ``notices`` (warnings only: e.g. a CPU fallback)
    from its facts into the measurement result."""
    warnings = session_facts.pop("warnings", [])
    notices = session_facts.pop("notices", [])
    if warnings:
        result["valid"] = False
    result["warnings"] = result["warnings"] + warnings + notices


class Agent:
    """State of one agent process: work dir, model cache, reference kernel, handshake."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.models = workdir / "models"
        self.tmp = workdir / "tmp"
        self.models.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.reference = timing.ReferenceKernel()
        self.probes: dict[str, timing.ReferenceKernel | None] = {}
        self.greeted = False
        self.handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "hello": self.hello, "ping": lambda _req: {}, "load": self.load,
            "measure": self.measure, "profile": self.profile, "bye": lambda _req: {},
        }

    def hello(self, req: dict[str, Any]) -> dict[str, Any]:
        """Handshake: check the protocol version and report device facts."""
        if req["protocol"] != protocol.PROTOCOL_VERSION:
            raise RequestFailed("version", f"host speaks protocol {req['protocol']}, "
                                           f"agent speaks {protocol.PROTOCOL_VERSION}")
        self.greeted = True
        return self.facts()

    def facts(self) -> dict[str, Any]:
        """What ``hello`` reports: device facts, runtime versions, providers, the probe's first time."""
        self.reference.probe()
        info = facts.collect(_runtime_versions(), runners.load("onnxruntime").providers(), agent_version())
        info["protocol"] = protocol.PROTOCOL_VERSION
        info["reference_ms"] = self.reference.baseline()
        return info

    def _model_path(self, sha: str, fmt: str) -> Path:
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise RequestFailed("protocol", "sha256 must be 64 lowercase hex digits")
        return self.models / f"{sha}{_SUFFIX[fmt]}"

    def load(self, req: dict[str, Any]) -> dict[str, Any]:
        """Cache model bytes under their sha256 (bytes sent only when the hash is absent)."""
        path = self._model_path(req["sha256"], req["format"])
        if path.exists():
            return {"sha256": req["sha256"], "cached": True, "bytes": path.stat().st_size}
        if "data_b64" not in req:
            raise RequestFailed("missing_model", f"model {req['sha256'][:12]} is not cached; send its bytes")
        try:
            data = base64.b64decode(req["data_b64"], validate=True)
        except ValueError:
            raise RequestFailed("protocol", "load.data_b64 is not valid base64") from None
        if hashlib.sha256(data).hexdigest() != req["sha256"]:
            raise RequestFailed("bad_model", "model bytes do not match their sha256")
        # the agent is deployed alone (no lut.atomic): the same recipe, a pid-unique name (one agent
        # process serves one request at a time; two agents on one device may load the same model)
        partial = self.tmp / f"{req['sha256']}.{os.getpid()}.part"
        try:
            with open(partial, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, path)
        except OSError as exc:  # e.g. a full disk: report it and keep serving, leave no partial file
            raise RequestFailed("runtime", f"cannot cache the model in the agent's work dir: "
                                           f"{exc.strerror or exc}") from None
        finally:
            partial.unlink(missing_ok=True)
        return {"sha256": req["sha256"], "cached": False, "bytes": len(data)}

    def _find_model(self, sha: str) -> tuple[Path, str]:
        for fmt in protocol.FORMATS:
            path = self._model_path(sha, fmt)
            if path.exists():
                return path, fmt
        raise RequestFailed("missing_model", f"model {sha[:12]} is not loaded; send 'load' first")

    @staticmethod
    def _pin(settings: dict[str, Any]) -> None:
        cpus = settings.get("affinity")
        if cpus:
            try:
                os.sched_setaffinity(0, {int(c) for c in cpus})
            except (OSError, ValueError) as exc:
                raise RequestFailed("runtime", f"cannot pin to CPUs {cpus}: {exc}") from None

    def _runner_extras(self, req: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments for runners of compiled artifacts: input specs, reference model path."""
        extra: dict[str, Any] = {}
        if "inputs" in req:
            extra["inputs"] = req["inputs"]
        if "reference" in req:
            reference = self._model_path(req["reference"], "onnx")
            if not reference.exists():
                raise RequestFailed("missing_model", f"reference model {req['reference'][:12]} is not loaded")
            extra["reference"] = str(reference)
        return extra

    def measure(self, req: dict[str, Any]) -> dict[str, Any]:
        """Time a cached model with the measurement protocol in a fresh runtime session."""
        path, fmt = self._find_model(req["model"])
        backend = req.get("backend") or runners.for_format(fmt)
        settings = req.get("settings") or {}
        self._pin(settings)
        module = _runner_module(backend)
        started = time.perf_counter_ns()
        extra = self._runner_extras(req)
        mismatch = getattr(module, "OutputMismatch", ())  # raised by runners that check outputs
        try:
            source, session_facts = module.prepare(str(path), settings, **extra)
        except RequestFailed:
            raise
        except runners.Unavailable as exc:
            raise RequestFailed("unsupported", f"{backend}: {exc}") from None
        except mismatch as exc:
            raise RequestFailed("runtime", f"{backend} output check failed: {exc}") from None
        except Exception as exc:  # the runtime rejected the model: report, keep serving
            detail = str(exc).replace(str(path), "<model>")  # the host names the user's file, not our cache
            raise RequestFailed("bad_model", f"{backend} cannot load the model: {detail}") from None
        reference = self._reference(settings) if module.DRIFT_PROBE else None
        memory = self._memory_probe(settings) if module.DRIFT_PROBE else None
        try:
            result = timing.measure(source, settings, reference, memory)
        except Exception as exc:
            raise RequestFailed("runtime", f"{backend} failed while running the model: {exc}") from None
        merge_warnings(result, session_facts)
        result["phase_ms"]["session"] = (time.perf_counter_ns() - started) / 1e6 - sum(result["phase_ms"].values())
        return {**result, **session_facts, "backend": backend}

    def _reference(self, settings: dict[str, Any]) -> timing.ReferenceKernel:
        """The drift probe for a measurement: the host's ``probe_model`` run by ONNX Runtime when
        both are here and it loads (one session per agent, same threads), else the numpy matmul."""
        return self._probe(settings.get("probe_model"), settings, calls=10) or self.reference

    def _memory_probe(self, settings: dict[str, Any]) -> timing.ReferenceKernel | None:
        """The memory probe for a measurement: the host's ``memory_probe_model`` run by ONNX Runtime
        (one call a pass: it streams megabytes of weights), None when either is missing."""
        return self._probe(settings.get("memory_probe_model"), settings, calls=1)

    def _probe(self, sha: str | None, settings: dict[str, Any], calls: int) -> timing.ReferenceKernel | None:
        """A probe of the cached ONNX model ``sha`` in this agent's ONNX Runtime (one session per agent and
        model); None without ``sha``, without ONNX Runtime, or when the model does not load."""
        if not sha:
            return None
        if sha not in self.probes:
            from device_agents import ort_runner
            probe = None
            if ort_runner.version() is not None:
                path, fmt = self._find_model(sha)
                if fmt != "onnx":
                    raise RequestFailed("protocol", "settings.probe_model and memory_probe_model must name ONNX models")
                try:
                    run, _ = ort_runner.runner(str(path), {"threads": settings.get("threads", 1)})
                except Exception:  # e.g. an older onnxruntime that cannot read the probe's IR version
                    pass
                else:
                    probe = timing.ReferenceKernel(run, timing.probe_name(sha), calls=calls)
            self.probes[sha] = probe
        return self.probes[sha]

    def profile(self, req: dict[str, Any]) -> dict[str, Any]:
        """The kernels the model's runtime ran, timed one by one with their shapes (the runner's ``profile``)."""
        path, fmt = self._find_model(req["model"])
        backend = runners.for_format(fmt)
        module = _runner_module(backend)
        if not hasattr(module, "profile"):
            raise RequestFailed("unsupported", f"{backend} does not report the kernels it runs")
        settings = req.get("settings") or {}
        self._pin(settings)
        reference = self._reference(settings) if module.DRIFT_PROBE and settings.get("reference_rounds") else None
        before = reference.round_probe() if reference else None
        try:
            result = module.profile(str(path), settings, int(req.get("runs", 10)), req.get("inputs"))
        except runners.Unavailable as exc:
            raise RequestFailed("unsupported", f"{backend}: {exc}") from None
        except Exception as exc:
            raise RequestFailed("runtime", f"{backend} profiling failed: {exc}") from None
        if reference:  # the reference kernel around the profile: its node times can be speed-normalised
            result["reference_ms"] = [before, reference.round_probe()]
            result["reference_kernel"] = reference.name
        return protocol.validate_profile(result)

    def handle(self, line: bytes) -> tuple[dict[str, Any], bool]:
        """Process one frame; returns (reply, keep_running)."""
        rid = None
        try:
            req = protocol.decode(line)
            rid = req.get("id") if isinstance(req.get("id"), int) else None
            protocol.validate_request(req)
            if not self.greeted and req["op"] != "hello":
                raise RequestFailed("protocol", "send 'hello' first")
            result = self.handlers[req["op"]](req)
            return protocol.ok(rid, result), req["op"] != "bye"
        except protocol.ProtocolError as exc:
            return protocol.error(rid, "protocol", str(exc)), True
        except RequestFailed as exc:
            return protocol.error(rid, exc.kind, str(exc)), True
        except OSError as exc:  # the device's disk or files failed (full, read-only): a reply, not a crash
            return protocol.error(rid, "runtime", f"the device's file system failed: {exc}"), True


def serve(workdir: Path, stdin: BinaryIO, out: BinaryIO) -> None:
    """Serve requests from ``stdin`` until ``bye`` or EOF, replying on ``out``."""
    agent = Agent(workdir)
    while True:
        line = stdin.readline(protocol.MAX_LINE + 1)
        if not line:
            return
        if not line.strip():
            continue
        reply, running = agent.handle(line)
        out.write(protocol.encode(reply))
        out.flush()
        if not running:
            return


def main(argv: list[str] | None = None) -> int:
    """Entry point: move the protocol stream off fd 1, confine temp files, serve."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m device_agents")
    parser.add_argument("--workdir", required=True, help="the agent's work dir (model cache, temp files)")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).expanduser().resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(workdir / "tmp")
    os.environ["XDG_CACHE_HOME"] = str(workdir / "cache")  # onnxruntime keeps a cache there
    # Frames go on a private copy of the inherited stdout; fd 1 now points at stderr,
    # so anything a runtime prints cannot corrupt the protocol stream.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(workdir, sys.stdin.buffer, out)
    return 0
