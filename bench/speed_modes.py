"""How steady is this machine's speed on short timescales? Rounds of one small network, per CPU.

One ONNX Runtime session (1 thread) of a digits network runs rounds of ``--runs`` calls
(about 25 ms a round for the default network), alternating between the CPUs the process
may use (pinned with ``sched_setaffinity``) for ``--seconds``. Per CPU: the round times'
p10 / median / p90, their ratio p90 / p10, and the share of rounds slower than 1.25×
the CPU's p10. A steady machine gives a ratio near 1; the figure explains why two
measurements of one small model, minutes or seconds apart, can disagree by tens of
percent (see the README's zoo and any-ONNX sections). Writes
``bench/results/speed_modes.json``.

    python -m bench.speed_modes [--arch ARCH] [--runs 300] [--seconds 40]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from bench.common import machine, write
from hwnas.spaces.digits import DigitsSpace

SLOW = 1.25


def main(argv: list[str] | None = None) -> int:
    """Time the rounds and write the results JSON."""
    import onnxruntime as ort

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="w1.5-r32-d322-k5535533-e2323422")
    p.add_argument("--runs", type=int, default=300, help="calls per round")
    p.add_argument("--seconds", type=float, default=40.0)
    args = p.parse_args(argv)
    where = machine()
    cpus = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.onnx"
        onnx.save(DigitsSpace().onnx_model(args.arch), str(path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {i.name: np.random.default_rng(0).random(i.shape, dtype=np.float32) for i in session.get_inputs()}
    rounds: dict[int, list[float]] = {cpu: [] for cpu in cpus}
    end = time.monotonic() + args.seconds
    try:
        while time.monotonic() < end:
            for cpu in cpus:
                os.sched_setaffinity(0, {cpu})
                for _ in range(20):  # settle on the CPU
                    session.run(None, feed)
                start = time.perf_counter()
                for _ in range(args.runs):
                    session.run(None, feed)
                rounds[cpu].append((time.perf_counter() - start) / args.runs * 1e3)
    finally:
        os.sched_setaffinity(0, set(cpus))
    per_cpu = {}
    for cpu, times in rounds.items():
        t = np.asarray(times)
        p10, p50, p90 = np.percentile(t, [10, 50, 90])
        per_cpu[str(cpu)] = {"rounds": len(t), "p10_ms": p10, "median_ms": p50, "p90_ms": p90,
                             "p90_over_p10": p90 / p10, "share_slower_than_1.25x_p10": float(np.mean(t > SLOW * p10)),
                             "round_ms": [round(x, 5) for x in t]}
    result = {"machine": where, "loadavg_after": os.getloadavg(), "arch": args.arch, "runs_per_round": args.runs,
              "seconds": args.seconds, "per_cpu": per_cpu}
    out = write("speed_modes", result)
    for cpu, r in per_cpu.items():
        print(f"cpu {cpu}: {r['rounds']} rounds of {args.runs} calls, p10 {r['p10_ms']:.4f} ms, median "
              f"{r['median_ms']:.4f}, p90 {r['p90_ms']:.4f} (p90/p10 {r['p90_over_p10']:.2f}); "
              f"{r['share_slower_than_1.25x_p10']:.0%} of rounds > {SLOW}x p10")
    print(f"load average {where['loadavg_before']} -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
