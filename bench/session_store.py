"""What storing every session as it arrives costs: wall time of ``Store.add_session`` (one
SQLite transaction; WAL, synchronous as the store sets it, or ``--synchronous FULL`` to compare)
and of the combined ``Store.add`` that consumes 3 sessions, on a store in a temp dir on this
machine's disk. Writes bench/results/session_store.json (or session_store_<mode>.json).

    python -m bench.session_store [--items 100] [--rounds 5] [--synchronous FULL]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import machine, write
from hwnas.store import Measurement, Store


def _reply(i: int) -> dict:
    """An agent reply of the size a real session has (10 rounds, settings, phases)."""
    rounds = [0.05 + 0.001 * (i % 7)] * 10
    return {"median_ms": rounds[0], "mean_ms": rounds[0], "std_ms": 0.0, "p10_ms": rounds[0], "p90_ms": rounds[0],
            "cov": 0.0, "rounds_ms": rounds, "number": 400, "attempts": 1, "drift": False, "valid": True,
            "warnings": [], "reference_ms": [0.027, 0.027], "reference_kernel": "onnxruntime:0123456789abcdef",
            "settings": {"warmup_ms": 50.0, "repeat": 10, "min_repeat_ms": 20.0},
            "phase_ms": {"reference": 1.0, "warmup": 50.0, "calibrate": 30.0, "rounds": 200.0}}


def _round(folder: Path, items: int, synchronous: str | None) -> tuple[list[float], list[float]]:
    store = Store(folder)
    if synchronous:
        store._db.execute(f"PRAGMA synchronous={synchronous}")  # a bench-only override of the store's choice
    session_ms, add_ms = [], []
    for i in range(items):
        ids = []
        for _ in range(3):
            t = time.perf_counter()
            ids.append(store.add_session("bench", "local", "onnxruntime", "p", "ab" * 32, f"s{i}", _reply(i)))
            session_ms.append((time.perf_counter() - t) * 1e3)
        m = Measurement(device="local", kind="x86_cpu", backend="onnxruntime", runtime_version="1", providers=[],
                        threads=1, affinity=None, agent_version="0", item="model", model_sha256="ab" * 32,
                        signature=f"s{i}", latency_ms=0.05, stats={"p10_ms": 0.05}, raw=[[0.05] * 10] * 3,
                        sessions=3, session_spread=0.0, valid=True)
        t = time.perf_counter()
        store.add(m, consumes=ids)
        add_ms.append((time.perf_counter() - t) * 1e3)
    store.close()
    return session_ms, add_ms


def main() -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default=None,
                        help="override the store's PRAGMA synchronous (default: keep the store's)")
    args = parser.parse_args()
    before = machine()
    start = time.perf_counter()
    medians, p90s, add_medians = [], [], []
    with tempfile.TemporaryDirectory(dir=Path.home()) as tmp:
        for r in range(args.rounds):
            session_ms, add_ms = _round(Path(tmp) / f"ws{r}", args.items, args.synchronous)
            medians.append(statistics.median(session_ms))
            p90s.append(statistics.quantiles(session_ms, n=10)[-1])
            add_medians.append(statistics.median(add_ms))
    result = {"synchronous": args.synchronous or "store default (NORMAL)", "items": args.items,
              "sessions_per_item": 3, "rounds": args.rounds,
              "add_session_median_ms_per_round": medians, "add_session_p90_ms_per_round": p90s,
              "combined_add_median_ms_per_round": add_medians, "wall_s": time.perf_counter() - start,
              "machine": before, "machine_after": machine()}
    path = write("session_store" + (f"_{args.synchronous.lower()}" if args.synchronous else ""), result)
    print(f"add_session: median {statistics.median(medians):.2f} ms (rounds {min(medians):.2f}-{max(medians):.2f}), "
          f"p90 {statistics.median(p90s):.2f} ms; combined add consuming 3 sessions: median "
          f"{statistics.median(add_medians):.2f} ms (rounds {min(add_medians):.2f}-{max(add_medians):.2f}); "
          f"load average before {before['loadavg_before']}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
