"""Compile ONNX models with Apache TVM for a device's target, on the host; cache and tune them.

``artifact(device, item, workspace)`` imports the ONNX model with fixed input
shapes (Relax ONNX frontend), lowers it (``zero`` pipeline, plus the device's
MetaSchedule database when ``trials > 0``), compiles it for the device's target
and exports a shared library — cross-compiled with the configured
``cross_compiler`` when the target's CPU differs from this host's.

Libraries are cached in ``<workspace>/tvm_cache/<key>.so``, the key being the
sha256 of (model sha256, canonical target JSON, TVM version, tuning-database
hash, cross compiler). Tuning records live per (target, model) in
``<workspace>/tvm_tuning/`` (or under ``runtime.tuning_log``); a model tuned
with at least the configured trials is not tuned again.

What is checked where: the host validates the target, the cross compiler and
that TVM can import every operator (``BadInput`` naming the device otherwise);
the agent refuses a library built for another CPU (ELF ``e_machine``) and, with
onnxruntime on the device, compares the library's outputs with ONNX Runtime's
on the same inputs before timing (``device_agents.tvm_runner``). Over a TVM RPC
transport the same comparison runs on the host against the remote outputs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from device_agents.tvm_runner import canonical_arch, host_arch
from hwnas.config import DeviceConfig
from hwnas.errors import BadInput
from lut.atomic import atomic_path, write_text_atomic

log = logging.getLogger("hwnas")

CACHE_DIR = "tvm_cache"
TUNING_DIR = "tvm_tuning"
_TUNED_MARK = "hwnas_tuned.json"
SMALL_BUDGET = 64  # trials per MetaSchedule search round
_LOCK = threading.Lock()  # TVM compiles and tunes one model at a time per process


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # TVM errors end with the meaningful line ("... Error: <why>"); Python ones start with it.
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line[:300]
    return (lines[0] if lines else type(exc).__name__)[:300]


def parse_target(device: DeviceConfig) -> Any:
    """The device's TVM ``Target``; BadInput naming the device when TVM rejects the dict."""
    import tvm

    try:
        return tvm.target.Target(dict(device.runtime.target))
    except Exception as exc:  # TVM raises ValueError/TVMError/... for unknown kinds and keys
        raise BadInput(f"device {device.name}: TVM rejects runtime.target "
                       f"{json.dumps(device.runtime.target)} ({_first_line(exc)})") from None


def canonical_target(target: Any) -> str:
    """Canonical JSON of a target (every attribute TVM fills in, sorted keys)."""
    return json.dumps(json.loads(str(target)), sort_keys=True)  # str(Target) is its JSON config


def target_arch(target: Any) -> str:
    """CPU architecture the target's host code is for, from its mtriple (this host's when unset)."""
    cpu = target if target.kind.name in ("llvm", "c") else (target.host or target)
    triple = str(cpu.attrs.get("mtriple", "") or "")
    if not triple:
        return host_arch()
    return canonical_arch(triple.split("-")[0])


def _compiler(device: DeviceConfig, target: Any) -> Any:
    """``fcompile`` for export_library: the cross compiler when configured or needed; BadInput if missing."""
    import tvm.support.cc

    name = device.runtime.cross_compiler
    arch = target_arch(target)
    if name is None:
        if arch != host_arch():
            raise BadInput(f"device {device.name}: target is for {arch} but this host is {host_arch()}; "
                           "set runtime.cross_compiler (e.g. aarch64-linux-gnu-gcc)")
        return None
    if shutil.which(name) is None:
        raise BadInput(f"device {device.name}: cross compiler {name!r} (runtime.cross_compiler) "
                       "is not on this host's PATH")
    return tvm.support.cc.cross_compiler(name)


def input_specs(model: Any) -> list[dict[str, Any]]:
    """(name, shape, dtype) of every graph input that is not an initializer; free dimensions become 1."""
    from onnx import helper

    initializers = {t.name for t in model.graph.initializer}
    specs = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tensor.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        specs.append({"name": value.name, "shape": shape, "dtype": dtype})
    return specs


def import_onnx(device: DeviceConfig, path: Path) -> tuple[Any, list[dict[str, Any]]]:
    """The Relax module of an ONNX file with fixed input shapes; BadInput if TVM cannot import it."""
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    model = onnx.load(str(path))
    specs = input_specs(model)
    try:
        mod = from_onnx(model, shape_dict={s["name"]: s["shape"] for s in specs}, keep_params_in_input=False)
    except Exception as exc:  # unsupported op or attribute: the frontend's own message says which
        raise BadInput(f"device {device.name}: TVM cannot import {path.name} ({_first_line(exc)})") from None
    return mod, specs


GPU_KINDS = ("opencl", "cuda", "vulkan", "rocm", "metal", "webgpu")


def gpu_schedules(target: Any) -> list[Any]:
    """dlight's default GPU schedule rules for a GPU target (Adreno's own first for ``device: adreno``):
    without a thread binding, GPU codegen refuses every kernel."""
    from tvm.s_tir import dlight as dl

    rules = [dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(), dl.gpu.Fallback()]
    if str(target.attrs.get("device", "")) == "adreno":
        rules = [dl.adreno.Conv2d(), dl.adreno.LayoutTransform(), dl.adreno.Pool2D(), *rules]
    return rules


def _lower(device: DeviceConfig, mod: Any, target: Any) -> Any:
    """Inference-only, legalized and fused Relax module (what tuning and compiling start from);
    for a GPU target also scheduled with dlight's default GPU rules (when not tuned)."""
    import tvm
    from tvm import relax
    from tvm.relax import transform

    passes = [transform.DecomposeOpsForInference(), transform.CanonicalizeBindings(), relax.get_pipeline("zero")]
    if target.kind.name in GPU_KINDS:
        from tvm.s_tir import dlight as dl
        passes.append(dl.ApplyDefaultSchedule(*gpu_schedules(target)))
    try:
        with target:
            return tvm.transform.Sequential(passes)(mod)
    except Exception as exc:  # a pass TVM cannot apply to this graph (e.g. a reshape to a computed shape)
        raise BadInput(f"device {device.name}: TVM cannot lower the model for its target "
                       f"({_first_line(exc)})") from None


def tuning_dir(device: DeviceConfig, workspace: Path, model_sha: str, target_json: str) -> Path:
    """Where the MetaSchedule database of one model on one target lives."""
    root = Path(device.runtime.tuning_log).expanduser() if device.runtime.tuning_log else workspace / TUNING_DIR
    target_key = hashlib.sha256(target_json.encode()).hexdigest()[:16]
    return root / target_key / model_sha


def tuned_trials(directory: Path) -> int:
    """Trials a model's database was tuned with (0 when never tuned)."""
    try:
        return int(json.loads((directory / _TUNED_MARK).read_text())["trials"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _runner(device: DeviceConfig, target: Any) -> Any:
    """Where MetaSchedule measures candidates: on the device itself, never elsewhere."""
    from tvm.s_tir import meta_schedule as ms

    if target_arch(target) != host_arch():
        raise BadInput(f"device {device.name}: tuning a cross-compiled target is not supported; "
                       "set runtime.trials to 0")
    transport = device.transport
    if transport.type == "local":
        return "local"
    if transport.type == "tvm_rpc":
        return ms.runner.RPCRunner(ms.runner.RPCConfig(tracker_host=transport.tracker_host,
                                                       tracker_port=transport.tracker_port,
                                                       tracker_key=transport.key, session_timeout_sec=60))
    raise BadInput(f"device {device.name}: MetaSchedule tuning measures on the device, which needs a local "
                   f"or tvm_rpc transport (not {transport.type}); set runtime.trials to 0")


def tune(device: DeviceConfig, mod: Any, target: Any, directory: Path) -> None:
    """Tune a lowered module with MetaSchedule within ``runtime.trials``; records go to ``directory``."""
    from tvm.s_tir import meta_schedule as ms

    trials = device.runtime.trials
    runner = _runner(device, target)
    directory.mkdir(parents=True, exist_ok=True)
    log.info("hwnas: tuning for %s with %d MetaSchedule trials (records in %s)", device.name, trials, directory)
    # Below one evolutionary round (64 candidates) the cost model has nothing to learn from, and the
    # evolutionary search's fixed cost dominates: replay sampled schedules instead.
    strategy = "evolutionary" if trials >= SMALL_BUDGET else "replay-trace"
    ms.relax_integration.tune_relax(mod, {}, target, str(directory), max_trials_global=trials,
                                    num_trials_per_iter=min(SMALL_BUDGET, trials), runner=runner,
                                    strategy=strategy, seed=0)
    write_text_atomic(directory / _TUNED_MARK, json.dumps({"trials": trials}))


def _database_hash(directory: Path | None) -> str:
    if directory is None:
        return "untuned"
    digest = hashlib.sha256()
    for name in ("database_workload.json", "database_tuning_record.json"):
        path = directory / name
        digest.update(path.read_bytes() if path.exists() else b"-")
    return digest.hexdigest()


def cache_key(item_sha: str, target_json: str, tvm_version: str, tuning_hash: str, compiler: str | None) -> str:
    """Content key of a compiled library."""
    text = json.dumps([item_sha, target_json, tvm_version, tuning_hash, compiler or ""])
    return hashlib.sha256(text.encode()).hexdigest()


def compile_library(device: DeviceConfig, mod: Any, target: Any, tuning: Path | None, out: Path) -> None:
    """Compile a lowered module for the target and export it as a shared library at ``out``."""
    import tvm
    from tvm.relax import transform

    fcompile = _compiler(device, target)
    if tuning is not None:
        with target:
            mod = transform.MetaScheduleApplyDatabase(str(tuning))(mod)
    try:
        executable = tvm.compile(mod, target=target)
    except Exception as exc:
        raise BadInput(f"device {device.name}: TVM cannot compile the model for "
                       f"{canonical_target(target)} ({_first_line(exc)})") from None
    with atomic_path(out) as partial:
        executable.export_library(str(partial), fcompile=fcompile)


def artifact(device: DeviceConfig, item: Any, workspace: Path) -> tuple[Path, str]:
    """The compiled library for an item on a TVM device (cached), and its format ``"tvm"``."""
    import tvm

    target = parse_target(device)
    target_json = canonical_target(target)
    compiler = device.runtime.cross_compiler
    _compiler(device, target)  # a missing cross compiler is bad input even when the library is cached
    workspace = Path(workspace)
    with _LOCK:
        mod = None
        tuning = None
        if device.runtime.trials > 0:
            tuning = tuning_dir(device, workspace, item.sha256, target_json)
            if tuned_trials(tuning) < device.runtime.trials:
                mod = _lower(device, import_onnx(device, Path(item.path))[0], target)
                tune(device, mod, target, tuning)
        key = cache_key(item.sha256, target_json, str(tvm.__version__), _database_hash(tuning), compiler)
        out = workspace / CACHE_DIR / f"{key}.so"
        if out.exists():
            return out, "tvm"
        out.parent.mkdir(parents=True, exist_ok=True)
        if mod is None:
            mod = _lower(device, import_onnx(device, Path(item.path))[0], target)
        compile_library(device, mod, target, tuning, out)
    return out, "tvm"


def measure_fields(client: Any, item: Any) -> dict[str, Any]:
    """Extra ``measure`` fields for a TVM library: input specs, and the ONNX model as reference."""
    import onnx

    specs = input_specs(onnx.load(str(item.path), load_external_data=False))
    return {"inputs": specs, "reference": client.load(Path(item.path), "onnx")}


def device_report(device: DeviceConfig, facts: dict[str, Any]) -> dict[str, Any]:
    """Whether a device can run this entry's TVM libraries: runtime version (None when absent; the
    caller reports that), target arch vs the device's ``machine``, host/device TVM versions; ``reasons``
    lists what is wrong."""
    version = (facts.get("runtimes") or {}).get("tvm")
    report: dict[str, Any] = {"tvm_runtime": version, "reasons": []}
    try:
        target = parse_target(device)
    except BadInput as exc:
        report["reasons"].append(str(exc))
        report["target_matches_cpu"] = False
        return report
    machine = str(facts.get("machine") or "")
    device_arch = canonical_arch(machine) if machine else None
    wanted = target_arch(target)
    report["target"] = json.loads(canonical_target(target))
    report["target_arch"] = wanted
    report["device_arch"] = device_arch
    if device_arch is None:
        report["target_matches_cpu"] = None
    else:
        report["target_matches_cpu"] = device_arch == wanted
        if device_arch != wanted:
            report["reasons"].append(f"target is for {wanted} but the device CPU is {device_arch}")
    if version is not None:
        import tvm

        if version != str(tvm.__version__):
            report["reasons"].append(f"device TVM runtime {version} differs from the host compiler "
                                     f"{tvm.__version__}")
    return report
