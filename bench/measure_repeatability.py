"""Re-run `hwnas measure` on the same models 5 times; spread = max/min of the medians − 1.

The DESIGN target: under 10% on an idle machine. Each run is a fresh `hwnas measure`
process (fresh agent, fresh sessions); the load average is recorded before each run.
Writes bench/results/measure_repeatability.json.

    python -m bench.measure_repeatability [--runs 5]
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench.common import conv_model, hwnas, local_config, machine, write


def main() -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = {"a.onnx (conv3x3 32->32 @56)": conv_model(tmp / "a.onnx", 32, 32, 56, seed=1),
                  "b.onnx (conv3x3 16->64 @28)": conv_model(tmp / "b.onnx", 16, 64, 28, seed=2)}
        config = local_config(tmp)
        medians: dict[str, list[float]] = {name: [] for name in models}
        loads = []
        for _ in range(args.runs):
            loads.append(os.getloadavg()[0])
            _, rows = hwnas("measure", "--config", str(config), "--device", "local",
                            "--onnx", *map(str, models.values()))
            for name, row in zip(models, rows):
                medians[name].append(row["latency_ms"])
    result = {"runs": args.runs, "models": {}, "loadavg_1min_before_each_run": loads, "machine": machine()}
    for name, values in medians.items():
        spread = max(values) / min(values) - 1
        result["models"][name] = {"medians_ms": values, "spread": spread, "target": 0.10, "met": spread < 0.10}
        print(f"{name}: medians {', '.join(f'{v:.4f}' for v in values)} ms -> spread {spread:.1%} "
              f"({'under' if spread < 0.10 else 'OVER'} the 10% target)")
    print(f"load average before runs: {', '.join(f'{x:.2f}' for x in loads)}")
    print(f"written to {write('measure_repeatability', result)}")


if __name__ == "__main__":
    main()
