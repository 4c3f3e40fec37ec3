"""Does the digits supernet rank subnets as training them alone would?

For ``--subnets`` architectures spread over the space (the largest, the smallest, and
subnets at evenly spaced MAC quantiles of a seeded sample), compares the held-out top-1
each gets with inherited supernet weights (BatchNorm recalibrated) against the top-1 it
gets trained alone from scratch (same split, augmentation, optimiser and steps as the
supernet). Reports Kendall's tau, the accuracy range over the space (largest minus
smallest subnet) and the seed noise (a few subnets trained alone with a second seed),
and the supernet's training time with the machine's load. Results go to
``bench/results/supernet_ranking.json``.

    python -m bench.supernet_ranking [--checkpoint DIR] [--subnets 12] [--noise 3]

Without ``--checkpoint`` a supernet is trained first (default settings).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from hwnas.spaces import digits
from hwnas.supernet import checkpoint, train
from hwnas.zoo import count_macs

OUT = Path(__file__).parent / "results" / "supernet_ranking.json"


def spread_archs(n: int, seed: int) -> list[str]:
    """The largest, the smallest and ``n - 2`` archs at evenly spaced MAC quantiles of a seeded sample."""
    space = digits.DigitsSpace()
    pool = list(dict.fromkeys(space.sample(400, np.random.default_rng(seed))))
    macs = np.array([count_macs(space.onnx_model(a))[0] for a in pool])
    order = np.argsort(macs)
    picks = [pool[order[round(q)]] for q in np.linspace(0, len(pool) - 1, n - 2)]
    return [str(digits.LARGEST), str(digits.SMALLEST), *dict.fromkeys(picks)]


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write the results JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="trained supernet folder (default: train one)")
    p.add_argument("--subnets", type=int, default=12)
    p.add_argument("--noise", type=int, default=3, help="subnets trained alone with a second seed")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    start, load_start = time.perf_counter(), os.getloadavg()
    if args.checkpoint is None:
        folder = Path("bench/results/.supernet")
        trained = train.train(train.TrainConfig())
        checkpoint.save(trained, folder)
    else:
        folder = Path(args.checkpoint)
    ckpt = checkpoint.load(folder)
    config = checkpoint.train_config(ckpt.manifest)
    archs = spread_archs(args.subnets, args.seed)
    rows = []
    for i, arch in enumerate(archs):
        a = digits.parse(arch)
        inherited = train.score(ckpt.net, ckpt.split, a)
        alone, seconds = train.train_alone(a, config)
        row = {"arch": arch, "macs": count_macs(digits.DigitsSpace().onnx_model(arch))[0],
               "supernet_top1": inherited, "alone_top1": alone, "alone_seconds": round(seconds, 1)}
        if i < args.noise:
            row["alone_top1_seed1"] = train.train_alone(a, train.TrainConfig(**{**config.to_dict(), "seed": 1}))[0]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    sup = np.array([r["supernet_top1"] for r in rows])
    alone = np.array([r["alone_top1"] for r in rows])
    tau = kendalltau(sup, alone)
    noise = [abs(r["alone_top1"] - r["alone_top1_seed1"]) for r in rows if "alone_top1_seed1" in r]
    result = {
        "bench": "supernet_ranking", "subnets": len(rows), "kendall_tau": float(tau.statistic),
        "kendall_p": float(tau.pvalue), "tau_target": 0.5,
        "range_supernet_largest_minus_smallest": float(sup[0] - sup[1]),
        "range_alone_largest_minus_smallest": float(alone[0] - alone[1]),
        "range_supernet_max_minus_min": float(sup.max() - sup.min()),
        "range_alone_max_minus_min": float(alone.max() - alone.min()),
        "seed_noise_alone_abs_diff": noise, "seed_noise_alone_mean": float(np.mean(noise)) if noise else None,
        "supernet_training_seconds": ckpt.manifest["training_seconds"],
        "supernet_training_loadavg": [ckpt.manifest["loadavg_before"], ckpt.manifest["loadavg_after"]],
        "train_config": config.to_dict(), "held_out": len(ckpt.split.held_out),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "note": "2-core machine shared with other jobs (loaded); torch one intra-op thread",
        "rows": rows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
