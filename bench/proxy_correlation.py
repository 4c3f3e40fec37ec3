"""Zero-cost proxies against NAS-Bench-201's real accuracy: Spearman ρ and seconds per architecture.

A seeded uniform sample of NAS-Bench-201 architectures (degenerate ones included,
as in the published figures) is scored by every proxy of ``proxy:NAME``
(:mod:`hwnas.search.proxies`, default load_digits batch unless ``--data``), each
through :class:`~hwnas.search.proxies.ProxyAccuracy` exactly as the search runs it
(network built and seeded per proxy). Reported per proxy: Spearman ρ with the shipped
``cifar10_valid`` (and ``cifar100_valid``, ``imagenet16_120_valid``), ρ on two halves of
the sample (the spread), and the median / p90 seconds per architecture. Two
combinations: ``vote`` — the mean rank of synflow, naswot and snip (Abdelfattah et al.'s
vote, with naswot where they used jacob_cov) — and ``mean_rank_all`` over every proxy.
``flops`` is also scored on all 15,625.

The default batch is load_digits (8x8 digits upsampled), not CIFAR: the data-driven
proxies see data unlike what the accuracies were measured on. torch runs one thread per
worker (``--workers`` processes, default 3) and the load average is recorded: the
machine is shared, so the seconds are an upper bound of a quiet machine's.

    python bench/proxy_correlation.py [--n 500] [--seed 0] [--workers 3] [--data BATCH.npz]

Writes bench/results/proxy_correlation.json (rewritten as workers finish chunks, with
``"complete": false`` until the end; a rerun resumes from such a file) and prints a
markdown table.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, machine, write  # noqa: E402
from cost_models.metrics import spearman_rho  # noqa: E402
from hwnas import spaces  # noqa: E402
from hwnas.search.accuracy import nasbench201_table  # noqa: E402
from hwnas.search.proxies import PROXIES, ProxyAccuracy, macs  # noqa: E402

VOTE = ("synflow", "naswot", "snip")
TARGETS = ("cifar10_valid", "cifar100_valid", "imagenet16_120_valid")
CHUNK = 10


def _score_chunk(args: tuple[list[str], str | None]) -> list[dict]:
    """Every proxy's value and seconds for each arch of the chunk (runs in a worker)."""
    import torch

    torch.set_num_threads(1)
    archs, data = args
    space = spaces.get("nasbench201")
    objectives = {p: ProxyAccuracy(p, space, data=data) for p in PROXIES}
    rows = []
    for arch in archs:
        row = {"arch": arch}
        for name, objective in objectives.items():
            start = time.perf_counter()
            row[name] = objective.score(arch)
            row[f"{name}_s"] = time.perf_counter() - start
        rows.append(row)
    return rows


def _mean_rank(columns: list[np.ndarray]) -> np.ndarray:
    from scipy.stats import rankdata

    return np.mean([rankdata(c) for c in columns], axis=0)


def _summary(rows: list[dict], truth: dict[str, np.ndarray], index: dict[str, int], args, started: float,
             load_before: tuple, complete: bool) -> dict:
    rows = sorted(rows, key=lambda r: index[r["arch"]])
    rows_idx = np.array([index[r["arch"]] for r in rows])
    scores = {p: np.array([r[p] for r in rows]) for p in PROXIES}
    if len(rows) >= 2:
        scores["vote"] = _mean_rank([scores[p] for p in VOTE])
        scores["mean_rank_all"] = _mean_rank([scores[p] for p in PROXIES])
    halves = np.arange(len(rows)) % 2
    proxies = {}
    for name, values in scores.items():
        entry = {t: spearman_rho(truth[t][rows_idx], values) for t in TARGETS}
        entry["cifar10_valid_halves"] = [spearman_rho(truth["cifar10_valid"][rows_idx[halves == h]],
                                                      values[halves == h]) for h in (0, 1)]
        if name in PROXIES:
            secs = np.array([r[f"{name}_s"] for r in rows])
            entry["seconds_per_arch_median"] = float(np.median(secs))
            entry["seconds_per_arch_p90"] = float(np.percentile(secs, 90))
        proxies[name] = entry
    return {"bench": "proxy_correlation", "complete": complete, "n_archs": len(rows), "seed": args.seed,
            "data": ProxyAccuracy("naswot", spaces.get("nasbench201"), data=args.data).details(rows[0]["arch"])["data"]
            if rows else None,
            "workers": args.workers, "torch_threads_per_worker": 1, "machine": machine(),
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "wall_s_this_session": time.perf_counter() - started, "proxies": proxies,
            "published_for_scale": {"synflow_nats_tss_cifar100": 0.79, "params_nats_tss_cifar100": 0.74,
                                    "vote_nasbench201": 0.82},
            "rows": rows}


def _resumable_rows(args, sample: list[str]) -> list[dict]:
    """Rows of an interrupted run of the same sample and data (``"complete": false``), to resume from."""
    path = RESULTS / "proxy_correlation.json"
    if not path.is_file():
        return []
    doc = json.loads(path.read_text())
    data = ProxyAccuracy("naswot", spaces.get("nasbench201"), data=args.data).details(sample[0])["data"]
    if doc.get("complete") or doc.get("seed") != args.seed or doc.get("data") != data:
        return []
    wanted = set(sample)
    return [r for r in doc.get("rows", []) if r["arch"] in wanted]


def main(argv: list[str] | None = None) -> int:
    """Run the bench; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--data", default=None, help="the proxies' batch (.npy / .npz); default load_digits")
    args = parser.parse_args(argv)
    started, load_before = time.perf_counter(), os.getloadavg()
    archs, columns = nasbench201_table()
    index = {a: i for i, a in enumerate(archs)}
    sample = [archs[i] for i in np.random.default_rng(args.seed).choice(len(archs), args.n, replace=False)]
    rows = _resumable_rows(args, sample)
    todo = [a for a in sample if a not in {r["arch"] for r in rows}]
    chunks = [(todo[i:i + CHUNK], args.data) for i in range(0, len(todo), CHUNK)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(args.workers) as pool:
        for done in pool.imap_unordered(_score_chunk, chunks):
            rows += done
            write("proxy_correlation", _summary(rows, columns, index, args, started, load_before, False))
            print(f"{len(rows)}/{len(sample)} architectures", file=sys.stderr, flush=True)
    result = _summary(rows, columns, index, args, started, load_before, True)
    space = spaces.get("nasbench201")
    all_flops = np.array([macs(space, a) for a in archs])
    result["flops_all_15625"] = {t: spearman_rho(columns[t], all_flops) for t in TARGETS}
    write("proxy_correlation", result)
    print("| proxy | ρ cifar10_valid (halves) | ρ cifar100_valid | ρ imagenet16_120_valid | s/arch median (p90) |")
    print("|---|---|---|---|---|")
    for name, e in result["proxies"].items():
        secs = (f"{e['seconds_per_arch_median']:.3f} ({e['seconds_per_arch_p90']:.3f})"
                if "seconds_per_arch_median" in e else "—")
        halves = ", ".join(f"{h:.3f}" for h in e["cifar10_valid_halves"])
        print(f"| {name} | {e['cifar10_valid']:.3f} ({halves}) | {e['cifar100_valid']:.3f} | "
              f"{e['imagenet16_120_valid']:.3f} | {secs} |")
    print(f"n={result['n_archs']}, data: {result['data']}; load {load_before} -> {result['loadavg_after']}, "
          f"wall {result['wall_s_this_session']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
