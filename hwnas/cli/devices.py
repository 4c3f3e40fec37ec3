"""``hwnas devices list`` and ``hwnas devices check``."""
from __future__ import annotations

import argparse
import logging
import statistics
from typing import Any

from hwnas import backends, fleet
from hwnas.cli import add_common
from hwnas.cli.common import devices as pick_devices
from hwnas.cli.common import registry, store
from hwnas.errors import HwnasError
from hwnas.output import print_json, print_table
from hwnas.session import agent_session

log = logging.getLogger("hwnas")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``devices`` command group."""
    group = sub.add_parser("devices", help="list and check registered devices").add_subparsers(
        dest="devices_command", metavar="SUBCOMMAND")
    group.required = True
    p = group.add_parser("list", help="devices in hardware.yaml")
    add_common(p)
    p.set_defaults(func=list_devices)
    p = group.add_parser("check", help="connect, deploy the agent, print device facts")
    p.add_argument("names", nargs="*", metavar="NAME", help="devices to check (default: all)")
    p.add_argument("--pings", type=int, default=20, help="empty requests timed for the round trip")
    add_common(p)
    p.set_defaults(func=check_devices)


def list_devices(args: argparse.Namespace) -> int:
    """Print every registered device with its transport, runtime and stored health."""
    reg = registry(args)
    st = store(reg)
    rows = []
    for d in reg.devices:
        health = st.health(d.name)
        rows.append({"name": d.name, "kind": d.kind, "transport": d.transport.type, "backend": d.backend,
                     "threads": getattr(d.runtime, "threads", None), "tags": d.tags,
                     "healthy": None if health is None else health["healthy"]})
    if args.json:
        print_json(rows)
    else:
        print_table(["name", "kind", "transport", "backend", "threads", "healthy"],
                    [[r["name"], r["kind"], r["transport"], r["backend"], r["threads"],
                      {None: "-", True: "yes", False: "NO"}[r["healthy"]]] for r in rows])
        print(f"\nworkspace: {reg.workspace}")
    return 0


def fitness(facts: dict[str, Any]) -> list[str]:
    """Reasons a device is not fit to measure (empty when it is)."""
    reasons = []
    governors = set((facts.get("governor") or {}).values())
    if governors and governors != {"performance"}:
        reasons.append(f"CPU governor is {'/'.join(sorted(governors))}, not performance")
    load = facts.get("loadavg")
    cores = facts.get("cores") or 1
    if load and load[0] > 0.5 * cores:
        reasons.append(f"load average {load[0]:.2f} on {cores} cores: other work will disturb timings")
    return reasons


def check_one(reg, device, pings: int) -> dict[str, Any]:
    """Connect to one device, shake hands, time empty requests; a failure is reported as data."""
    report: dict[str, Any] = {"device": device.name, "kind": device.kind, "transport": device.transport.type,
                              "backend": device.backend, "reachable": False}
    try:
        with agent_session(reg, device) as client:
            rtts = [client.ping() for _ in range(max(1, pings))]
            facts = client.facts
            backend = backends.get(device.backend)
            runtime = backend.check(device, facts)
            unable = runtime.pop("unavailable")  # the device cannot run this entry's runtime: exit 1
            if not unable:
                runtime.update(backend.trial(device, client))
            reasons = unable + runtime.pop("reasons") + (runtime.get("placement") or {}).get("warnings", []) \
                + fitness(facts)
            runtime_version = runtime.pop("runtime_version", None)
            report.update(runtime)
            if unable:
                report["exit_code"] = 1
            report.update(reachable=True, agent=facts.get("agent"), facts=facts,
                          agent_dir=getattr(client.transport, "agent_dir", None),
                          runtime_version=runtime_version, rtt_ms=statistics.median(rtts),
                          fit=not reasons, reasons=reasons)
    except HwnasError as exc:
        report.update(error=str(exc), exit_code=exc.exit_code)
    return report


def check_devices(args: argparse.Namespace) -> int:
    """Check devices concurrently and print their facts; exit 1 if any was unreachable, 2 on bad input."""
    reg = registry(args)
    reports = fleet.each(pick_devices(reg, args.names), lambda d: check_one(reg, d, args.pings))
    st = store(reg)
    for r in reports:
        if r["reachable"]:
            st.record_health(r["device"], True)  # a device that checks out is healthy again
        log.info("%s: %s", r["device"], f"reachable, rtt {r['rtt_ms']:.2f} ms, fit: {r['fit']}"
                 if r["reachable"] else r.get("error", "unreachable"))
    if args.json:
        print_json(reports)
    else:
        rows = []
        for r in reports:
            f = r.get("facts") or {}
            rows.append([r["device"], "yes" if r["reachable"] else "NO", r.get("agent", ""),
                         f.get("cpu", ""), f.get("cores", ""), r.get("runtime_version", ""),
                         (r.get("placement") or {}).get("compute_summary", ""),
                         r.get("rtt_ms"), ("yes" if r.get("fit") else "no: " + "; ".join(r.get("reasons", [])))
                         if r["reachable"] else r.get("error", "")])
        print_table(["device", "reachable", "agent", "cpu", "cores", "runtime", "nodes on", "rtt_ms",
                     "fit to measure"], rows)
    codes = [r.get("exit_code", 0) for r in reports]
    return max(codes) if codes else 0
