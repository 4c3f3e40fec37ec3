"""Wall time of `hwnas measure` for 50 small models on `local`, divided by the on-device timed work.

"Timed work" is what the measurement protocol times: for every session, calls per
round × the round times kept. The agent's own phase clock splits the rest
(session creation, warm-up, calibration, drift probes); the remainder is host-side
overhead (process start, imports, model validation, protocol round trips).
Writes bench/results/measure_overhead.json.

    python -m bench.measure_overhead [--models 50]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import hwnas, local_config, machine, small_models, work_split, write
from hwnas.store import Store


def main() -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = small_models(tmp / "models", args.models)
        config = local_config(tmp)
        before = machine()
        wall, rows = hwnas("measure", "--config", str(config), "--device", "local",
                           "--onnx", *map(str, models))
        stored = Store(tmp / "ws").select("local")
    timed, phases, on_device = work_split(stored)
    result = {
        "models": len(rows), "sessions_per_model": stored[0].sessions, "wall_s": wall,
        "timed_work_s": timed, "ratio_wall_to_timed": wall / timed,
        "on_device_busy_s": on_device, "ratio_wall_to_on_device": wall / on_device,
        "on_device_phases_s": phases, "host_overhead_s": wall - on_device,
        "median_session_spread": sorted(m.session_spread for m in stored)[len(stored) // 2],
        "machine": before,
    }
    path = write("measure_overhead", result)
    print(f"{len(rows)} models x {result['sessions_per_model']} sessions: wall {wall:.1f} s, "
          f"timed work {timed:.1f} s -> wall/timed = {result['ratio_wall_to_timed']:.2f}")
    print("on-device phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
          + f"; host-side overhead {result['host_overhead_s']:.1f} s")
    print(f"wall / all on-device work = {result['ratio_wall_to_on_device']:.2f}; "
          f"median spread between sessions {result['median_session_spread']:.1%}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
