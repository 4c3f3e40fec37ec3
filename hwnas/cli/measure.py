"""``hwnas measure``: real on-device latency of ONNX models, stored with provenance."""
from __future__ import annotations

import argparse
import logging
from typing import Any

from hwnas import backends, fleet
from hwnas.cli import add_common
from hwnas.cli.common import devices as named_devices
from hwnas.cli.common import registry, run_id, store
from hwnas.cli.common import sessions as checked_sessions
from hwnas.errors import BadInput
from hwnas.measure import device_settings, measure_items, model_item, parse_input_shapes, request_key
from hwnas.output import print_json, print_table
from hwnas.progress import bar, window_sessions
from hwnas.speed import Normaliser

log = logging.getLogger("hwnas")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``measure`` command."""
    p = sub.add_parser("measure", help="measure ONNX models on devices (timed on the device)")
    p.add_argument("--device", action="append", required=True, metavar="NAME", help="device (repeatable)")
    p.add_argument("--onnx", nargs="+", required=True, metavar="FILE", help="ONNX model files")
    p.add_argument("--sessions", type=int, default=None,
                   help="fresh runtime sessions per model (default: the device's measurement.sessions)")
    p.add_argument("--resume", action="store_true",
                   help="continue the newest interrupted run of the same models and --sessions: keep what it "
                        "stored (results and single sessions), measure only the rest")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D1,D2,...",
                   help="shape of an input with dynamic dimensions, e.g. input=1,3,224,224 (repeatable; "
                        "without it dynamic dimensions are 1 and the result is marked not valid)")
    add_common(p)
    p.set_defaults(func=run)


def result_row(item, m, normaliser: Normaliser) -> dict[str, Any]:
    """The JSON object printed for one measured model (``normalised_ms``: at the device's reference
    speed, None until the device has one or without round probes; see :mod:`hwnas.speed`)."""
    return {"model": item.source, "device": m.device, "latency_ms": m.latency_ms,
            "normalised_ms": normaliser.normalised_ms(m),
            "backend": m.backend, "session_spread": m.session_spread, "cov": m.stats["cov"],
            "p10_ms": m.stats["p10_ms"], "p90_ms": m.stats["p90_ms"], "sessions": m.sessions,
            "sessions_left_out_for_drift": len(m.stats.get("drifted_session_medians_ms", [])),
            "valid": m.valid, "warnings": m.warnings, "input_shapes": m.stats.get("input_shapes"),
            "sha256": m.model_sha256, "measurement_id": m.id, "emulated": bool(m.stats.get("emulated")),
            **{k: m.stats[k] for k in backends.get(m.backend).RESULT_FACTS if k in m.stats}}


def _run(st, items, sessions: int | None, shapes: dict[str, list[int]], resume: bool) -> str:
    """The run id: with ``resume``, the newest run of the same models (same order), --sessions and
    --input-shape, else a new run (its sessions and results are stored under it, so it can be resumed)."""
    import hashlib

    what = repr(([item.sha256 for item in items], sessions, sorted(shapes.items())))
    digest = hashlib.sha256(what.encode()).hexdigest()
    if resume:
        found = st.latest_run("measure", digest)
        if found:
            log.info("resuming run %s: what it stored is kept, the rest is measured", found[:12])
            return found
        log.info("no earlier run of these models to resume; measuring them all")
    rid = run_id()
    st.start_run(rid, "measure", digest)
    return rid


def run(args: argparse.Namespace) -> int:
    """Validate every model first (exit 2 on a bad one), then measure on each device."""
    reg = registry(args)
    devices = named_devices(reg, args.device)
    sessions = checked_sessions(args.sessions)
    items = [model_item(path) for path in args.onnx]
    shapes = parse_input_shapes(args.input_shape, items)
    other = [d.name for d in devices if d.backend != "onnxruntime"]
    if shapes and other:
        raise BadInput(f"--input-shape applies to ONNX Runtime devices; {other[0]} uses another backend "
                       "(its compiled model has fixed shapes)")
    st = store(reg)
    rid = _run(st, items, sessions, shapes, args.resume)
    bars = {d.name: bar(len(items), d.name, quiet=args.json, unit="model", position=i)
            for i, d in enumerate(devices)}

    measured: dict[str, dict[str, Any]] = {d.name: {} for d in devices}  # device -> signature -> Measurement
    for d in devices:  # what a resumed run stored before it was interrupted
        for item in items:
            m = st.by_request_key(request_key(d.name, d.backend, item, device_settings(d, shapes), rid))
            if m is not None:
                measured[d.name][item.signature] = m
                bars[d.name].update(1)

    def done(device_name: str, item, m) -> None:
        measured[device_name][item.signature] = m
        bars[device_name].update(1)

    def work(device, client):  # called again after a fault: measure_items resumes where the run left off
        measure_items(device, client, st, items, rid, sessions=sessions, input_shapes=shapes,
                      on_done=lambda item, m: done(device.name, item, m),
                      on_session=window_sessions(bars[device.name]))

    try:
        outcomes = fleet.run(reg, devices, work, store=st)
    finally:
        for progress in bars.values():
            progress.close()
    normaliser = Normaliser(st)
    rows: list[dict[str, Any]] = [result_row(item, measured[d.name][item.signature], normaliser)
                                  for d in devices for item in items if item.signature in measured[d.name]]
    worst = max((o.error.exit_code for o in outcomes if o.error), default=0)
    if args.json:
        print_json(rows)
    else:
        print_table(["model", "device", "latency_ms", "spread", "cov", "valid"],
                    [[r["model"], r["device"], r["latency_ms"], f"{r['session_spread']:.1%}",
                      f"{r['cov']:.1%}", "yes" if r["valid"] else "no"] for r in rows])
        if rows:
            print(f"\nstored in {st.path}")
    return worst
