"""``hwnas search``: the most accurate architecture per latency budget on each device.

Thin: arguments are checked and turned into the search's objects here (space, accuracy
source, one latency objective per device or table), then
:func:`hwnas.search.loop.search_with_hardware` runs the search, measures the finalists on
each device with a cost model and refits it (``--rounds``), and the result is printed:
DESIGN.md's ``search --json`` object with ``--json``, tables otherwise.

Everything the user gave is checked before anything is written, so a bad input (exit 2)
leaves no half-made ``--out`` directory and no measurement behind.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from hwnas.cli import add_common
from hwnas.errors import BadInput
from hwnas.output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``search`` command."""
    p = sub.add_parser(
        "search", help="hardware-aware architecture search: accuracy-latency front and best per budget",
        description="Search a space for the most accurate architectures per latency budget on each device "
                    "(its fitted cost model) or against a measured latency table. Finalists are measured on "
                    "the device and its cost model refitted where they disagree (--rounds).")
    p.add_argument("--space", required=True, help="search space (e.g. nasbench201, mbv3)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--device", action="append", metavar="NAME",
                        help="device whose fitted cost model predicts latency (repeatable)")
    target.add_argument("--latency-table", action="append", metavar="CSV",
                        help="measured latencies, columns arch,latency_ms (named by the file stem; repeatable)")
    p.add_argument("--accuracy", required=True, metavar="SOURCE",
                   help="nasbench201:COLUMN | table:PATH[:COLUMN] | proxy:NAME | supernet[:PATH] | "
                        "python:MODULE:FUNCTION")
    p.add_argument("--algorithm", default="nsga2", metavar="NAME",
                   help="nsga2 (the front) | evolution (constrained, per budget) | random (baseline) (default: nsga2)")
    p.add_argument("--evaluations", type=int, default=1000, metavar="N",
                   help="accuracy evaluations the search may make (default: 1000)")
    p.add_argument("--latency-ms", default="", metavar="5,10,20",
                   help="latency budgets (ms, comma-separated): the best architecture within each")
    p.add_argument("--seed", type=int, default=0, help="seed of the search (default: 0)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="keep the search state and result here; an interrupted search given the same DIR resumes")
    p.add_argument("--rounds", type=int, default=3, metavar="N",
                   help="hardware-in-the-loop rounds: measure the finalists, refit where they disagree, search "
                        "on (default: 3; 0 = predictions only, nothing measured)")
    p.add_argument("--tolerance", type=float, default=0.05, metavar="FRACTION",
                   help="a finalist agrees when |measured - predicted| <= max(model std, FRACTION x predicted) "
                        "(default: 0.05)")
    p.add_argument("--finalists", type=int, default=None, metavar="N",
                   help="measure at most N front points per device, spread along the front, plus the best per "
                        "budget (default: the whole front)")
    p.add_argument("--sessions", type=int, default=None,
                   help="fresh runtime sessions per measured network (default: the device's measurement.sessions)")
    add_common(p, json_flag=True)
    p.set_defaults(func=run)


def parse_budgets(text: str) -> list[float]:
    """``"5,10,20"`` as [5.0, 10.0, 20.0]; BadInput unless every entry is a positive, finite number."""
    budgets = []
    for part in (p.strip() for p in text.split(",")) if text.strip() else ():
        try:
            value = float(part)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise BadInput(f"--latency-ms: {part!r} is not a positive number of milliseconds")
        budgets.append(value)
    return budgets


def check_at_least(counts: tuple[tuple[str, int | None, int], ...]) -> None:
    """BadInput naming the first ``(flag, value, least)`` whose given value is below ``least``."""
    for flag, value, least in counts:
        if value is not None and value < least:
            raise BadInput(f"{flag} must be at least {least}, got {value}")


def _check_counts(args: argparse.Namespace) -> None:
    check_at_least((("--evaluations", args.evaluations, 1), ("--rounds", args.rounds, 0),
                    ("--finalists", args.finalists, 1), ("--sessions", args.sessions, 1)))
    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        raise BadInput(f"--tolerance must be a non-negative fraction, got {args.tolerance}")


def _latencies(args: argparse.Namespace, space) -> dict:
    """The measured tables of ``--latency-table``, by file stem (BadInput on a bad file or a repeated stem)."""
    from hwnas.search.latency import TableLatency

    tables = {}
    for path in args.latency_table or []:
        table = TableLatency.from_csv(path, space)
        if table.name in tables:
            raise BadInput(f"two latency tables are named {table.name!r} (file stem); rename one")
        tables[table.name] = table
    return tables


def _workspace(args: argparse.Namespace, reg) -> Path:
    """Where a bare ``supernet`` source keeps its supernet: the registry's workspace (of ``--config``
    when that file exists, even without ``--device``), else ./.hwnas."""
    from hwnas.cli.common import registry

    if reg is None and Path(args.config).is_file():
        reg = registry(args)
    return reg.workspace if reg is not None else Path(".hwnas")


def run(args: argparse.Namespace) -> int:
    """Check every input, run the search (with hardware in the loop), print the result."""
    from hwnas import spaces
    from hwnas.cli.common import registry, store
    from hwnas.progress import bar, follow
    from hwnas.search.accuracy import is_bare_supernet, parse_accuracy
    from hwnas.search.algorithms import ALGORITHMS
    from hwnas.search.loop import cost_model_file, search_with_hardware

    _check_counts(args)
    if args.algorithm not in ALGORITHMS:
        raise BadInput(f"unknown search algorithm {args.algorithm!r} (known: {', '.join(sorted(ALGORITHMS))})")
    budgets = parse_budgets(args.latency_ms)
    space = spaces.get(args.space)
    tables = _latencies(args, space)
    reg = st = None
    devices = []
    if args.device:
        reg = registry(args)
        devices = [reg.device(n) for n in dict.fromkeys(args.device)]
        for device in devices:
            cost_model_file(reg, device, space)
        st = store(reg)
    accuracy = parse_accuracy(args.accuracy, space, work_dir=args.out,
                              workspace=_workspace(args, reg) if is_bare_supernet(args.accuracy) else ".hwnas")
    progress = bar(args.evaluations, "search", quiet=args.json, unit="eval")

    try:
        out = search_with_hardware(space, accuracy, registry=reg, store=st, devices=devices, latencies=tables,
                                   algorithm=args.algorithm, evaluations=args.evaluations, budgets_ms=budgets,
                                   seed=args.seed, rounds=args.rounds, tolerance=args.tolerance,
                                   finalists=args.finalists, sessions=args.sessions, state_dir=args.out,
                                   quiet=args.json, on_progress=follow(progress))
    finally:
        progress.close()
    doc = out.to_json()
    if args.out:
        from lut.atomic import write_text_atomic

        write_text_atomic(Path(args.out) / "result.json", json.dumps(doc, indent=1, default=str) + "\n")
    if args.json:
        print_json(doc)
    else:
        _print_human(doc)
    return out.exit_code


def _ms(value) -> str:
    return "" if value is None else f"{value:.4g}"


def _print_human(doc: dict) -> None:
    """Per device: the best architecture per budget, then the front; then the rounds' agreement."""
    print(f"{doc['space']} searched with {doc['algorithm']} (seed {doc['seed']}): {doc['evaluations']} accuracy "
          f"evaluations of {doc['accuracy_source']}")
    for note in doc.get("notes", []):
        print(f"note: {note}")
    for dev in doc["devices"]:
        print(f"\n{dev['device']}: best per budget")
        if dev["best"]:
            print_table(["budget ms", "arch", "accuracy", "predicted ms", "measured ms"],
                        [[b["budget_ms"], b["arch"] or f"none meets it (fastest found: "
                          f"{_ms((b.get('fastest') or {}).get('latency_ms'))} ms)", b["accuracy"],
                          _ms(b["latency_ms"]), _ms(b["measured_ms"])] for b in dev["best"]])
        print(f"\n{dev['device']}: accuracy-latency front ({len(dev['front'])} architectures, fastest first)")
        print_table(["arch", "accuracy", "predicted ms", "measured ms"],
                    [[c["arch"], c["accuracy"], _ms(c["latency_ms"]), _ms(c["measured_ms"])] for c in dev["front"]])
    for r in doc.get("rounds", []):
        for d in r["devices"]:
            err = d["median_abs_error_pct"]
            print(f"round {r['round']}, {d['device']}: {len(d['finalists'])} finalists measured "
                  f"({d['newly_measured']} new), median |predicted - measured| "
                  f"{'n/a' if err is None else f'{err:.1f}%'}"
                  + (f", refitted on {d['refit']['n_train']} networks" if d["refit"] else ", all agree")
                  + (f"; device error: {d['error']}" if d["error"] else ""), file=sys.stderr)
