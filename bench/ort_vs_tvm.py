"""ONNX Runtime vs untuned TVM vs MetaSchedule-tuned TVM on `local`: NAS-Bench-201 blocks and mbv3 networks.

Every figure is a real on-device measurement through the agent (hwnas.measure.measure_items:
several fresh sessions, median over sessions, session spread kept as the noise figure). TVM
libraries are compiled by hwnas.tvm_backend (outputs checked against ONNX Runtime before timing).
Tuning costs about a minute per model on this 2-core VM, so only a subset is tuned
(``--tune-blocks`` conv blocks and ``--tune-networks`` networks, ``--trials`` each); the rest of
the tuned column is empty, and the JSON says which were tuned.

    python bench/ort_vs_tvm.py [--networks 20] [--trials 32] [--tune-blocks 3] [--tune-networks 1]

Writes bench/results/ort_vs_tvm.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from hwnas import config, spaces
from hwnas.measure import measure_items, model_item
from hwnas.session import agent_session
from hwnas.store import Store
from lut import builders
from lut.atomic import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results" / "ort_vs_tvm.json"
MEASUREMENT = "{warmup_ms: 20, repeat: 5, min_repeat_ms: 10, sessions: 3, timeout_s: 600}"


def registry(tmp: Path, trials: int) -> config.Registry:
    """Three `local` devices: ORT, TVM untuned, TVM tuned (``trials``), one workspace."""
    path = tmp / "hardware.yaml"
    path.write_text(
        f"workspace: {tmp / 'ws'}\ndevices:\n"
        "  - {name: ort, kind: x86_cpu, transport: {type: local}, "
        f"runtime: {{backend: onnxruntime, threads: 1}}, measurement: {MEASUREMENT}}}\n"
        "  - {name: tvm, kind: x86_cpu, transport: {type: local}, "
        f"runtime: {{backend: tvm, target: {{kind: llvm, num-cores: 1}}}}, measurement: {MEASUREMENT}}}\n"
        "  - {name: tvm-tuned, kind: x86_cpu, transport: {type: local}, "
        f"runtime: {{backend: tvm, target: {{kind: llvm, num-cores: 1}}, trials: {trials}}}, "
        f"measurement: {MEASUREMENT}}}\n")
    return config.load(path)


def models(tmp: Path, networks: int) -> list[dict]:
    """The 19 nasbench201 blocks and ``networks`` sampled mbv3 networks as ONNX files."""
    out = []
    for i, sig in enumerate(spaces.get("nasbench201").all_blocks()):
        path = builders.write_block(sig, tmp / f"nb201_{i:02d}.onnx")
        out.append({"kind": "nasbench201 block", "name": f"{sig.op} {sig.input}->{sig.output}", "path": path})
    space = spaces.get("mbv3")
    for i, arch in enumerate(space.sample(networks, np.random.default_rng(0))):
        out.append({"kind": "mbv3 network", "name": arch, "path": space.export_onnx(arch, tmp / f"mbv3_{i:02d}.onnx")})
    return out


def run(reg: config.Registry, device: str, entries: list[dict]) -> dict[str, dict]:
    """Measure entries on one device; per path: latency, session spread, wall time incl. compile/tune."""
    dev = reg.device(device)
    store = Store(reg.workspace)
    out = {}
    with agent_session(reg, dev) as client:
        for entry in entries:
            started = time.monotonic()
            m = measure_items(dev, client, store, [model_item(entry["path"])], run_id=f"bench-{device}")[0]
            out[str(entry["path"])] = {"latency_ms": m.latency_ms, "session_spread": m.session_spread,
                                       "session_medians_ms": m.stats["session_medians_ms"], "valid": m.valid,
                                       "warnings": m.warnings, "wall_s": time.monotonic() - started}
            print(f"  {device:10s} {entry['name'][:48]:48s} {m.latency_ms:9.3f} ms", flush=True)
    return out


def main() -> None:
    """Run the comparison and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=20)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--tune-blocks", type=int, default=3)
    parser.add_argument("--tune-networks", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ort_vs_tvm_") as tmp_name:
        tmp = Path(tmp_name)
        reg = registry(tmp, args.trials)
        entries = models(tmp, args.networks)
        blocks = [e for e in entries if e["kind"] == "nasbench201 block" and "conv" in e["name"]]
        nets = [e for e in entries if e["kind"] == "mbv3 network"]
        tuned = blocks[:args.tune_blocks] + nets[:args.tune_networks]
        results = {"ort": run(reg, "ort", entries), "tvm": run(reg, "tvm", entries),
                   "tvm-tuned": run(reg, "tvm-tuned", tuned)}
    rows = [{"kind": e["kind"], "name": e["name"], **{d: results[d].get(str(e["path"])) for d in results}}
            for e in entries]
    speedups = [r["tvm"]["latency_ms"] / r["tvm-tuned"]["latency_ms"] for r in rows if r["tvm-tuned"]]
    spreads = [r[d]["session_spread"] for r in rows for d in results if r[d]]
    report = {
        "config": {"measurement": MEASUREMENT, "trials": args.trials, "tuned": [e["name"] for e in tuned],
                   "threads": 1, "host": platform.node(), "machine": platform.machine(),
                   "tvm_target": {"kind": "llvm", "num-cores": 1}},
        "rows": rows,
        "summary": {"median_session_spread": statistics.median(spreads),
                    "tvm_tuned_speedup_over_untuned": speedups,
                    "wall_s": time.monotonic() - started},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(RESULTS, json.dumps(report, indent=1))

    def cell(r: dict | None) -> str:
        return "" if not r else f"{r['latency_ms']:.3f} ±{r['session_spread']:.0%}" + ("" if r["valid"] else " (!)")

    print("\n| kind | model | ONNX Runtime ms | TVM untuned ms | TVM tuned ms |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['name'][:60]} | {cell(r['ort'])} | {cell(r['tvm'])} | {cell(r['tvm-tuned'])} |")
    print(f"\n±x% = spread between {MEASUREMENT.split('sessions: ')[1].split(',')[0]} fresh sessions; "
          f"(!) = flagged invalid (CoV/drift/unchecked). Tuned: {len(tuned)} models, {args.trials} trials each. "
          f"Wall time {report['summary']['wall_s']:.0f} s. -> {RESULTS}")


if __name__ == "__main__":
    main()
