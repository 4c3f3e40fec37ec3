"""``hwnas demo``: the first run — check a device, sweep the default operators, print what was measured."""
from __future__ import annotations

import argparse
import logging

from hwnas import fleet, operators
from hwnas.cli import add_common
from hwnas.cli.common import registry, run_id, store
from hwnas.cli.devices import check_one
from hwnas.errors import DeviceFailure
from hwnas.measure import Item, check_onnx, measure_items
from hwnas.output import print_json, print_table
from hwnas.progress import bar, window_sessions

log = logging.getLogger("hwnas")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` command."""
    p = sub.add_parser("demo", help="check a device and measure a small default operator set on it")
    p.add_argument("--device", default="local", metavar="NAME", help="device to use (default: local)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the device, measure every default operator on it, print a table and the store path."""
    reg = registry(args)
    device = reg.device(args.device)
    report = check_one(reg, device, pings=10)
    if not report["reachable"]:
        raise DeviceFailure(report["error"])
    facts = report["facts"]
    log.info("device %s: %s, %s cores, %s %s, agent %s, round trip %.2f ms", device.name, facts["cpu"],
             facts["cores"], device.backend, report.get("runtime_version"), report["agent"], report["rtt_ms"])
    for reason in report.get("reasons", []):
        log.warning("hwnas: warning: %s", reason)
    out_dir = reg.workspace / "onnx" / "operators"
    items = []
    for name in operators.DEFAULT_OPERATORS:
        path = operators.build(name, out_dir)
        sha = check_onnx(path)
        items.append(Item(path=path, sha256=sha, signature=f"op:{name}:{sha[:16]}", source=name))
    st = store(reg)
    progress = bar(len(items), f"measuring on {device.name}", quiet=args.json, unit="op")
    measured = {}

    def done(item, m):
        measured[item.signature] = m
        progress.update(1)

    rid = run_id()
    outcome = fleet.run(reg, [device], lambda d, client: measure_items(d, client, st, items, rid, on_done=done,
                                                                    on_session=window_sessions(progress)),
                        store=st)[0]
    progress.close()
    if outcome.error:
        raise outcome.error
    rows = [{"operator": item.source, "device": m.device, "latency_ms": m.latency_ms,
             "session_spread": m.session_spread, "cov": m.stats["cov"], "sessions": m.sessions,
             "valid": m.valid, "measurement_id": m.id}
            for item in items if (m := measured.get(item.signature))]
    if args.json:
        print_json({"device": device.name, "store": str(st.path), "results": rows})
        return 0
    print_table(["operator", "latency_ms", "between sessions", "within rounds (CoV)", "valid"],
                [[r["operator"], r["latency_ms"], f"{r['session_spread']:.1%}", f"{r['cov']:.1%}",
                  "yes" if r["valid"] else "no"] for r in rows])
    print(f"\n{len(rows)} operators measured on {device.name} ({device.backend}, "
          f"{rows[0]['sessions']} sessions each); stored in {st.path}")
    return 0
