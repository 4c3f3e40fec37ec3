"""Simulator runner: an ONNX model's latency on a simulated systolic-array accelerator (SCALE-Sim).

Runs on the simulator host, in a Python environment that has ``scalesim`` and
``onnx`` (SCALE-Sim 3.0 needs numpy < 2.4: give it its own venv and point the
device's ``python:`` at it). ``settings["accelerator"]`` holds the configuration
(see ``hwnas/backends/simulator.py``).

Mapping. Every Conv, Gemm and MatMul node becomes one SCALE-Sim convolution layer:

- Conv: IFMAP = the input padded by the node's pads (H+pt+pb, W+pl+pr), filter KhxKw,
  channels C/g, C_out/g filters, stride; a grouped conv is simulated for one group
  and its cycles multiplied by g (a depthwise conv: C_out/g = 1 filter per channel);
- Gemm / MatMul (A: M x K, B: K x N, leading dims of A folded into M): IFMAP M x K,
  filter 1 x K, 1 channel, N filters, stride 1 (SCALE-Sim's own GEMM mapping).

Its cycles are SCALE-Sim's "Total Cycles (incl. prefetch)" from ``COMPUTE_REPORT.csv``
(``scalesim.get_total_cycles()`` is broken in 3.0). A layer is simulated once per
(layer, accelerator configuration, SCALE-Sim version): results are cached as JSON in
``$XDG_CACHE_HOME/scalesim/`` (the agent's work dir).

Other nodes run on the accelerator's vector unit, modelled as

    cycles = ceil(max(bytes / dram_bytes_per_cycle, ops / vector_lanes))

with bytes = (input + output elements) x ``word_bytes`` and ops = output elements
x the window size for pooling (x 1 otherwise); shape-only nodes (Reshape, Flatten,
Squeeze, Unsqueeze, Identity, Shape, Constant, Dropout) cost 0 cycles.

Latency = total cycles / ``clock_mhz`` / 1000 ms. The round source repeats that
latency (a simulation does not vary), so results have CoV 0 and no drift probe.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

FORMAT = "onnx"
DRIFT_PROBE = False
MAC_OPS = ("Conv", "Gemm", "MatMul")
FREE_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Constant", "Dropout")
POOL_OPS = ("MaxPool", "AveragePool")
DEFAULTS = {"dataflow": "ws", "ifmap_sram_kb": 64, "filter_sram_kb": 64, "ofmap_sram_kb": 64,
            "dram_bytes_per_cycle": 16, "word_bytes": 1}


def version() -> str | None:
    """The SCALE-Sim version here, or None without it (read from metadata: no import)."""
    import importlib.metadata

    try:
        return importlib.metadata.version("scalesim")
    except importlib.metadata.PackageNotFoundError:
        return None


def accelerator(settings: dict[str, Any]) -> dict[str, Any]:
    """The accelerator configuration of a request, defaults filled in (``vector_lanes``: array columns)."""
    acc = {**DEFAULTS, **(settings.get("accelerator") or {})}
    if "array" not in acc or "clock_mhz" not in acc:
        raise ValueError("settings.accelerator needs 'array' and 'clock_mhz'")
    acc["array"] = [int(acc["array"][0]), int(acc["array"][1])]
    acc.setdefault("vector_lanes", acc["array"][1])
    return acc


class SimulatedCycles:
    """Round source for a simulated latency: every round is ``ms`` (nothing to warm up or calibrate)."""

    def __init__(self, ms: float) -> None:
        self.ms = ms

    def warm_up(self, warmup_ms: float) -> None:
        """Nothing to warm up."""

    def calibrate(self, min_repeat_ms: float) -> int:
        """One simulated call per round."""
        return 1

    def rounds(self, number: int | None, repeat: int) -> list[float]:
        """``repeat`` identical rounds."""
        return [self.ms] * repeat


def _shapes(model: Any) -> dict[str, list[int]]:
    """Static shape of every tensor (inputs, initializers, inferred values); free dims become 1."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.dim_value > 0 else 1 for d in dims]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def mac_layer(node: Any, shapes: dict[str, list[int]]) -> tuple[list[int], int]:
    """SCALE-Sim layer [ifmap_h, ifmap_w, filter_h, filter_w, channels, filters, stride] of a
    Conv/Gemm/MatMul node, and how many times it runs (a grouped conv's groups)."""
    a = shapes[node.input[0]]
    b = shapes[node.input[1]]
    attrs = _attrs(node)
    if node.op_type == "Conv":
        groups = int(attrs.get("group", 1))
        kh, kw = b[2], b[3]
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        stride = int(next(iter(attrs.get("strides", [1]))))
        return [a[2] + pads[0] + pads[2], a[3] + pads[1] + pads[3], kh, kw, a[1] // groups,
                b[0] // groups, stride], groups
    if node.op_type == "Gemm":
        m, k = (a[1], a[0]) if attrs.get("transA") else (a[0], a[1])
        n = b[0] if attrs.get("transB") else b[1]
    else:  # MatMul
        m, k, n = math.prod(a[:-1]), a[-1], b[-1]
    return [m, k, 1, k, 1, n, 1], 1


def vector_cycles(node: Any, shapes: dict[str, list[int]], acc: dict[str, Any]) -> int:
    """Cycles of a non-MAC node on the vector unit (formula in the module docstring)."""
    if node.op_type in FREE_OPS:
        return 0
    def size(name: str) -> int:
        return math.prod(shapes.get(name) or [1])
    out = sum(size(n) for n in node.output if n)
    moved = (sum(size(n) for n in node.input if n) + out) * acc["word_bytes"]
    window = math.prod(_attrs(node).get("kernel_shape", [1])) if node.op_type in POOL_OPS else 1
    if node.op_type == "GlobalAveragePool":
        window = math.prod(shapes.get(node.input[0], [1])[2:])
        out = size(node.input[0]) // max(window, 1)
    return math.ceil(max(moved / acc["dram_bytes_per_cycle"], out * window / acc["vector_lanes"]))


def _layer_key(layer: list[int], acc: dict[str, Any], sim_version: str | None) -> str:
    conf = {k: acc[k] for k in ("array", "dataflow", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb")}
    return hashlib.sha256(json.dumps([layer, conf, sim_version], sort_keys=True).encode()).hexdigest()


def _config_text(acc: dict[str, Any]) -> str:
    rows, cols = acc["array"]
    return (
        "[general]\nrun_name = hwnas\n\n"
        "[architecture_presets]\n"
        f"ArrayHeight : {rows}\nArrayWidth : {cols}\n"
        f"IfmapSramSzkB : {int(acc['ifmap_sram_kb'])}\nFilterSramSzkB : {int(acc['filter_sram_kb'])}\n"
        f"OfmapSramSzkB : {int(acc['ofmap_sram_kb'])}\n"
        "IfmapOffset : 0\nFilterOffset : 10000000\nOfmapOffset : 20000000\n"
        f"Dataflow : {acc['dataflow']}\nBandwidth : 10\nReadRequestBuffer : 32\nWriteRequestBuffer : 32\n\n"
        "[layout]\nIfmapCustomLayout : False\nIfmapSRAMBankBandwidth : 10\nIfmapSRAMBankNum : 10\n"
        "IfmapSRAMBankPort : 2\nFilterCustomLayout : False\nFilterSRAMBankBandwidth : 10\n"
        "FilterSRAMBankNum : 10\nFilterSRAMBankPort : 2\n\n"
        "[sparsity]\nSparsitySupport : false\nSparseRep : ellpack_block\nOptimizedMapping : false\n"
        "BlockSize : 8\nRandomNumberGeneratorSeed : 40\n\n"
        "[run_presets]\nInterfaceBandwidth : CALC\nUseRamulatorTrace : False\n"
    )


def simulate(layers: list[list[int]], acc: dict[str, Any], workdir: Path) -> list[int]:
    """Run SCALE-Sim once on ``layers``; each layer's "Total Cycles (incl. prefetch)" from
    ``COMPUTE_REPORT.csv``. Raises Unavailable where SCALE-Sim is not installed."""
    from device_agents.runners import Unavailable

    try:
        from scalesim.scale_sim import scalesim
    except ImportError as exc:
        raise Unavailable(f"SCALE-Sim is not installed in this Python ({exc}); "
                          "point the device's python at the simulator's environment") from None
    workdir.mkdir(parents=True, exist_ok=True)
    topology = workdir / "topology.csv"
    lines = ["Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"]
    lines += [f"L{i}, " + ", ".join(str(v) for v in layer) + "," for i, layer in enumerate(layers)]
    topology.write_text("\n".join(lines) + "\n")
    layout = workdir / "layout.csv"
    layout.write_text("Layer name,\n")
    config = workdir / "scalesim.cfg"
    config.write_text(_config_text(acc))
    sim = scalesim(save_disk_space=True, verbose=False, config=str(config), topology=str(topology),
                   layout=str(layout))
    sim.run_scale(top_path=str(workdir / "out"))
    with open(workdir / "out" / "hwnas" / "COMPUTE_REPORT.csv", newline="") as handle:
        rows = [row for row in csv.reader(handle)][1:]
    return [int(float(row[1])) for row in rows if row]


def layer_cycles(layers: list[list[int]], acc: dict[str, Any]) -> tuple[list[int], int]:
    """Cycles of each layer, from the device's cache where the same layer was simulated with the
    same configuration before; returns (cycles, how many layers were simulated now)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or tempfile.gettempdir()) / "scalesim"
    cache.mkdir(parents=True, exist_ok=True)
    sim_version = version()
    keys = [_layer_key(layer, acc, sim_version) for layer in layers]
    known: dict[str, int] = {}
    for key in set(keys):
        path = cache / f"{key}.json"
        if path.exists():
            known[key] = int(json.loads(path.read_text())["cycles"])
    todo = {key: layer for key, layer in zip(keys, layers) if key not in known}
    if todo:
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            cycles = simulate(list(todo.values()), acc, Path(tmp))
        for (key, layer), value in zip(todo.items(), cycles):
            known[key] = value
            part = cache / f"{key}.json.part"
            part.write_text(json.dumps({"layer": layer, "cycles": value, "scalesim": sim_version}))
            os.replace(part, cache / f"{key}.json")
    return [known[key] for key in keys], len(todo)


def prepare(path: str, settings: dict[str, Any], inputs: list[dict[str, Any]] | None = None,
            reference: str | None = None) -> tuple[SimulatedCycles, dict[str, Any]]:
    """Map the model's nodes to layers, simulate (or read cached) cycles, return the simulated latency."""
    import onnx

    acc = accelerator(settings)
    model = onnx.load(path)
    shapes = _shapes(model)
    mac = [(node, *mac_layer(node, shapes)) for node in model.graph.node if node.op_type in MAC_OPS]
    cycles, simulated_now = layer_cycles([layer for _, layer, _ in mac], acc)
    layers = []
    mac_by_node = {id(node): (layer, groups, c) for (node, layer, groups), c in zip(mac, cycles)}
    for i, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{i}"
        if id(node) in mac_by_node:
            layer, groups, c = mac_by_node[id(node)]
            layers.append({"node": name, "op_type": node.op_type, "layer": layer, "groups": groups,
                           "cycles": c * groups, "source": "scalesim"})
        else:
            layers.append({"node": name, "op_type": node.op_type, "cycles": vector_cycles(node, shapes, acc),
                           "source": "vector model"})
    total = sum(entry["cycles"] for entry in layers)
    ms = total / (float(acc["clock_mhz"]) * 1e3)
    facts = {"providers": [f"scalesim:{acc['array'][0]}x{acc['array'][1]}:{acc['dataflow']}"],
             "simulated": True, "cycles": total, "accelerator": acc, "layers": layers,
             "layers_simulated": simulated_now}
    return SimulatedCycles(ms), facts
