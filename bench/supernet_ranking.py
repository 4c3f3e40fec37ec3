"""Does the digits supernet rank subnets as training them alone would?

For ``--subnets`` architectures spread over the space (the largest, the smallest, and
subnets at evenly spaced MAC quantiles of a seeded sample), compares the held-out top-1
each gets with inherited supernet weights (BatchNorm recalibrated) against the top-1 it
gets trained alone from scratch (same split, augmentation and optimiser as the supernet,
``--alone-steps`` steps), with three seeds per subnet. Reports

* Kendall's tau of the supernet's accuracies against the mean of the alone seeds (the
  target), and against each seed;
* the tau between two alone seeds (each pair): how well training alone agrees with
  itself, about the ceiling any proxy of it can reach on this split;
* the accuracy range over the space (largest minus smallest subnet, and max minus min)
  against the seed noise (per subnet the mean |difference| between two seeds);
* the supernet's training time with the machine's load.

Alone results are cached per (architecture, seed, recipe) in
``bench/results/.supernet_alone.json`` as they finish, so an interrupted run resumes.
Results go to ``bench/results/supernet_ranking.json``.

    python -m bench.supernet_ranking [--checkpoint DIR] [--subnets 12] [--alone-steps 300]

Without ``--checkpoint`` a supernet is trained first (default settings).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from bench.common import RESULTS, write
from hwnas.spaces import digits
from hwnas.supernet import checkpoint, train
from hwnas.zoo import count_macs
from lut.atomic import write_text_atomic

CACHE = RESULTS / ".supernet_alone.json"
SEEDS = (0, 1, 2)
ALONE_FIELDS = ("steps", "batch", "lr", "weight_decay", "seed", "split_seed")
"""The training settings a subnet trained alone depends on (the cache key)."""


def spread_archs(n: int, seed: int) -> list[str]:
    """The largest, the smallest and ``n - 2`` archs at evenly spaced MAC quantiles of a seeded sample."""
    space = digits.DigitsSpace()
    pool = list(dict.fromkeys(space.sample(400, np.random.default_rng(seed))))
    macs = np.array([count_macs(space.onnx_model(a))[0] for a in pool])
    order = np.argsort(macs)
    picks = [pool[order[round(q)]] for q in np.linspace(0, len(pool) - 1, n - 2)]
    return [str(digits.LARGEST), str(digits.SMALLEST), *dict.fromkeys(picks)]


def alone(arch: str, recipe: train.TrainConfig, cache: dict) -> dict:
    """Held-out top-1 and seconds of ``arch`` trained alone with ``recipe`` (cached)."""
    key = json.dumps([arch, {k: v for k, v in recipe.to_dict().items() if k in ALONE_FIELDS}], sort_keys=True)
    if key not in cache:
        top1, seconds = train.train_alone(digits.parse(arch), recipe)
        cache[key] = {"top1": top1, "seconds": round(seconds, 1), "loadavg": [round(x, 2) for x in os.getloadavg()]}
        write_text_atomic(CACHE, json.dumps(cache, indent=1) + "\n")
    return cache[key]


def tau(a, b) -> float:
    """Kendall's tau-b of two score lists."""
    return float(kendalltau(a, b).statistic)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write the results JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="trained supernet folder (default: train one)")
    p.add_argument("--subnets", type=int, default=12)
    p.add_argument("--alone-steps", type=int, default=300, help="training steps of each subnet trained alone")
    p.add_argument("--seed", type=int, default=0, help="seed of the subnet sample")
    args = p.parse_args(argv)
    start, load_start = time.perf_counter(), os.getloadavg()
    if args.checkpoint is None:
        folder = RESULTS / ".supernet"
        checkpoint.save(train.train(train.TrainConfig()), folder)
    else:
        folder = Path(args.checkpoint)
    ckpt = checkpoint.load(folder)
    config = checkpoint.train_config(ckpt.manifest)
    cache = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
    rows = []
    for arch in spread_archs(args.subnets, args.seed):
        runs = [alone(arch, train.TrainConfig(**{**config.to_dict(), "steps": args.alone_steps, "seed": s}), cache)
                for s in SEEDS]
        top1 = [r["top1"] for r in runs]
        row = {"arch": arch, "macs": count_macs(digits.DigitsSpace().onnx_model(arch))[0],
               "supernet_top1": train.score(ckpt.net, ckpt.split, digits.parse(arch)),
               "alone_top1_seeds": top1, "alone_top1_mean": float(np.mean(top1)),
               "alone_seconds": [r["seconds"] for r in runs]}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    sup = np.array([r["supernet_top1"] for r in rows])
    mean = np.array([r["alone_top1_mean"] for r in rows])
    seeds = np.array([r["alone_top1_seeds"] for r in rows])
    pairs = list(combinations(range(len(SEEDS)), 2))
    noise = np.mean([np.abs(seeds[:, i] - seeds[:, j]) for i, j in pairs], axis=0)
    result = {
        "bench": "supernet_ranking", "subnets": len(rows), "tau_target": 0.5,
        "kendall_tau": tau(sup, mean), "kendall_p": float(kendalltau(sup, mean).pvalue),
        "kendall_tau_per_alone_seed": [tau(sup, seeds[:, i]) for i in range(len(SEEDS))],
        "kendall_tau_alone_seed_pairs": {f"{SEEDS[i]}-{SEEDS[j]}": tau(seeds[:, i], seeds[:, j]) for i, j in pairs},
        "kendall_tau_supernet_vs_macs": tau(sup, [r["macs"] for r in rows]),
        "range_alone_largest_minus_smallest": float(mean[0] - mean[1]),
        "range_alone_max_minus_min": float(mean.max() - mean.min()),
        "range_supernet_largest_minus_smallest": float(sup[0] - sup[1]),
        "range_supernet_max_minus_min": float(sup.max() - sup.min()),
        "seed_noise_alone_abs_diff": noise.tolist(), "seed_noise_alone_mean": float(noise.mean()),
        "seed_noise_alone_max": float(noise.max()),
        "supernet_training_seconds": ckpt.manifest["training_seconds"],
        "supernet_training_loadavg": [ckpt.manifest["loadavg_before"], ckpt.manifest["loadavg_after"]],
        "train_config": config.to_dict(), "alone_steps": args.alone_steps, "alone_seeds": list(SEEDS),
        "held_out": len(ckpt.split.held_out), "wall_seconds": round(time.perf_counter() - start, 1),
        "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "note": "2-core machine; torch one intra-op thread; alone results cached across runs (their seconds "
                "and load are those of the run that trained them)",
        "rows": rows,
    }
    out = write("supernet_ranking", result)
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    print(f"-> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
