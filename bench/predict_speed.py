"""``hwnas predict`` speed: one 50-layer CNN, after the predictor is loaded (target ≤ 50 ms).

Builds a ResNet-50-shaped network (bottleneck blocks 3-4-6-3: 49 convolutions and the
classifier, 224x224) with :mod:`bench.corpus_models`, loads the device's kernel
predictor once, then times what ``hwnas predict`` does per model — validate the file,
load it, split it into kernels with the device's rules, predict every kernel, build the
result — 30 times (median, p90), and separately split + predict of the already loaded graph
(the 100 MB file's read and check are most of the first figure). The end-to-end CLI (a fresh Python process that also
imports the libraries and loads the predictor) is timed 3 times for reference. Records
the load average (the machine is shared). Writes ``bench/results/predict_speed.json``.

    python -m bench.predict_speed [--device local] [--config hardware.yaml]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine, write

TARGET_MS = 50.0


def main(argv: list[str] | None = None) -> int:
    """Run the bench; prints the figures and writes the results file."""
    import onnx

    from bench.corpus_models import export
    from cost_models.onnx_kernels import light
    from hwnas import config
    from hwnas.predict import load_predictor, predict_file, read_cnn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="local")
    parser.add_argument("--config", default="hardware.yaml")
    args = parser.parse_args(argv)
    where = machine()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet50.onnx"
        export("resnet", {"bottleneck": True, "width": 64, "depths": [3, 4, 6, 3], "k": 3, "resolution": 224},
               str(path))
        reg = config.load(args.config)
        start = time.perf_counter()
        predictor = load_predictor(reg, args.device)
        load_ms = (time.perf_counter() - start) * 1e3
        times, graph_times, row = [], [], None
        for _ in range(30):
            start = time.perf_counter()
            row = predict_file(str(path), read_cnn(path, predictor), predictor, args.device)
            times.append((time.perf_counter() - start) * 1e3)
        graph = light(onnx.load(str(path)))
        for _ in range(30):  # the same without reading and checking the 100 MB file
            start = time.perf_counter()
            predictor.predict_kernels(predictor.kernels(graph))
            graph_times.append((time.perf_counter() - start) * 1e3)
        cli = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "hwnas.cli", "predict", "--device", args.device, "--onnx", str(path),
                            "--config", args.config, "--json"], check=True, capture_output=True)
            cli.append((time.perf_counter() - start) * 1e3)
        convs = sum(1 for k in read_cnn(path, predictor)[0] if "conv" in k.type)
        path_mb = path.stat().st_size / 1e6
    result = {"machine": where, "loadavg_after": os.getloadavg(), "model": "resnet50-shaped, 224x224",
              "conv_kernels": convs, "kernels": row["kernels"], "predicted_ms": row["latency_ms"],
              "predictor_load_ms": load_ms, "per_model_ms": {"median": float(np.median(times)),
                                                             "p10": float(np.percentile(times, 10)),
                                                             "p90": float(np.percentile(times, 90)),
                                                             "runs": len(times)},
              "split_and_predict_loaded_graph_ms": {"median": float(np.median(graph_times)),
                                                    "p90": float(np.percentile(graph_times, 90))},
              "cli_end_to_end_ms": cli, "target_ms": TARGET_MS,
              "met_with_file_read": bool(np.median(times) <= TARGET_MS),
              "met_loaded_graph": bool(np.median(graph_times) <= TARGET_MS),
              "note": "2-core machine; its load before and after is in machine.loadavg_before and loadavg_after"}
    out = write("predict_speed", result)
    print(f"predict, 50-layer CNN ({convs} conv kernels, {row['kernels']} kernels): median "
          f"{result['per_model_ms']['median']:.1f} ms (p10 {result['per_model_ms']['p10']:.1f}, p90 "
          f"{result['per_model_ms']['p90']:.1f}; target ≤ {TARGET_MS:.0f} ms) including reading and checking the "
          f"{path_mb:.0f} MB file; split + predict of the loaded graph median "
          f"{result['split_and_predict_loaded_graph_ms']['median']:.1f} ms; predictor load {load_ms:.0f} ms; "
          f"CLI end to end {np.median(cli):.0f} ms; load average {where['loadavg_before']} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
