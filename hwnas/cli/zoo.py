"""``hwnas zoo export``: a per-device model zoo picked by measured latency (core: :mod:`hwnas.zoo`)."""
from __future__ import annotations

import argparse

from hwnas.cli import add_common
from hwnas.output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``zoo`` command group."""
    p = sub.add_parser("zoo", help="export a per-device model zoo (models, measured cards, index)")
    zsub = p.add_subparsers(dest="zoo_command", metavar="SUBCOMMAND")
    zsub.required = True
    e = zsub.add_parser("export", help="search (or resume), pick per device and budget by measured latency, write")
    e.add_argument("--device", action="append", required=True, metavar="NAME", help="device (repeatable)")
    e.add_argument("--latency-ms", required=True, metavar="5,10,20", help="latency budgets in ms (comma-separated)")
    e.add_argument("--out", required=True, metavar="DIR", help="zoo folder (created; a re-run resumes)")
    e.add_argument("--space", default="digits", help="search space (default: digits, the supernet's)")
    e.add_argument("--accuracy", default="supernet", metavar="SOURCE",
                   help="accuracy source (default: supernet, the workspace's, trained if absent)")
    e.add_argument("--evaluations", type=int, default=200, metavar="N", help="accuracy evaluations (default: 200)")
    e.add_argument("--rounds", type=int, default=1, metavar="N",
                   help="hardware-in-the-loop rounds of the search (default: 1)")
    e.add_argument("--seed", type=int, default=0, help="seed of the search (default: 0)")
    e.add_argument("--sessions", type=int, default=None,
                   help="fresh runtime sessions per measured network (default: the device's measurement.sessions)")
    e.add_argument("--train-steps", type=int, default=None, metavar="N",
                   help="supernet training steps when one must be trained (default: 600)")
    add_common(e)
    e.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Check the inputs, export, print the index as a table (or JSON)."""
    from hwnas import zoo
    from hwnas.cli.common import registry, store
    from hwnas.cli.search import check_at_least, parse_budgets
    from hwnas.errors import BadInput
    from hwnas.progress import bar, follow

    budgets = parse_budgets(args.latency_ms)
    if not budgets:
        raise BadInput("--latency-ms: give at least one latency budget in milliseconds, e.g. 5,10,20")
    check_at_least((("--evaluations", args.evaluations, 1), ("--rounds", args.rounds, 0),
                    ("--sessions", args.sessions, 1), ("--train-steps", args.train_steps, 1)))
    reg = registry(args)
    devices = [reg.device(n) for n in dict.fromkeys(args.device)]
    zoo.check_out(args.out)
    config = None
    if args.train_steps:
        from hwnas.supernet.train import TrainConfig

        config = TrainConfig(steps=args.train_steps)
    progress = bar(args.evaluations, "search", quiet=args.json, unit="eval")

    try:
        result = zoo.export(reg, store(reg), devices, budgets, args.out, space=args.space, accuracy=args.accuracy,
                            evaluations=args.evaluations, seed=args.seed, rounds=args.rounds, sessions=args.sessions,
                            train_config=config, quiet=args.json, on_progress=follow(progress))
    finally:
        progress.close()
    if args.json:
        print_json(result.index)
    else:
        print_table(["device", "budget_ms", "model", "measured_ms", "predicted_ms", "top1", "arch"],
                    [[e["device"], e["budget_ms"], e["name"] or "unmet", e["measured_ms"] if e["name"] else
                      (e.get("fastest") or {}).get("measured_ms"), e["predicted_ms"], e["accuracy"], e["arch"] or
                      (e.get("fastest") or {}).get("arch")] for e in result.index["models"]])
        print(f"\nzoo written to {result.out} (index.json, README.md, one PNG per device)")
    return result.exit_code
