"""How steady is this machine's speed on short timescales? Rounds of one small network, per CPU.

One ONNX Runtime session (1 thread) of a digits network runs rounds of ``--runs`` calls
(about 25 ms a round for the default network), alternating between the CPUs the process
may use (pinned with ``sched_setaffinity``) for ``--seconds``. Per CPU: the round times'
p10 / median / p90, their ratio p90 / p10, and the share of rounds slower than 1.25×
the CPU's p10. A steady machine gives a ratio near 1; the figure explains why two
measurements of one small model, minutes or seconds apart, can disagree by tens of
percent (see the README's zoo and any-ONNX sections).

Then, pinned to the first CPU for as long again, two networks (``--arch`` and ``--other``)
alternate round by round. Per network and for their ratio: the rounds' coefficient of
variation, and that of the medians of blocks of 10 consecutive rounds (one short measurement).
When the machine's slow moments hit both networks alike, the ratio stays steady while each
network's own time does not: what a relative figure (a ranking, a search) can rely on here and
an absolute one (predicted vs re-measured latency) cannot. Writes
``bench/results/speed_modes.json``.

    python -m bench.speed_modes [--arch ARCH] [--other ARCH] [--runs 300] [--seconds 40]
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
    p.add_argument("--other", default="w1.0-r16-d222-k333333-e222222", help="the second network of the pair")
    p.add_argument("--runs", type=int, default=300, help="calls per round")
    p.add_argument("--seconds", type=float, default=40.0)
    args = p.parse_args(argv)
    where = machine()
    cpus = sorted(os.sched_getaffinity(0))
    session, feed = _session(ort, args.arch)
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
    paired = _paired(ort, (args.arch, args.other), args.runs, args.seconds, cpus[0], cpus)
    result = {"machine": where, "loadavg_after": os.getloadavg(), "arch": args.arch, "runs_per_round": args.runs,
              "seconds": args.seconds, "per_cpu": per_cpu, "paired": paired}
    out = write("speed_modes", result)
    for cpu, r in per_cpu.items():
        print(f"cpu {cpu}: {r['rounds']} rounds of {args.runs} calls, p10 {r['p10_ms']:.4f} ms, median "
              f"{r['median_ms']:.4f}, p90 {r['p90_ms']:.4f} (p90/p10 {r['p90_over_p10']:.2f}); "
              f"{r['share_slower_than_1.25x_p10']:.0%} of rounds > {SLOW}x p10")
    for name, r in paired["series"].items():
        print(f"paired, cpu {paired['cpu']}: {name}: round CV {r['round_cv']:.1%}, "
              f"10-round median CV {r['block10_median_cv']:.1%}")
    print(f"load average {where['loadavg_before']} -> {out}", file=sys.stderr)
    return 0


def _session(ort, arch: str):
    """A 1-thread CPU session of a digits network and its seeded feed."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.onnx"
        onnx.save(DigitsSpace().onnx_model(arch), str(path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, {i.name: np.random.default_rng(0).random(i.shape, dtype=np.float32) for i in session.get_inputs()}


def _spread(t: np.ndarray) -> dict[str, float]:
    blocks = [np.median(t[i:i + 10]) for i in range(0, len(t) - 9, 10)]
    return {"round_cv": float(np.std(t) / np.mean(t)), "block10_median_cv": float(np.std(blocks) / np.mean(blocks)),
            "p90_over_p10": float(np.percentile(t, 90) / np.percentile(t, 10))}


def _paired(ort, archs: tuple[str, str], runs: int, seconds: float, cpu: int, cpus: list[int]) -> dict:
    """Two networks alternating round by round on one CPU: each one's spread and their ratio's."""
    pair = [_session(ort, arch) for arch in archs]
    times: list[list[float]] = [[], []]
    os.sched_setaffinity(0, {cpu})
    try:
        for session, feed in pair:
            for _ in range(200):
                session.run(None, feed)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for (session, feed), out in zip(pair, times):
                start = time.perf_counter()
                for _ in range(runs):
                    session.run(None, feed)
                out.append((time.perf_counter() - start) / runs * 1e3)
    finally:
        os.sched_setaffinity(0, set(cpus))
    a, b = (np.asarray(t) for t in times)
    return {"cpu": cpu, "archs": list(archs), "rounds": len(a), "median_ms": [float(np.median(a)), float(np.median(b))],
            "series": {archs[0]: _spread(a), archs[1]: _spread(b), "ratio": _spread(a / b)},
            "correlation": float(np.corrcoef(a, b)[0, 1])}


if __name__ == "__main__":
    sys.exit(main())
