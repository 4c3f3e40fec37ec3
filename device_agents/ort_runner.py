"""ONNX Runtime on the device: sessions with the configured threads/providers, inputs, per-node profiles."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

_NUMPY_TYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


def available_providers() -> list[str]:
    """Execution providers this onnxruntime build offers ([] without onnxruntime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def version() -> str | None:
    """The onnxruntime version, or None if it is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    return ort.__version__


def _fixed(dim: Any) -> bool:
    return isinstance(dim, int) and dim > 0


def input_shapes(session: Any, given: dict[str, list[int]] | None = None) -> tuple[dict[str, list[int]], list[str]]:
    """The shape every graph input is fed with, and a warning when dynamic dimensions were set to 1.

    ``given`` (``settings.input_shapes``) fixes inputs by name; its rank must match the model's and
    it may not contradict a fixed dimension (ValueError: the model cannot be run as asked).
    Names the model does not have are ignored (one request may serve several models)."""
    given = given or {}
    shapes: dict[str, list[int]] = {}
    defaulted: list[str] = []
    for arg in session.get_inputs():
        dims = list(arg.shape)
        if arg.name in given:
            want = [int(d) for d in given[arg.name]]
            if len(want) != len(dims):
                raise ValueError(f"input {arg.name!r} has {len(dims)} dimensions {dims}, "
                                 f"the given shape {want} has {len(want)}")
            for i, (dim, w) in enumerate(zip(dims, want)):
                if _fixed(dim) and dim != w:
                    raise ValueError(f"input {arg.name!r} dimension {i} is fixed at {dim} by the model, not {w}")
            shapes[arg.name] = want
        else:
            shapes[arg.name] = [d if _fixed(d) else 1 for d in dims]
            if not all(_fixed(d) for d in dims):
                defaulted.append(f"{arg.name} {['?' if d is None else d for d in dims]}")
    warnings = [f"dynamic input dimensions set to 1: {'; '.join(defaulted)} "
                "(give the real shape with --input-shape NAME=D1,D2,...)"] if defaulted else []
    return shapes, warnings


def make_inputs(session: Any, seed: int = 0, given: dict[str, list[int]] | None = None) -> dict[str, np.ndarray]:
    """Random inputs for every graph input, shaped by :func:`input_shapes` (dynamic dims 1 unless ``given``)."""
    rng = np.random.default_rng(seed)
    shapes = input_shapes(session, given)[0]
    feeds = {}
    for arg in session.get_inputs():
        shape = shapes[arg.name]
        dtype = _NUMPY_TYPES.get(arg.type)
        if dtype is None:
            raise ValueError(f"input {arg.name!r} has unsupported type {arg.type}")
        if np.issubdtype(dtype, np.floating):
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[arg.name] = rng.integers(0, 2, size=shape).astype(dtype)
    return feeds


# execution provider -> the compute unit it runs nodes on (OpenVINO and QNN: by their options)
_UNITS = {"CPU": "CPU", "Xnnpack": "CPU", "ACL": "CPU", "ArmNN": "CPU", "Dnnl": "CPU", "Azure": "remote",
          "CUDA": "GPU", "TensorRT": "GPU", "ROCM": "GPU", "MIGraphX": "GPU", "Dml": "GPU", "WebGpu": "GPU",
          "OpenVINO": "CPU", "QNN": "NPU", "NNAPI": "NPU", "CoreML": "NPU", "VitisAI": "NPU", "Rknpu": "NPU"}


def provider_specs(settings: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """The requested providers as (name, options) pairs; a setting entry is a name or {name, options}."""
    specs = []
    for entry in settings.get("providers") or ["CPUExecutionProvider"]:
        if isinstance(entry, str):
            specs.append((entry, {}))
        else:
            specs.append((str(entry["name"]), {str(k): str(v) for k, v in (entry.get("options") or {}).items()}))
    return specs


def compute_unit(provider: str, options: dict[str, str] | None = None) -> str:
    """The compute unit (CPU, GPU, NPU, ...) an execution provider runs nodes on."""
    options = options or {}
    short = provider.removesuffix("ExecutionProvider")
    if short == "OpenVINO" and options.get("device_type"):
        return options["device_type"].split(".")[0].split("_")[0].upper()
    if short == "QNN" and options.get("backend_path"):
        lib = options["backend_path"].lower()
        return "CPU" if "qnncpu" in lib else "GPU" if "qnngpu" in lib else "NPU"
    return _UNITS.get(short, short)


def open_session(path: str, settings: dict[str, Any], profile_dir: str | None = None) -> Any:
    """A fresh InferenceSession with the requested threads and providers (with their options).

    A provider this onnxruntime build lacks raises ``Unavailable`` naming the ones it has."""
    import onnxruntime as ort

    from device_agents.runners import Unavailable

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(settings.get("threads", 1))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if profile_dir is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(profile_dir, "ort")
    opts.add_session_config_entry("session.record_ep_graph_assignment_info", "1")  # read by placement()
    specs = provider_specs(settings)
    have = ort.get_available_providers()
    missing = [name for name, _ in specs if name not in have]
    if missing:
        raise Unavailable(f"execution provider {', '.join(missing)} is not available on this device "
                          f"(it has {', '.join(have)})")
    return ort.InferenceSession(path, sess_options=opts, providers=[(n, o) for n, o in specs])


def runner(path: str, settings: dict[str, Any],
           with_placement: bool = False) -> tuple[Callable[[], Any], dict[str, Any]]:
    """A zero-argument callable running the model once, and facts about the session (with
    ``with_placement``: where its nodes run, see :func:`placement`)."""
    session = open_session(path, settings)
    shapes, warnings = input_shapes(session, settings.get("input_shapes"))
    feeds = make_inputs(session, int(settings.get("seed", 0)), shapes)

    def run() -> Any:
        return session.run(None, feeds)

    facts: dict[str, Any] = {"providers": session.get_providers(), "input_shapes": shapes}
    if warnings:
        facts["warnings"] = warnings
    if with_placement:
        where = placement(session, path, settings)
        facts["warnings"] = facts.get("warnings", []) + where.pop("warnings", [])
        facts.update(where)
    return run, facts


def _shapes(typed: Any) -> list[list[int]]:
    """The profiler's ``[{"float": [1, 16, 28, 28]}, ...]`` as plain shapes (``[]`` for a scalar)."""
    shapes = []
    for entry in typed or []:
        dims = next(iter(entry.values()), []) if isinstance(entry, dict) else []
        shapes.append([int(d) for d in dims])
    return shapes


def node_providers(session: Any, path: str, settings: dict[str, Any]) -> tuple[dict[str, int], str]:
    """Nodes per execution provider in a session, and where that was read: the session's own node
    assignment (onnxruntime >= 1.23, recorded at session creation) or else one profiled run."""
    counts: dict[str, int] = {}
    if hasattr(session, "get_provider_graph_assignment_info"):
        try:
            for subgraph in session.get_provider_graph_assignment_info():
                counts[subgraph.ep_name] = counts.get(subgraph.ep_name, 0) + len(subgraph.get_nodes())
            return counts, "session node assignment"
        except Exception:  # not recorded (an older build): fall back to the profiler
            counts.clear()
    for node in profile(path, {**settings, "threads": 1}, runs=0)["nodes"]:
        counts[node["provider"]] = counts.get(node["provider"], 0) + 1
    return counts, "profiler"


def placement(session: Any, path: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Where the model's nodes run: nodes per provider (``placement``), per compute unit
    (``compute_units``; ``compute_summary`` e.g. ``NPU 843, CPU 2``). CPU fallback under a non-CPU
    first provider is a notice, or a warning (the result invalid) with ``require_all_nodes``."""
    specs = provider_specs(settings)
    per_provider, source = node_providers(session, path, settings)
    options = dict(specs)
    units: dict[str, int] = {}
    for name, count in sorted(per_provider.items(), key=lambda kv: -kv[1]):
        unit = compute_unit(name, options.get(name))
        units[unit] = units.get(unit, 0) + count
    facts: dict[str, Any] = {"placement": per_provider, "placement_source": source, "compute_units": units,
                             "compute_summary": ", ".join(f"{u} {n}" for u, n in units.items())}
    first_name, first_options = specs[0]
    on_cpu = per_provider.get("CPUExecutionProvider", 0)
    if compute_unit(first_name, first_options) != "CPU" and on_cpu:
        message = (f"{on_cpu} of {sum(per_provider.values())} nodes fell back to CPUExecutionProvider "
                   f"(asked for {first_name} first)")
        facts["warnings" if settings.get("require_all_nodes") else "notices"] = [message]
    return facts


def profile(path: str, settings: dict[str, Any], runs: int) -> dict[str, Any]:
    """Per-node times from ONNX Runtime's profiler, median over ``runs`` runs after one warm-up.

    Each node is a kernel the runtime really ran (after its graph optimisations and fusions):
    name, op type, provider, execution ``index`` (order of first run), input and output shapes."""
    with tempfile.TemporaryDirectory() as tmp:
        session = open_session(path, settings, profile_dir=tmp)
        feeds = make_inputs(session, int(settings.get("seed", 0)), settings.get("input_shapes"))
        for _ in range(runs + 1):
            session.run(None, feeds)
        trace_path = session.end_profiling()
        with open(trace_path, encoding="utf-8") as handle:
            events = json.load(handle)
    per_node: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        args = event.get("args", {})
        name = event["name"][: -len("_kernel_time")]
        entry = per_node.setdefault(name, {"name": name, "op_type": args.get("op_name", ""),
                                           "provider": args.get("provider", ""), "index": len(per_node),
                                           "input_shapes": _shapes(args.get("input_type_shape")),
                                           "output_shapes": _shapes(args.get("output_type_shape")),
                                           "samples_us": []})
        entry["samples_us"].append(float(event.get("dur", 0)))
    nodes = []
    for entry in per_node.values():
        samples = entry.pop("samples_us")[1:] or [0.0]  # drop the warm-up run
        nodes.append({**entry, "dur_us": float(np.median(samples)), "runs": len(samples)})
    nodes.sort(key=lambda n: -n["dur_us"])
    return {"nodes": nodes, "providers": session.get_providers()}
