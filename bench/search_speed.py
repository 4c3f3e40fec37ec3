"""Search speed: candidates through the whole search loop against a real cost model, one core.

Setup (not timed): a tiny real profile of the embedded ``local`` device in a throwaway
workspace — every NAS-Bench-201 block and 12 whole networks, measured with ONNX Runtime
(``hwnas profile``, 1 session each) — and ``hwnas costmodel fit`` on it: a real fitted cost
model (bootstrap ensemble, kernel-count features). Accuracy: exact lookup of NAS-Bench-201's
``cifar10_valid`` (the shared table).

Timed, pinned to one core (``sched_setaffinity``, one BLAS thread):

* ``random``: a random search with 10,000 accuracy evaluations — each of the 10,000 candidates
  sampled, decoded, de-duplicated, its latency and std predicted by the cost model, its
  accuracy looked up and cached, archived; then the front and best per budget built;
* ``nsga2``: NSGA-II with 1,000 evaluations — the candidates it breeds and screens by
  predicted latency (many per evaluation), reported per 10,000 candidates.

    [HWNAS_SHARED_DATA=../shared/data] python bench/search_speed.py [--repeats 3] [--workspace DIR]

Writes bench/results/search_speed.json.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import hwnas, local_config, pin_one_core, write  # noqa: E402
from hwnas import spaces  # noqa: E402
from hwnas.search import run_search  # noqa: E402
from hwnas.search.latency import CostModelLatency  # noqa: E402

SHARED = Path(os.environ.get("HWNAS_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared/data")
ACCURACY = SHARED / "nasbench201_accuracy/accuracy.csv"
TARGET_S = 2.0
CANDIDATES = 10_000


class TableAccuracy:
    """cifar10_valid by exact lookup."""

    name = "nasbench201:cifar10_valid"
    has_weights = False

    def __init__(self, path: Path) -> None:
        with open(path, newline="") as fh:
            self.valid = {r["arch"]: float(r["cifar10_valid"]) for r in csv.DictReader(fh)}

    def evaluate(self, archs):
        """cifar10_valid of each architecture."""
        return np.array([self.valid[a] for a in archs])

    def details(self, arch: str) -> dict:
        """No details."""
        return {}


def fit_cost_model(workspace: Path) -> tuple[Path, dict]:
    """Profile ``local`` (blocks + 12 networks) and fit its nasbench201 cost model; returns the config."""
    cfg = local_config(workspace)
    model = workspace / "ws/cost_models/local-onnxruntime-nasbench201.json"
    if model.is_file():
        return cfg, {"reused": str(model)}
    setup = {}
    common = ["--device", "local", "--space", "nasbench201", "--config", str(cfg)]
    setup["profile_blocks_s"], _ = hwnas("profile", *common, "--what", "blocks", "--sessions", "1")
    setup["profile_networks_s"], _ = hwnas("profile", *common, "--what", "networks", "--num", "12",
                                           "--sessions", "1")
    setup["fit_s"], fitted = hwnas("costmodel", "fit", *common)
    setup["fit"] = fitted
    return cfg, setup


def timed(repeats: int, fn) -> list[float]:
    """Wall seconds of ``repeats`` calls."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    """Set up, time, write bench/results/search_speed.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workspace", help="keep (and reuse) the profiled workspace here")
    args = parser.parse_args()
    if not ACCURACY.exists():
        raise SystemExit(f"data not found: {ACCURACY}")
    workspace = Path(args.workspace or tempfile.mkdtemp(prefix="hwnas-search-speed-"))
    workspace.mkdir(parents=True, exist_ok=True)
    cfg, setup = fit_cost_model(workspace)
    space = spaces.get("nasbench201")
    latency = {"local": CostModelLatency.load("local", "nasbench201", config=cfg)}
    accuracy = TableAccuracy(ACCURACY)
    probe = latency["local"].predict(space.sample(2000, np.random.default_rng(0)))
    budgets = [float(b) for b in np.percentile(probe, [25, 50, 75])]
    pin_one_core()
    load_before = os.getloadavg()
    random_s = timed(args.repeats, lambda: run_search(space, accuracy, latency, algorithm="random",
                                                      evaluations=CANDIDATES, budgets_ms=budgets, seed=0))
    results = []
    nsga2_s = timed(args.repeats, lambda: results.append(run_search(space, accuracy, latency, algorithm="nsga2",
                                                                    evaluations=1000, budgets_ms=budgets, seed=0)))
    candidates = results[-1].candidates
    per_10k = [s * CANDIDATES / candidates for s in nsga2_s]
    out = {"target_s": TARGET_S, "candidates": CANDIDATES, "setup": setup, "budgets_ms": budgets,
           "random_10k_evaluations_s": random_s, "random_median_s": float(np.median(random_s)),
           "nsga2_1000_evaluations_s": nsga2_s, "nsga2_candidates_screened": candidates,
           "nsga2_s_per_10k_candidates": per_10k, "nsga2_median_s_per_10k": float(np.median(per_10k)),
           "met": bool(np.median(random_s) <= TARGET_S),
           "machine": {"cpus_used": 1, "cpus": os.cpu_count(), "loadavg_before": load_before,
                       "loadavg_after": os.getloadavg(), "note": "shared 2-core machine, loaded"}}
    path = write("search_speed", out)
    print(f"random, {CANDIDATES} candidates evaluated: median {np.median(random_s):.2f} s "
          f"(runs {', '.join(f'{s:.2f}' for s in random_s)}; target {TARGET_S} s)")
    print(f"nsga2, 1000 evaluations, {candidates} candidates screened: median {np.median(nsga2_s):.2f} s "
          f"= {np.median(per_10k):.2f} s per 10,000 candidates")
    print(f"load {load_before} -> {os.getloadavg()}; wrote {path}")


if __name__ == "__main__":
    main()
