"""Measuring models on one device: validate, ship by hash, time in several interleaved sessions, store.

A measurement spans ``sessions`` fresh runtime sessions. Items are measured in
windows of ``measurement.interleave`` items; within a window every item gets
session 1, then every item session 2, and so on, so drift and session-to-session
variance do not line up with one item. A machine's speed also wanders slowly (a few
percent over minutes on a shared VM): the wider the window, the more of that wander an
item's sessions average out, at the price of results being stored a window at a time.
An item's latency is the median of its session medians; the spread between
sessions is stored as its uncertainty. Each window's items are stored as they finish.

No session is lost to a crash: each session's result is stored as it arrives
(``Store.add_session``, under a *session key*, the device, the provenance — backend,
runtime and agent versions, measurement settings — and the model's sha256 and signature).
A later call with the same session key takes those stored sessions first and measures
only the ones missing; the combined result consumes them in the one transaction that
stores it. Sweeps use :data:`SWEEP_SESSIONS` (any re-run of a sweep continues it);
``hwnas measure`` uses its run id, so it measures again unless told to ``--resume``.

Drift: the agent times a reference kernel — a small fixed conv in the device's
runtime — around every session and compares it with the device's baseline: the
median of the probes stored with this device's recent measurements (same agent
version and kernel), so a run that is slow as a whole (a busy co-tenant, a
throttled clock) is caught, not just a change within one run.
A session taken under drift is measured again, up to ``drift_retries`` extra
sessions per item, and an item's latency uses only its sessions without drift
when it has any (all sessions stay in the stored stats and raw samples).

Speed normalisation (``measurement.normalise``, on by default): the reference kernel is
also timed after every round, and each item's stats carry its latency in units of that
kernel (``relative_latency``, over all its sessions); :mod:`hwnas.speed` turns it into
milliseconds at the device's reference speed. ``latency_ms`` stays the raw median.
"""
from __future__ import annotations

import hashlib
import json
import random
import statistics
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_agents.timing import probe_name, summarize
from hwnas import backends, speed
from hwnas.agent_client import AgentClient, file_sha256
from hwnas.config import DeviceConfig
from hwnas.errors import BadInput
from hwnas.operators import conv_relu, pointwise_conv
from hwnas.store import Measurement, Store
from lut.atomic import write_bytes_atomic

SWEEP_SESSIONS = "sweep"
"""The session key of every sweep (``profile``, ``costmodel refine``): a re-run uses what an interrupted one stored."""
MIN_BASELINE_PROBES = 10
PROBE_MODEL = (16, 16, 28, 0)
"""The drift probe: conv 3x3 16->16 on 28x28 (about 27 µs on a 2-core EPYC VM), weights seed 0."""
MEMORY_PROBE_MODEL = (2048, 1024)
"""The memory probe: conv 1x1 2048->1024 on a 1x1 map, 8.4 MB of weights, which no core's L2 holds, so
every call streams them from the last-level cache or memory (about 0.3 ms, 27 GB/s, on the 2-core Xeon VM).
A kernel whose weights outgrow the caches slows with it, not with the drift probe (see
:mod:`hwnas.speed`)."""
PROBE_IR = 10
"""ONNX IR version of the probe: device runtimes from onnxruntime 1.20 on read it (opset 17 needs >= 8)."""


@dataclass(frozen=True)
class Item:
    """One thing to measure: an ONNX file and what it stands for."""

    path: Path
    sha256: str
    signature: str
    item: str = "model"           # 'model' | 'block' | 'network'
    space: str | None = None
    arch: str | None = None
    source: str | None = None


def check_onnx(path: str | Path) -> str:
    """Validate an ONNX model file; returns its sha256. BadInput names the file and the cause."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, ...: all mean a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"{path}: not a valid ONNX model ({first})") from None
    if not model.graph.node:
        raise BadInput(f"{path}: the ONNX graph has no nodes")
    return file_sha256(path)


def parse_input_shapes(specs: Iterable[str], items: Iterable[Item] = ()) -> dict[str, list[int]]:
    """``["x=1,3,224,224", ...]`` (``--input-shape``) as ``{name: dims}``; BadInput names the bad spec.

    Each name must be a graph input of at least one of ``items`` (when given)."""
    from device_agents import protocol

    shapes: dict[str, list[int]] = {}
    for spec in specs:
        name, sep, text = spec.partition("=")
        name = name.strip()
        if not sep or not name:
            raise BadInput(f"--input-shape {spec}: expected NAME=D1,D2,... (e.g. input=1,3,224,224)")
        if name in shapes:
            raise BadInput(f"--input-shape {spec}: input {name!r} is given twice")
        try:
            dims = [int(d) for d in text.split(",")]
            protocol.check_input_shapes({name: dims})
        except (ValueError, protocol.ProtocolError):
            raise BadInput(f"--input-shape {spec}: the shape must be 1 to {protocol.MAX_RANK} integers from 1 to "
                           f"{protocol.MAX_DIM}, separated by commas") from None
        shapes[name] = dims
    inputs = {name for item in items for name in _graph_inputs(item.path)}
    for name in shapes:
        if items and name not in inputs:
            raise BadInput(f"--input-shape {name}=...: no model has an input named {name!r} "
                           f"(inputs: {', '.join(sorted(inputs)) or 'none'})")
    return dict(sorted(shapes.items()))


def _graph_inputs(path: Path) -> list[str]:
    """Names of a model's real inputs (graph inputs that are not initializers)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return [arg.name for arg in graph.input if arg.name not in weights]


def model_item(path: str | Path) -> Item:
    """An Item for a user's ONNX file (validated); its signature is its content hash."""
    sha = check_onnx(path)
    return Item(path=Path(path), sha256=sha, signature=f"onnx:{sha}", source=str(path))


def device_settings(device: DeviceConfig, input_shapes: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """The agent-side measurement settings a device entry asks for (the runtime's part from its backend),
    with the shapes given for dynamic input dimensions (``--input-shape``), if any."""
    m = device.measurement
    settings: dict[str, Any] = {
        "threads": 1,
        "warmup_ms": m.warmup_ms, "repeat": m.repeat, "min_repeat_ms": m.min_repeat_ms,
        "cov_threshold": m.cov_threshold, "max_remeasure": m.max_remeasure,
        "drift_threshold": m.drift_threshold, "reference_rounds": m.normalise,
        **backends.get(device.backend).settings(device),
    }
    if device.affinity:
        settings["affinity"] = list(device.affinity)
    if input_shapes:
        settings["input_shapes"] = input_shapes
    return settings


def write_probe(path: Path, memory: bool = False) -> Path:
    """Write the drift-probe model (:data:`PROBE_MODEL`), or with ``memory`` the memory probe
    (:data:`MEMORY_PROBE_MODEL`), at ONNX IR :data:`PROBE_IR`, atomically."""
    import onnx

    source = path.with_name(f".{path.name}.{uuid.uuid4().hex}.src")  # devices write it concurrently
    model = onnx.load(str(pointwise_conv(source, *MEMORY_PROBE_MODEL) if memory else conv_relu(source, *PROBE_MODEL)))
    source.unlink()
    model.ir_version = PROBE_IR
    return write_bytes_atomic(path, model.SerializeToString())


def probe_file(workspace: Path, memory: bool = False) -> Path:
    """The drift-probe model of a workspace (``onnx/reference/probe.onnx``), or with ``memory`` the memory
    probe (``memory_probe.onnx``), written once."""
    path = Path(workspace) / "onnx" / "reference" / ("memory_probe.onnx" if memory else "probe.onnx")
    return path if path.is_file() else write_probe(path, memory)


def drift_settings(store: Store, device: str, client: AgentClient) -> dict[str, Any]:
    """Measure settings for the drift probe: the probe model (a small fixed conv the agent runs
    in ONNX Runtime when it has it; :data:`PROBE_MODEL`), the memory probe (:data:`MEMORY_PROBE_MODEL`,
    timed before and after every session) and, once the store holds at least MIN_BASELINE_PROBES probes
    of the drift probe on this device by this agent version, their median as the baseline."""
    sha = client.load(probe_file(store.path.parent), "onnx")
    memory = client.load(probe_file(store.path.parent, memory=True), "onnx")
    has_ort = (client.facts.get("runtimes") or {}).get("onnxruntime") is not None
    kernel = probe_name(sha if has_ort else None)
    probes = store.reference_probes(device, str(client.facts.get("agent", "?")), kernel)
    settings: dict[str, Any] = {"probe_model": sha, "memory_probe_model": memory}
    if len(probes) >= MIN_BASELINE_PROBES:
        settings["reference_baseline_ms"] = statistics.median(probes)
    return settings


def _passes(pending: list[Item], rng: random.Random) -> list[list[Item]]:
    """``pending`` (an item once per session it needs) as session passes: pass ``i`` holds every
    item that needs an ``i``-th session, shuffled, so an item's sessions are spread over its window."""
    passes: list[list[Item]] = []
    seen: dict[str, int] = {}
    for item in pending:
        i = seen.get(item.signature, 0)
        seen[item.signature] = i + 1
        if i == len(passes):
            passes.append([])
        passes[i].append(item)
    for order in passes:
        rng.shuffle(order)
    return passes


def request_key(device: str, backend: str, item: Item, settings: dict[str, Any], run_id: str) -> str:
    """Idempotency key of one item's measurement in one run (a retry reuses it)."""
    text = f"{run_id}|{device}|{backend}|{item.signature}|{sorted(settings.items())}"
    return hashlib.sha256(text.encode()).hexdigest()


def provenance_key(device: DeviceConfig, client: AgentClient, settings: dict[str, Any]) -> str:
    """What a stored session must share with a new one to be combined with it: backend, runtime
    and agent versions, and the measurement settings (threads, providers, affinity, rounds...)."""
    facts = client.facts
    text = json.dumps({"backend": device.backend, "runtime": (facts.get("runtimes") or {}).get(device.backend),
                       "agent": facts.get("agent"), "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def check_sessions(sessions: int) -> int:
    """``sessions`` if it is a usable session count; BadInput otherwise (0 is refused, not defaulted)."""
    if isinstance(sessions, bool) or not isinstance(sessions, int) or sessions < 1:
        raise BadInput(f"--sessions must be a whole number of at least 1, got {sessions}")
    return sessions


def combine(device: DeviceConfig, client: AgentClient, item: Item, results: list[dict[str, Any]],
            key: str | None) -> Measurement:
    """Fold per-session agent results for one item into one stored Measurement."""
    used = [r for r in results if not r["drift"]] or results
    left_out = [r for r in results if r["drift"]] if len(used) < len(results) else []
    medians = [r["median_ms"] for r in used]
    latency = statistics.median(medians)
    pooled = summarize([t for r in used for t in r["rounds_ms"]])  # the agent's own summary, one definition
    spread = (max(medians) - min(medians)) / latency if latency > 0 else 0.0
    warnings = sorted({w for r in used for w in r["warnings"]})
    stats = {
        **{k: pooled[k] for k in ("mean_ms", "std_ms", "p10_ms", "p90_ms", "cov")}, "session_medians_ms": medians,
        "drifted_session_medians_ms": [r["median_ms"] for r in left_out],
        "round_cov": [r["cov"] for r in results], "numbers": [r["number"] for r in results],
        "attempts": [r["attempts"] for r in results], "drift": all(r["drift"] for r in used),
        "reference_ms": [r["reference_ms"] for r in results],
        "reference_baseline_ms": results[0].get("reference_baseline_ms"),
        "reference_kernel": results[0].get("reference_kernel"),
        "memory_probe_kernel": results[0].get("memory_probe_kernel"),
        "phase_ms": [r.get("phase_ms") for r in results],
        **speed.session_stats(results),
        "emulated": bool(client.facts.get("emulated")),  # timed under an emulator: says nothing of real speed
        **{k: results[0][k] for k in backends.get(device.backend).RESULT_FACTS if k in results[0]},
    }
    facts = client.facts
    return Measurement(
        device=device.name, kind=device.kind, backend=device.backend,
        runtime_version=(facts.get("runtimes") or {}).get(device.backend),
        providers=results[0].get("providers", []), threads=getattr(device.runtime, "threads", None),
        affinity=list(device.affinity) if device.affinity else None,
        agent_version=facts.get("agent", "?"), item=item.item, model_sha256=item.sha256,
        signature=item.signature, latency_ms=latency, stats=stats,
        raw=[r["rounds_ms"] for r in results], sessions=len(used), session_spread=spread,
        valid=all(r["valid"] for r in used), warnings=warnings, space=item.space, arch=item.arch,
        source=item.source,
        facts={k: facts.get(k) for k in ("cpu", "vector_isa", "cores", "governor", "loadavg", "hostname", "machine",
                                         "emulated")},
        request_key=key,
    )


def kernel_profile(device: DeviceConfig, client: AgentClient, path: Path, settings: dict[str, Any],
                   workspace: Path, runs: int = 10) -> dict[str, Any]:
    """The kernels the device's runtime runs for the ONNX file at ``path``, timed one by one with their
    shapes (the agent's ``profile`` of what the backend runs: the file itself, or the library compiled
    from it for a TVM target): the reply, ``nodes`` and, when ``settings`` ask for round probes, the
    reference kernel's ``reference_ms`` around it. BadInput naming the device when its backend
    reports no kernels."""
    backend = backends.get(device.backend)
    if not backend.KERNEL_PROFILES:
        raise BadInput(f"device {device.name!r}: its runtime ({device.backend}) does not report the kernels it runs")
    path = Path(path)
    sha = file_sha256(path)
    item = Item(path, sha, sha)
    artifact, fmt = backend.artifact(device, item, workspace)
    loaded = client.load(artifact, fmt, sha256=sha if artifact == path else None)
    inputs = backend.measure_fields(client, item, fmt).get("inputs")
    return client.profile(loaded, settings, runs, inputs=inputs)


def measure_items(device: DeviceConfig, client: AgentClient, store: Store, items: Iterable[Item],
                  run_id: str, sessions: int | None = None, seed: int = 0,
                  on_done: Callable[[Item, Measurement], None] | None = None,
                  per_node: bool = False,
                  on_session: Callable[[int, int], None] | None = None,
                  session_key: str | None = None,
                  input_shapes: dict[str, list[int]] | None = None) -> list[Measurement]:
    """Measure items on a started agent, ``sessions`` interleaved sessions each; store each result.

    Items are taken ``device.measurement.interleave`` at a time; an item's sessions are
    spread over its window (see the module docstring).

    With ``per_node``, items also get the runtime's per-kernel times (its ``profile``) stored with the
    result, on a backend that reports them (``KERNEL_PROFILES``).
    ``input_shapes`` (:func:`parse_input_shapes`) fixes dynamic input dimensions (ONNX Runtime).
    ``on_done(item, measurement)`` follows each stored item; ``on_session(taken, planned)``
    each session, counting the sessions of the current window (drift retries extend the plan).

    Items already stored under this run's request key are skipped (a resumed run); the
    returned list holds only what this call measured. Every session is stored as it arrives
    under ``session_key`` (default: ``run_id``); sessions stored earlier under the same key (and
    provenance) count towards an item's ``sessions``, so only the missing ones are measured."""
    sessions = check_sessions(device.measurement.sessions if sessions is None else sessions)
    backend = backends.get(device.backend)
    backends.require_ready(device, client.facts)  # e.g. a missing execution provider: exit 1 before any work
    settings = device_settings(device, input_shapes)
    session_key = session_key or run_id
    provenance = provenance_key(device, client, settings)
    rng = random.Random(seed)
    items = list(items)
    keys = {item.signature: request_key(device.name, device.backend, item, settings, run_id) for item in items}
    # a run resumed after a fault skips what it already stored (same run_id, same request_key)
    items = [item for item in items if not store.count(request_key=keys[item.signature])]
    timed = {**settings, **drift_settings(store, device.name, client)}
    stored = store.pending_sessions(session_key, device.name, device.backend, provenance)
    done: list[Measurement] = []
    window = device.measurement.interleave
    for start in range(0, len(items), window):
        batch = items[start:start + window]
        shas = {}
        fields: dict[str, dict[str, Any]] = {}
        for item in batch:
            path, fmt = backend.artifact(device, item, store.path.parent)
            shas[item.signature] = client.load(path, fmt)
            fields[item.signature] = backend.measure_fields(client, item, fmt)
        earlier = {item.signature: stored.get((item.signature, item.sha256), []) for item in batch}
        results = {sig: [result for _, result in found] for sig, found in earlier.items()}
        session_ids = {sig: [sid for sid, _ in found] for sig, found in earlier.items()}
        pending = [item for item in batch for _ in range(max(0, sessions - len(results[item.signature])))]
        taken, planned = 0, len(pending)
        for retry in range(1 + device.measurement.drift_retries):
            if retry:  # one more session for every item short of `sessions` sessions taken without drift
                pending = [item for item in batch
                           if sum(not r["drift"] for r in results[item.signature]) < sessions]
                planned += len(pending)
            for order in _passes(pending, rng):
                for item in order:
                    sig = item.signature
                    try:
                        result = client.measure(shas[sig], timed, device.backend, **fields[sig])
                    except BadInput as exc:  # the device's runtime rejected it: name the user's file
                        raise BadInput(f"{item.source or item.path}: {exc}") from None
                    session_ids[sig].append(store.add_session(session_key, device.name, device.backend, provenance,
                                                              item.sha256, sig, result))
                    results[sig].append(result)
                    taken += 1
                    if on_session:
                        on_session(taken, planned)
        for item in batch:
            measurement = combine(device, client, item, results[item.signature], keys[item.signature])
            nodes = None
            if per_node and backend.KERNEL_PROFILES:
                profiled = client.profile(shas[item.signature], timed, inputs=fields[item.signature].get("inputs"))
                nodes = profiled["nodes"]
                if profiled.get("reference_kernel") == measurement.stats.get("reference_kernel"):
                    measurement.stats["profile_reference_ms"] = profiled.get("reference_ms") or []
            measurement.id = store.add(measurement, node_profile=nodes, consumes=session_ids[item.signature])
            done.append(measurement)
            if on_done:
                on_done(item, measurement)
    return done
