"""Overhead of driving the agent over SSH on loopback: empty-request round trip, and measurement wall time.

1. Round trip of an empty request (``ping``) over a real sshd on 127.0.0.1,
   paramiko client, agent on one exec channel: ``--batches`` batches of
   ``--pings`` pings; the figure is the median over all pings, the noise the
   spread of the batch medians and p10/p90. Target: under 2 ms.
2. ``hwnas measure`` of ``--models`` small conv models on the SSH device (one
   process, as a user runs it: connect, deploy, hello, SFTP uploads, measuring,
   storing), wall time divided by the on-device work (sum of the agent's phase
   clock: drift probes, warm-up, calibration, timed rounds, session creation).
   Target: at most 1.25. Also reported: wall / timed rounds only, and the
   steady-state figure without connect + deploy + hello.

Writes bench/results/ssh_overhead.json.

    python -m bench.ssh_overhead [--models 200] [--pings 200] [--batches 5]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench.common import hwnas, machine, small_models, work_split, write
from hwnas import config
from hwnas.session import agent_session
from hwnas.store import Store
from tests import sshd_harness

MEASUREMENT = "{sessions: 1, timeout_s: 120}"  # the default protocol otherwise (warm-up 50 ms, 10 x 20 ms rounds)


def ping_figures(cfg: Path, pings: int, batches: int) -> dict:
    """Median/p10/p90 of empty-request round trips over SSH, per batch and overall (ms), and hello time."""
    registry = config.load(cfg)
    with agent_session(registry, registry.device("loop")) as client:
        for _ in range(20):  # warm the path (JIT-free, but caches and TCP windows)
            client.ping()
        rounds = [[client.ping() for _ in range(pings)] for _ in range(batches)]
    flat = sorted(t for batch in rounds for t in batch)
    deciles = statistics.quantiles(flat, n=10)
    return {"median_ms": statistics.median(flat), "p10_ms": deciles[0], "p90_ms": deciles[-1],
            "batch_medians_ms": [statistics.median(b) for b in rounds], "pings": len(flat), "raw_ms": rounds}


def main() -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument("--batches", type=int, default=5)
    args = parser.parse_args()
    reason = sshd_harness.sshd_missing()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    with tempfile.TemporaryDirectory() as tmp, sshd_harness.sshd(Path(tmp) / "sshd") as server:
        tmp = Path(tmp)
        cfg = tmp / "hardware.yaml"
        cfg.write_text(f"workspace: {tmp / 'ws'}\ndevices:\n"
                       + sshd_harness.ssh_device_yaml("loop", server, tmp / "remote", MEASUREMENT))
        before = machine()
        rtt = ping_figures(cfg, args.pings, args.batches)
        models = small_models(tmp / "models", args.models)
        wall, rows = hwnas("measure", "--config", str(cfg), "--device", "loop", "--onnx", *map(str, models))
        stored = Store(tmp / "ws").select("loop")
    assert len(rows) == len(stored) == args.models, "every model must be measured once"
    timed, phases, on_device = work_split(stored)
    first = min(m.created_utc for m in stored)
    result = {
        "rtt": {k: v for k, v in rtt.items() if k != "raw_ms"}, "rtt_raw_ms": rtt["raw_ms"],
        "rtt_target_ms": 2.0,
        "measure": {"models": len(rows), "measurement": MEASUREMENT, "wall_s": wall, "on_device_s": on_device,
                    "ratio_wall_to_on_device": wall / on_device, "timed_rounds_s": timed,
                    "ratio_wall_to_timed_rounds": wall / timed, "on_device_phases_s": phases,
                    "host_overhead_s": wall - on_device, "first_row_utc": first, "target_ratio": 1.25},
        "machine": before,
    }
    path = write("ssh_overhead", result)
    r, m = result["rtt"], result["measure"]
    print(f"empty request over SSH (loopback): median {r['median_ms']:.3f} ms over {r['pings']} pings "
          f"(p10 {r['p10_ms']:.3f}, p90 {r['p90_ms']:.3f}; batch medians "
          + ", ".join(f"{x:.3f}" for x in r["batch_medians_ms"]) + ") — target < 2 ms")
    print(f"{m['models']} models over SSH: wall {wall:.1f} s, on-device work {on_device:.1f} s -> "
          f"wall/on-device = {m['ratio_wall_to_on_device']:.3f} (target <= 1.25); "
          f"wall/timed rounds = {m['ratio_wall_to_timed_rounds']:.2f}")
    print("on-device phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
          + f"; host-side overhead {m['host_overhead_s']:.1f} s (process start, connect, deploy check, hello, "
          "SFTP uploads, round trips, store)")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
