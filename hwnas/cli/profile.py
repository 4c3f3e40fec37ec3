"""``hwnas profile``: resumable sweeps of a search space's blocks or sampled networks into the store."""
from __future__ import annotations

import argparse
from dataclasses import asdict

from hwnas import backends, spaces, sweep
from hwnas.cli import add_common
from hwnas.cli.common import devices as named_devices
from hwnas.cli.common import registry, run_id, store
from hwnas.cli.common import sessions as checked_sessions
from hwnas.errors import BadInput
from hwnas.output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``profile`` command."""
    p = sub.add_parser("profile", help="measure a search space's blocks or networks (resumable)")
    p.add_argument("--device", action="append", required=True, metavar="NAME", help="device (repeatable)")
    p.add_argument("--space", default="mbv3", help=f"search space: {', '.join(spaces.names())} (default: mbv3)")
    p.add_argument("--backend", choices=backends.names(), default=None,
                   help="runtime to profile with (default: the device's own; must match it)")
    p.add_argument("--what", choices=("blocks", "networks"), default="blocks",
                   help="every distinct block, or --num sampled whole networks (default: blocks)")
    p.add_argument("--num", type=int, default=100, metavar="N", help="networks to sample (default: 100)")
    p.add_argument("--resolution", type=int, action="append", metavar="R",
                   help="input resolution (repeatable; mbv3 default 224, nasbench201 fixed 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the network sample and sweep order (default: 0)")
    p.add_argument("--sessions", type=int, default=None,
                   help="fresh runtime sessions per item (default: the device's measurement.sessions)")
    p.add_argument("--per-node", action="store_true",
                   help="also store the runtime's per-kernel times (ONNX Runtime's profiler, TVM's fused kernels)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Plan the sweep, skip what each device has stored, measure the rest in parallel."""
    reg = registry(args)
    devices = named_devices(reg, args.device)
    sessions = checked_sessions(args.sessions)
    sweep.check_backend(reg, devices, args.backend)
    space = spaces.get(args.space)
    if args.num < 1:
        raise BadInput(f"--num must be at least 1, got {args.num}")
    if args.what == "blocks":
        needs = sweep.block_needs(space, args.resolution, reg.workspace)
    else:
        bad = [r for r in args.resolution or [] if r not in space.resolutions]
        if bad:
            raise BadInput(f"--resolution {bad[0]} is not a resolution of space {space.name}")
        archs = sweep.sample_archs(space, args.num, args.seed, args.resolution)
        needs = sweep.network_needs(space, archs, reg.workspace)
    st = store(reg)
    reports = sweep.run(reg, devices, st, needs, run_id(), args.what, space.name, sessions=sessions,
                        per_node=args.per_node, quiet=args.json, seed=args.seed)
    if args.json:
        print_json([{k: v for k, v in asdict(r).items() if k != "signatures"} for r in reports])
    else:
        print_table(["device", "backend", "space", "what", "needed", "already stored", "measured", "error"],
                    [[r.device, r.backend, r.space, r.what, r.needed, r.stored_before, r.measured, r.error or ""]
                     for r in reports])
        if any(r.measured for r in reports):
            print(f"\nstored in {st.path}")
    return max((r.exit_code for r in reports), default=0)
