"""Which reference kernel witnesses what slows the measured models? numpy matmul vs a conv in ONNX Runtime.

In one process (as in the agent), two conv models are measured over and over with the
measurement protocol (``device_agents.timing.measure``), the drift probe timed around
every session. For each probe kind: how far its probes stray from their median, the
rank correlation between a session's probe (the slower of before/after) and that
session's deviation from the model's median, and how many sessions a 5% / 10%
threshold would flag. Writes bench/results/drift_probe.json.

    python -m bench.drift_probe [--seconds 45]
"""
from __future__ import annotations

import os

# as in the agent (device_agents/__main__.py): BLAS single-threaded, fixed before numpy loads
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from bench.common import machine, write  # noqa: E402
from cost_models.metrics import spearman_rho  # noqa: E402
from device_agents import ort_runner, timing  # noqa: E402
from hwnas.measure import PROBE_MODEL  # noqa: E402
from hwnas.operators import conv_relu  # noqa: E402

SETTINGS = {"threads": 1, "warmup_ms": 50, "repeat": 10, "min_repeat_ms": 20, "drift_threshold": 1e9}
MODELS = {"conv3x3 32->32 @56": (32, 32, 56, 1), "conv3x3 16->64 @28": (16, 64, 28, 2)}


def run_probe(kind: str, models: dict[str, Path], probe_path: Path, seconds: float) -> dict[str, Any]:
    """Measure the models round-robin for ``seconds`` with one probe kind; summarise."""
    if kind == "numpy":
        reference = timing.ReferenceKernel()
    else:
        run, _ = ort_runner.runner(str(probe_path), SETTINGS)
        reference = timing.ReferenceKernel(run, "onnxruntime", calls=10)
    sessions: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for name, path in models.items():
            run, _ = ort_runner.runner(str(path), SETTINGS)
            r = timing.measure(run, SETTINGS, reference)
            sessions[name].append((r["median_ms"], max(r["reference_ms"])))
    base = float(np.median(reference.history))
    out: dict[str, Any] = {"probe_median_ms": base, "models": {}}
    for name, rows in sessions.items():
        medians, probes = (np.array(v) for v in zip(*rows))
        dev, ratio = medians / np.median(medians), probes / base
        out["models"][name] = {
            "sessions": len(rows),
            "session_deviation_p50_p95_max": [float(np.median(dev)), float(np.percentile(dev, 95)), float(dev.max())],
            "probe_ratio_p50_p95_max": [float(np.median(ratio)), float(np.percentile(ratio, 95)), float(ratio.max())],
            "spearman_probe_vs_deviation": spearman_rho(dev, ratio),
            "flagged_at_5pct": float(np.mean(ratio > 1.05)), "flagged_at_10pct": float(np.mean(ratio > 1.10)),
        }
    return out


def main() -> None:
    """Run both probe kinds and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0)
    args = parser.parse_args()
    result: dict[str, Any] = {"seconds_per_probe_kind": args.seconds, "machine": machine(), "probes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = {name: conv_relu(tmp / f"m{i}.onnx", *spec) for i, (name, spec) in enumerate(MODELS.items())}
        probe = conv_relu(tmp / "probe.onnx", *PROBE_MODEL)
        for kind in ("numpy", "onnxruntime"):
            r = result["probes"][kind] = run_probe(kind, models, probe, args.seconds)
            for name, m in r["models"].items():
                print(f"{kind:>11} probe ({r['probe_median_ms'] * 1000:.1f} µs), {name}: {m['sessions']} sessions, "
                      f"probe p95 {m['probe_ratio_p50_p95_max'][1]:.2f}x / max {m['probe_ratio_p50_p95_max'][2]:.2f}x "
                      f"of its median, model p95 {m['session_deviation_p50_p95_max'][1]:.3f}x; Spearman "
                      f"{m['spearman_probe_vs_deviation']:.2f}; flagged {m['flagged_at_5pct']:.0%} at 5%, "
                      f"{m['flagged_at_10pct']:.0%} at 10%")
    print(f"written to {write('drift_probe', result)}")


if __name__ == "__main__":
    main()
