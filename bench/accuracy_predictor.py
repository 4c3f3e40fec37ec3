"""Which accuracy predictor ranks better: ridge or boosted trees on one-hot choice codes?

The ``table:`` accuracy source fits :class:`hwnas.search.predictor.AccuracyPredictor` on a
table's rows for the architectures it lacks. Here tables of n NAS-Bench-201 rows
(``cifar10_valid``, seeded uniform draws) train each regressor alone, and each is scored on
every other architecture (Spearman ρ); ``auto`` is what the source does (held-out selection,
then a refit on all n). Mean and spread over seeds.

    python bench/accuracy_predictor.py [--n 100 300 1000] [--seeds 3]

Writes bench/results/accuracy_predictor.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, write  # noqa: E402
from cost_models.metrics import spearman_rho  # noqa: E402
from hwnas import spaces  # noqa: E402
from hwnas.search.accuracy import nasbench201_table  # noqa: E402
from hwnas.search.predictor import KINDS, AccuracyPredictor  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the bench; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    started, load_before = time.perf_counter(), os.getloadavg()
    archs, columns = nasbench201_table()
    y = columns["cifar10_valid"]
    codes = spaces.get("nasbench201").to_choices(archs)
    results: dict[str, dict[str, dict]] = {}
    for n in args.n:
        results[str(n)] = {}
        for kind in (*KINDS, "auto"):
            rhos, chosen, fit_s = [], [], []
            for seed in range(args.seeds):
                order = np.random.default_rng(seed).permutation(len(archs))
                train, test = order[:n], order[n:]
                start = time.perf_counter()
                model = AccuracyPredictor(kinds=KINDS if kind == "auto" else (kind,), seed=seed)
                model.fit(codes[train], y[train])
                fit_s.append(time.perf_counter() - start)
                rhos.append(spearman_rho(y[test], model.predict(codes[test])))
                chosen.append(model.kind_)
            results[str(n)][kind] = {"spearman_mean": float(np.mean(rhos)), "spearman_min": float(np.min(rhos)),
                                     "spearman_max": float(np.max(rhos)), "fit_s_median": float(np.median(fit_s)),
                                     "chosen": chosen}
    write("accuracy_predictor", {"bench": "accuracy_predictor", "target": "cifar10_valid", "seeds": args.seeds,
                                 "machine": machine(), "loadavg_before": load_before,
                                 "loadavg_after": os.getloadavg(), "wall_s": time.perf_counter() - started,
                                 "results": results})
    print("| rows n | ridge ρ (min–max) | gbdt ρ (min–max) | auto ρ (chosen) |")
    print("|---|---|---|---|")
    for n, r in results.items():
        cells = [f"{r[k]['spearman_mean']:.3f} ({r[k]['spearman_min']:.3f}–{r[k]['spearman_max']:.3f})" for k in KINDS]
        print(f"| {n} | {' | '.join(cells)} | {r['auto']['spearman_mean']:.3f} ({', '.join(r['auto']['chosen'])}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
