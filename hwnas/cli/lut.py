"""``hwnas lut build|show``: latency lookup tables from the store (JSON, CSV or OFA-style YAML)."""
from __future__ import annotations

import argparse
from pathlib import Path

from hwnas import lut_store, spaces
from hwnas.cli import add_common
from hwnas.cli.common import registry, store
from hwnas.errors import BadInput
from hwnas.output import print_json, print_table
from lut import formats

FUSED_MARKERS = ("fused", "Fused")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``lut`` command group."""
    p = sub.add_parser("lut", help="latency lookup tables from stored block measurements")
    lut_sub = p.add_subparsers(dest="lut_command", metavar="SUBCOMMAND")
    lut_sub.required = True

    b = lut_sub.add_parser("build", help="write a device's LUT (.json, .csv or OFA-style .yaml by suffix)")
    b.add_argument("--device", required=True, metavar="NAME")
    b.add_argument("--backend", default=None, help="runtime (default: the device's own; must match it)")
    b.add_argument("--space", default=None, help="only this space's blocks (default: every stored block)")
    b.add_argument("--out", default=None, metavar="FILE",
                   help="output file (default: <workspace>/lut/<device>-<backend>-<space>.json)")
    add_common(b)
    b.set_defaults(func=build)

    s = lut_sub.add_parser("show", help="print a device's LUT, two devices side by side, or a block's nodes")
    s.add_argument("--device", required=True, metavar="NAME")
    s.add_argument("--backend", default=None, help="runtime (default: the device's own; must match it)")
    s.add_argument("--space", default=None, help="only this space's blocks")
    s.add_argument("--compare", default=None, metavar="NAME2", help="a second device (e.g. the same board on TVM)")
    s.add_argument("--nodes", default=None, metavar="SIGNATURE",
                   help="per-node times of one block (measured with profile --per-node)")
    add_common(s)
    s.set_defaults(func=show)


def _device(reg, name: str, backend: str | None):
    device = reg.device(name)
    if backend and backend != device.backend:
        raise BadInput(f"device {name!r} runs {device.backend}, not {backend}; register an entry with "
                       f"`backend: {backend}` in {reg.path}")
    return device


def _table(reg, st, device, space_name: str | None):
    space = spaces.get(space_name) if space_name else None
    table = lut_store.table(st, device.name, device.backend, space)
    scores = {}
    for name in ([space_name] if space_name else table.meta["space"].split(",")):
        if name and name in spaces.names():
            rows = lut_store.networks(st, device.name, device.backend, name)
            result = lut_store.calibrate(table, spaces.get(name), rows) if rows else None
            if result:
                scores[name] = result
    return table, scores


def build(args: argparse.Namespace) -> int:
    """Build the LUT from the store (with per-space overheads where networks were measured) and save it."""
    reg = registry(args)
    device = _device(reg, args.device, args.backend)
    st = store(reg)
    table, scores = _table(reg, st, device, args.space)
    space_tag = args.space or table.meta["space"].replace(",", "+") or "all"
    out = Path(args.out) if args.out else reg.workspace / "lut" / f"{device.name}-{device.backend}-{space_tag}.json"
    try:
        formats.save(table, out)
    except ValueError as exc:
        raise BadInput(f"--out: {exc}") from None
    except OSError as exc:
        raise BadInput(f"--out {out}: cannot write ({exc.strerror})") from None
    summary = {"path": str(out), "device": device.name, "backend": device.backend, "entries": len(table),
               "space": table.meta["space"],
               "overheads": {s: o.to_dict() for s, o in table.overheads.items()}, "overhead_cv_rmspe": scores}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {len(table)} entries for {device.name} ({device.backend}) to {out}")
        for name, overhead in table.overheads.items():
            print(f"  {name}: overhead {overhead.mode} a={overhead.a:.4f} b={overhead.b:.4f} ms "
                  f"(fitted on {overhead.n} networks; CV RMSPE {scores[name]})")
    return 0


def _graph_nodes(source: str | None) -> int | None:
    """Node count of the measured ONNX file, if it is still on disk (to show what ORT fused away)."""
    if not source or not Path(source).is_file():
        return None
    import onnx

    return len(onnx.load(source, load_external_data=False).graph.node)


def _nodes(args, reg, st, device) -> int:
    history = st.history(device.name, device.backend, args.nodes)
    if not history:
        raise BadInput(f"no measurement of {args.nodes!r} on device {device.name!r}")
    for m in reversed(history):
        nodes = st.node_profile(m.id)
        if nodes:
            break
    else:
        raise BadInput(f"{args.nodes!r} on {device.name!r} has no per-node profile; "
                       "re-measure with `hwnas profile ... --per-node` on a fresh workspace or signature")
    total = sum(n["dur_us"] for n in nodes) or 1.0
    rows = [{**n, "share": n["dur_us"] / total,
             "fused": any(mark in (n.get("op_type") or "") + n["name"] for mark in FUSED_MARKERS)} for n in nodes]
    graph_nodes = _graph_nodes(m.source)
    if args.json:
        print_json({"signature": args.nodes, "device": device.name, "latency_ms": m.latency_ms,
                    "graph_nodes": graph_nodes, "kernels": len(rows), "nodes": rows})
    else:
        ran = f"{graph_nodes} graph nodes ran as {len(rows)} kernels" if graph_nodes else f"{len(rows)} kernels"
        print(f"{args.nodes} on {device.name}: {m.latency_ms:.4g} ms; {ran}")
        print_table(["node", "op_type", "provider", "us", "share", "fused"],
                    [[r["name"], r["op_type"], r["provider"], r["dur_us"], f"{r['share']:.1%}",
                      "yes" if r["fused"] else ""] for r in rows])
    return 0


def show(args: argparse.Namespace) -> int:
    """Print a LUT, two LUTs side by side (``--compare``) or one block's per-node times (``--nodes``)."""
    reg = registry(args)
    device = _device(reg, args.device, args.backend)
    st = store(reg)
    if args.nodes:
        return _nodes(args, reg, st, device)
    space = spaces.get(args.space) if args.space else None
    table = lut_store.table(st, device.name, device.backend, space)
    if args.compare:
        other_dev = reg.device(args.compare)
        other = lut_store.table(st, other_dev.name, other_dev.backend, space)
        keys = sorted(set(table.entries) | set(other.entries))
        rows = [{"key": k, f"{device.name}_ms": table.entries[k].mean_ms if k in table else None,
                 f"{other_dev.name}_ms": other.entries[k].mean_ms if k in other else None} for k in keys]
        for row in rows:
            a, b = row[f"{device.name}_ms"], row[f"{other_dev.name}_ms"]
            row["ratio"] = b / a if a and b else None
        if args.json:
            print_json(rows)
        else:
            print_table(["key", f"{device.name} ({device.backend}) ms", f"{other_dev.name} ({other_dev.backend}) ms",
                         "ratio"], [[r["key"], *list(r.values())[1:]] for r in rows])
        return 0
    rows = [{"key": k, "mean_ms": e.mean_ms, "std_ms": e.std_ms, "count": e.count}
            for k, e in sorted(table.entries.items())]
    if args.json:
        print_json({"meta": table.meta, "entries": rows})
    else:
        print(f"# {device.name} ({device.backend} {table.meta.get('runtime_version')}), {len(rows)} entries, ms")
        print_table(["key", "mean_ms", "std_ms", "count"], [list(r.values()) for r in rows])
    return 0
