"""Re-run `hwnas measure` on the same models 5 times; spread = max/min of the medians − 1.

The DESIGN target: under 10% on an idle machine. Each run is a fresh `hwnas measure`
process (fresh agent, fresh sessions). A batch is ``--runs`` runs in one fresh
workspace, so its first run has no stored reference baseline (its agent's own probes
serve) and later runs have the earlier runs' probes. ``--batches`` batches run back
to back and every one is reported, with the load average before each run and how many
sessions per run were left out for drift. Writes bench/results/measure_repeatability.json.

    python -m bench.measure_repeatability [--runs 5] [--batches 3]
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.common import conv_model, hwnas, local_config, machine, write

MODELS = {"a.onnx (conv3x3 32->32 @56)": (32, 32, 56, 1), "b.onnx (conv3x3 16->64 @28)": (16, 64, 28, 2)}
TARGET = 0.10


def batch(runs: int) -> dict[str, Any]:
    """``runs`` separate `hwnas measure` runs of the models in one fresh workspace."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = [conv_model(tmp / name.split()[0], cin, cout, size, seed=seed)
                 for name, (cin, cout, size, seed) in MODELS.items()]
        config = local_config(tmp)
        medians: dict[str, list[float]] = {name: [] for name in MODELS}
        left_out: dict[str, list[int]] = {name: [] for name in MODELS}
        loads = []
        for _ in range(runs):
            loads.append(os.getloadavg()[0])
            _, rows = hwnas("measure", "--config", str(config), "--device", "local", "--onnx", *map(str, paths))
            for name, row in zip(MODELS, rows):
                medians[name].append(row["latency_ms"])
                left_out[name].append(row["sessions_left_out_for_drift"])
    result: dict[str, Any] = {"runs": runs, "models": {}, "loadavg_1min_before_each_run": loads, "machine": machine()}
    for name, values in medians.items():
        spread = max(values) / min(values) - 1
        result["models"][name] = {"medians_ms": values, "spread": spread, "target": TARGET, "met": spread < TARGET,
                                  "sessions_left_out_for_drift": left_out[name]}
        print(f"{name}: medians {', '.join(f'{v:.4f}' for v in values)} ms -> spread {spread:.1%} "
              f"({'under' if spread < TARGET else 'OVER'} the 10% target; sessions left out for drift: "
              f"{left_out[name]})")
    print(f"load average before runs: {', '.join(f'{x:.2f}' for x in loads)}")
    return result


def main() -> None:
    """Run the batches and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=3)
    args = parser.parse_args()
    batches = []
    for i in range(args.batches):
        print(f"batch {i + 1} of {args.batches}")
        batches.append(batch(args.runs))
    worst = {name: max(b["models"][name]["spread"] for b in batches) for name in MODELS}
    met = sum(b["models"][name]["met"] for b in batches for name in MODELS)
    print(f"worst spread: {', '.join(f'{name} {v:.1%}' for name, v in worst.items())}; "
          f"under the target in {met} of {len(batches) * len(MODELS)} model-batches")
    result = {"description": f"{args.batches} batches of {args.runs} hwnas measure runs, every batch kept",
              "batches": batches, "worst_spread": worst}
    print(f"written to {write('measure_repeatability', result)}")


if __name__ == "__main__":
    main()
