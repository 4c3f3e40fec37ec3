"""Apache TVM on the device: load a compiled library, check it against ONNX Runtime, time it.

The host compiles the model for this device's target and ships a shared library
(``<sha256>.so``). Before the TVM runtime opens it, ``elf_machine`` reads the
ELF header so a library built for another CPU (AArch64 on x86-64, say) is
refused with a message naming both architectures instead of a loader crash.

``runner(path, settings, inputs, reference)`` returns a zero-argument callable
that runs the Relax VM's ``main`` once on the device the target names
(``settings["tvm_device"]``: cpu, opencl, vulkan, cuda, ...) and that device's
``sync``, for ``device_agents.timing.measure``.
``inputs`` describes the graph inputs (name, shape, dtype) because a library
does not; they are filled with the same seeded values ONNX Runtime would get.
When ``reference`` (the ONNX model the library was compiled from) is given and
onnxruntime is installed here, both run on the same inputs first and a mismatch
raises ``OutputMismatch``; without onnxruntime the check is skipped and says so
in the facts' ``warnings``.
"""
from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Any

import numpy as np

# ELF e_machine codes -> canonical architecture names (as in platform.machine()).
_ELF_MACHINES = {3: "x86", 40: "arm", 62: "x86_64", 183: "aarch64", 243: "riscv"}
_HOST_ALIASES = {"amd64": "x86_64", "x86_64": "x86_64", "i386": "x86", "i686": "x86", "arm64": "aarch64",
                 "aarch64": "aarch64", "riscv64": "riscv"}
RTOL = 1e-3  # max |tvm - ort| relative to max |ort| per output


class OutputMismatch(RuntimeError):
    """TVM's outputs differ from ONNX Runtime's on the same inputs."""


def version() -> str | None:
    """The TVM runtime version, or None if TVM is not installed.

    Read from the package metadata when there is one, because importing TVM takes
    seconds and ``hello`` runs at every agent start; a source build is imported."""
    import importlib.metadata
    import importlib.util

    if importlib.util.find_spec("tvm") is None:
        return None
    for dist in ("apache-tvm", "tvm"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        import tvm
    except ImportError:
        return None
    return str(tvm.__version__)


def canonical_arch(name: str) -> str:
    """A CPU architecture name (``platform.machine()`` or an mtriple's first part) in canonical form."""
    name = name.lower()
    if name.startswith("arm") and name not in _HOST_ALIASES:
        return "arm"
    return _HOST_ALIASES.get(name, name)


def host_arch() -> str:
    """This machine's CPU architecture, canonical (x86_64, aarch64, arm, x86, riscv)."""
    return canonical_arch(platform.machine())


def elf_machine(path: str) -> str:
    """Architecture an ELF file is built for, from its header's ``e_machine``; ValueError if not ELF."""
    with open(path, "rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        raise ValueError("the file is not an ELF shared library")
    order = "little" if header[5] == 1 else "big"
    code = int.from_bytes(header[18:20], order)
    return _ELF_MACHINES.get(code, f"e_machine {code}")


def check_machine(path: str) -> None:
    """Refuse a library built for another CPU before the dynamic loader sees it."""
    built_for = elf_machine(path)
    here = host_arch()
    if built_for != here:
        raise ValueError(f"the library is built for {built_for} but this device is {here}; "
                         "compile for this device's target")


def make_inputs(inputs: list[dict[str, Any]], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs from (name, shape, dtype) specs; the same values ort_runner.make_inputs draws."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        dtype = np.dtype(spec["dtype"])
        shape = [int(d) for d in spec["shape"]]
        if np.issubdtype(dtype, np.floating):
            feeds[spec["name"]] = rng.standard_normal(shape).astype(dtype)
        else:
            feeds[spec["name"]] = rng.integers(0, 2, size=shape).astype(dtype)
    return feeds


def flatten(value: Any) -> list[np.ndarray]:
    """A VM result (tensor or nested tuple of tensors) as a flat list of numpy arrays."""
    if hasattr(value, "numpy"):
        return [value.numpy()]
    out: list[np.ndarray] = []
    for part in value:
        out.extend(flatten(part))
    return out


def compare(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """Largest per-output error relative to the reference's magnitude; OutputMismatch beyond RTOL."""
    if len(got) != len(want):
        raise OutputMismatch(f"TVM returned {len(got)} outputs, onnxruntime {len(want)}")
    worst = 0.0
    for i, (a, b) in enumerate(zip(got, want)):
        if a.shape != b.shape:
            raise OutputMismatch(f"output {i}: TVM shape {a.shape}, onnxruntime shape {b.shape}")
        if a.size == 0:
            continue
        scale = max(float(np.max(np.abs(b.astype(np.float64)))), 1e-6)
        err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) / scale
        if not np.isfinite(err) or err > RTOL:
            raise OutputMismatch(f"output {i} differs from onnxruntime by {err:.2e} of its magnitude "
                                 f"(tolerance {RTOL:g})")
        worst = max(worst, err)
    return worst


def _set_threads(threads: int) -> None:
    import tvm

    config = tvm.get_global_func("runtime.config_threadpool", allow_missing=True)
    if config is not None:
        config(1, threads)  # 1 = big cores first, ``threads`` workers


def check_outputs(got: list[np.ndarray], feeds: dict[str, np.ndarray], reference: str | None,
                  where: str = "onnxruntime") -> tuple[Any, list[str]]:
    """Compare a library's outputs on ``feeds`` with ONNX Runtime's run of the ``reference`` model
    (here); returns (the ``output_check`` fact, warnings). OutputMismatch when they differ."""
    if reference is None:
        return "not requested", ["outputs were not checked against onnxruntime"]
    from device_agents import ort_runner

    if ort_runner.version() is None:
        return ("skipped: onnxruntime is not installed on this device",
                ["outputs not checked: onnxruntime is not installed on the device"])
    want = ort_runner.open_session(reference, {"threads": 1}).run(None, feeds)
    err = compare(got, [np.asarray(w) for w in want])
    return {"against": where, "max_rel_err": err, "rtol": RTOL}, []


def device_for(kind: str | None) -> Any:
    """The TVM device a target kind runs on (``llvm`` -> cpu, ``opencl``, ``vulkan``, ``cuda``, ...);
    ValueError when this TVM runtime has no such device."""
    import tvm

    device = tvm.device(kind or "cpu", 0)
    if device.dlpack_device_type() != tvm.cpu(0).dlpack_device_type() and not device.exist:
        raise ValueError(f"this device has no {kind} device for TVM (is its driver/runtime installed?)")
    return device


def open_vm(path: str, settings: dict[str, Any], inputs: list[dict[str, Any]] | None
            ) -> tuple[Any, Any, dict[str, np.ndarray], list[Any]]:
    """The Relax VM of a checked library on the settings' TVM device (threads set), that device, the
    seeded inputs and them as device tensors; ValueError without input specs or for another CPU."""
    if not inputs:
        raise ValueError("a TVM library needs its input specs (name, shape, dtype)")
    check_machine(path)
    import tvm
    from tvm import relax

    _set_threads(int(settings.get("threads", 1)))
    device = device_for(settings.get("tvm_device"))
    vm = relax.VirtualMachine(tvm.runtime.load_module(path), device)
    feeds = make_inputs(inputs, int(settings.get("seed", 0)))
    return vm, device, feeds, [tvm.runtime.tensor(feeds[spec["name"]], device) for spec in inputs]


def runner(path: str, settings: dict[str, Any], inputs: list[dict[str, Any]] | None = None,
           reference: str | None = None) -> tuple[Callable[[], Any], Callable[[], Any], dict[str, Any]]:
    """A callable running the library's ``main`` once, the device's ``sync`` (called inside every
    timed call, so asynchronous GPU work is timed), and facts (output check included)."""
    vm, device, feeds, args = open_vm(path, settings, inputs)
    main = vm["main"]
    check, warnings = check_outputs(flatten(main(*args)) if reference is not None else [], feeds, reference)
    facts: dict[str, Any] = {"providers": [f"tvm:{device}"], "warnings": warnings, "output_check": check}

    def run() -> Any:
        return main(*args)

    return run, device.sync, facts


# Relax operator names (as they appear in fused PrimFunc names) -> the ONNX op type they come from,
# in anchor priority: a fused kernel is named after the first of these it contains.
_ANCHORS = (
    ("conv2d_transpose", "ConvTranspose"), ("conv2d", "Conv"), ("conv1d", "Conv"), ("matmul", "MatMul"),
    ("dense", "Gemm"), ("adaptive_avg_pool2d", "GlobalAveragePool"), ("max_pool2d", "MaxPool"),
    ("avg_pool2d", "AveragePool"), ("mean", "GlobalAveragePool"), ("max", "ReduceMax"), ("sum", "ReduceSum"),
    ("softmax", "Softmax"), ("resize2d", "Resize"), ("layout_transform", "ReorderInput"),
    ("concatenate", "Concat"), ("split", "Split"), ("strided_slice", "Slice"), ("transpose", "Transpose"),
    ("reshape", "Reshape"), ("take", "Gather"), ("add", "Add"), ("multiply", "Mul"), ("subtract", "Sub"),
    ("divide", "Div"), ("relu", "Relu"), ("sigmoid", "Sigmoid"), ("tanh", "Tanh"), ("clip", "Clip"),
    ("exp", "Exp"), ("erf", "Erf"),
)
_ANCHOR_OF = dict(_ANCHORS)
_RANK = {name: i for i, (name, _) in enumerate(_ANCHORS)}


def fused_ops(symbol: str) -> list[str]:
    """The Relax operators a PrimFunc's name lists, in order (``fused_conv2d_add2_relu`` ->
    conv2d, add, relu); names TVM numbered to keep them unique lose their number."""
    words = symbol.removeprefix("fused_").split("_")
    ops, i = [], 0
    while i < len(words):
        for width in (3, 2, 1):  # longest known name first: max_pool2d before max
            name = "_".join(words[i:i + width]).rstrip("0123456789")
            if width <= len(words) - i and name in _ANCHOR_OF:
                ops.append(name)
                i += width
                break
        else:
            ops.append(words[i].rstrip("0123456789"))
            i += 1
    return ops


def anchor_op(symbol: str) -> str:
    """The ONNX op type a fused kernel is named after: its highest-priority operator (``fused_conv2d_add_relu``
    -> Conv); an operator this table does not know keeps its Relax name."""
    ops = fused_ops(symbol)
    known = [op for op in ops if op in _RANK]
    if not known:
        return ops[0] if ops else symbol
    return _ANCHOR_OF[min(known, key=_RANK.__getitem__)]


def _shape(value: Any) -> list[int] | None:
    shape = getattr(value, "shape", None)
    return [int(d) for d in shape] if shape is not None else None


def profile(path: str, settings: dict[str, Any], runs: int, inputs: list[dict[str, Any]] | None = None
            ) -> dict[str, Any]:
    """The kernels a compiled library runs, timed one by one: every call of a compiled PrimFunc
    (the VM's own builtins — allocation, shape checks — left out), seen through the VM's call
    instrument, the device synchronised after each. Per call: the PrimFunc's name, the ONNX op
    type it is named after (:func:`anchor_op`), input and output shapes (destination-passing
    style: the last argument is the output) and the median time over ``runs`` runs after one
    warm-up run. A PrimFunc called at several places is one node per place (``name#k``)."""
    import time

    vm, device, _, args = open_vm(path, settings, inputs)
    calls: list[tuple[str, float, list[list[int]]]] = []
    started = [0.0]

    def instrument(func: Any, symbol: str, before: bool, ret: Any, *call_args: Any) -> int:
        if symbol.startswith("vm.") or symbol == "main":
            return 0
        if before:
            device.sync()
            started[0] = time.perf_counter()
        else:
            device.sync()
            elapsed = time.perf_counter() - started[0]
            calls.append((symbol, elapsed * 1e6, [s for s in map(_shape, call_args) if s is not None]))
        return 0

    vm.set_instrument(instrument)
    per_run: list[list[tuple[str, float, list[list[int]]]]] = []
    for _ in range(max(1, runs) + 1):
        calls.clear()
        vm["main"](*args)
        per_run.append(list(calls))
    timed = per_run[1:]
    nodes = []
    seen: dict[str, int] = {}
    for index, (symbol, _, shapes) in enumerate(timed[0]):
        k = seen[symbol] = seen.get(symbol, -1) + 1
        samples = [run[index][1] for run in timed if len(run) > index and run[index][0] == symbol]
        nodes.append({"name": f"{symbol}#{k}" if k else symbol, "op_type": anchor_op(symbol),
                      "provider": f"tvm:{device}", "index": index, "input_shapes": shapes[:-1],
                      "output_shapes": shapes[-1:], "dur_us": float(np.median(samples)), "runs": len(samples)})
    nodes.sort(key=lambda n: -n["dur_us"])
    return {"nodes": nodes, "providers": [f"tvm:{device}"]}
