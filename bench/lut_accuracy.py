"""LUT accuracy: whole networks measured on a device vs. the sum of their measured blocks.

For each space (``mbv3`` at resolution 224, ``nasbench201``) this runs, through the
CLI and resumably (a re-run reuses everything stored):

1. ``hwnas profile --what blocks`` — the block LUT;
2. ``hwnas profile --what networks`` twice — a calibration set (``--calib`` networks,
   seed 101) and a disjoint evaluation set (``--num`` networks, seed 202);

then fits the additive overhead on the calibration set only (mode chosen by
cross-validated RMSPE on that set) and scores the evaluation set: raw LUT sum, and
sum + calibrated overhead (share within ±5% / ±10%, RMSPE, Kendall τ from
``cost_models.metrics``). The noise floor is the session spread of the measured
networks ((max - min) / median of their per-session medians). Writes
``bench/results/lut_accuracy.json``.

    python -m bench.lut_accuracy [--config hardware.yaml] [--device local] [--num 100] [--calib 40]
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from bench.common import hwnas, machine, write
from cost_models.metrics import summary
from hwnas import config, lut_store, spaces
from hwnas.store import Store
from hwnas.sweep import network_signature, sample_archs


def _score(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {k: float(v) for k, v in summary(y, pred).items()}


def evaluate(cfg: str, device_name: str, space_name: str, num: int, calib: int) -> dict[str, Any]:
    """Profile (resumably), calibrate on one set, score on another; returns the figures."""
    reg = config.load(cfg)
    device = reg.device(device_name)
    space = spaces.get(space_name)
    start = time.perf_counter()
    base = ["profile", "--config", cfg, "--device", device_name, "--space", space_name]
    res = ["--resolution", "224"] if space_name == "mbv3" else []
    hwnas(*base, "--what", "blocks", *res)
    hwnas(*base, "--what", "networks", "--num", str(calib), "--seed", "101", *res)
    hwnas(*base, "--what", "networks", "--num", str(num), "--seed", "202", *res)
    wall = time.perf_counter() - start

    store = Store(reg.workspace)
    table = lut_store.table(store, device.name, device.backend, space)
    predictor = table.predictor(space.layout())
    eval_archs = sample_archs(space, num, 202, [224] if space_name == "mbv3" else None)
    calib_archs = [a for a in sample_archs(space, calib, 101, [224] if space_name == "mbv3" else None)
                   if a not in set(eval_archs)]

    def measured(archs: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = [store.latest(device.name, device.backend, network_signature(space.name, a)) for a in archs]
        y = np.array([m.latency_ms for m in rows])
        spread = np.array([m.session_spread for m in rows])
        return y, predictor.raw(space.encode(archs)), spread

    y_cal, raw_cal, _ = measured(calib_archs)
    y, raw, spread = measured(eval_archs)
    overhead, cv_scores = lut_store.choose_overhead(raw_cal, y_cal)
    fits = {mode: lut_store.fit_overhead(raw_cal, y_cal, mode) for mode in ("offset", "affine")}
    result = {
        "space": space_name, "device": device.name, "backend": device.backend,
        "runtime_version": table.meta.get("runtime_version"), "networks": len(y), "calibration_networks": len(y_cal),
        "lut_entries": len(table), "baseline_subtracted_ms": predictor.baseline_ms,
        "raw_sum": _score(y, raw),
        "calibrated": {"mode": overhead.mode, "a": overhead.a, "b": overhead.b, **_score(y, overhead.apply(raw))},
        "calibration_cv_rmspe_by_mode": cv_scores,
        "calibrated_by_mode": {m: {"a": f.a, "b": f.b, **_score(y, f.apply(raw))} for m, f in fits.items()},
        "noise_floor": {"median_session_spread": float(np.median(spread)),
                        "p90_session_spread": float(np.percentile(spread, 90)),
                        "max_session_spread": float(spread.max())},
        "measured_ms": {"min": float(y.min()), "median": float(np.median(y)), "max": float(y.max())},
        "raw": {"archs": eval_archs, "measured_ms": y.tolist(), "lut_sum_ms": raw.tolist(),
                "session_spread": spread.tolist()},
        "profile_wall_s": wall,
    }
    return result


def main() -> None:
    """Run the bench for both spaces and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="hardware.yaml")
    parser.add_argument("--device", default="local")
    parser.add_argument("--num", type=int, default=100, help="evaluation networks per space")
    parser.add_argument("--calib", type=int, default=40, help="calibration networks per space")
    parser.add_argument("--space", action="append", choices=spaces.names(), help="default: both")
    args = parser.parse_args()
    out: dict[str, Any] = {"config": {"device": args.device, "num": args.num, "calib": args.calib,
                                      "mbv3_resolution": 224, "target": "calibrated within ±10% for >= 90%"},
                           "machine": machine(), "spaces": {}}
    for name in args.space or ["mbv3", "nasbench201"]:
        r = evaluate(args.config, args.device, name, args.num, args.calib)
        out["spaces"][name] = r
        raw, cal, noise = r["raw_sum"], r["calibrated"], r["noise_floor"]
        print(f"{name}: {r['networks']} networks ({r['measured_ms']['min']:.3g}..{r['measured_ms']['max']:.3g} ms), "
              f"LUT of {r['lut_entries']} entries, calibrated on {r['calibration_networks']} others")
        print(f"  raw sum     : ±5% {raw['within_5']:.0%}  ±10% {raw['within_10']:.0%}  "
              f"RMSPE {raw['rmspe']:.1%}  Kendall τ {raw['kendall_tau']:.3f}")
        print(f"  calibrated  : ±5% {cal['within_5']:.0%}  ±10% {cal['within_10']:.0%}  "
              f"RMSPE {cal['rmspe']:.1%}  Kendall τ {cal['kendall_tau']:.3f}  "
              f"({cal['mode']}: {cal['a']:.3f}·sum + {cal['b']:.3f} ms)")
        print(f"  noise floor : session spread median {noise['median_session_spread']:.1%}, "
              f"p90 {noise['p90_session_spread']:.1%}")
    print(f"written to {write('lut_accuracy', out)}")


if __name__ == "__main__":
    main()
