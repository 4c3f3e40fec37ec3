"""Search quality on NAS-Bench-201, scored against the truth by enumeration (issue 12, Done-when 1).

Accuracy = ``cifar10_valid`` of the shared NAS-Bench-201 table (``cifar10_test`` of what is
chosen is reported too); latency = each of the 9 devices of the shared latency table, in two
settings: (a) the search sees the exact table; (b) it sees only the few-shot transfer model
(:class:`hwnas.search.latency.TransferLatency`) fitted on 10 measured non-degenerate
architectures of that device (drawn per seed) with the other 8 devices as prior
(leave-one-device-out, as bench/transfer.py).

Scoring, per device, with TRUE latency and TRUE accuracy:

* ``hv``: hypervolume of the found front — the Pareto front, in true latency and true accuracy,
  of every architecture the search evaluated (its archive) — as a fraction of the true Pareto
  front's (enumeration of all 15,625); both axes normalised to the device's range over
  non-degenerate architectures, reference point at the worst latency and the worst accuracy
  (points outside the box clipped into it);
* ``regret`` at the 25th/50th/75th percentile latency B of the device (non-degenerate archs):
  true best ``cifar10_valid`` under B minus the best the search found that truly meets B;
* the same two over the front the search REPORTS (``hv_front``, ``regret_front``: non-dominated
  by predicted latency; equal to the above in setting (a)), and ``chosen_regret`` of the one
  architecture reported as best for B (latency + 1 std within B), counted only when it truly
  meets B (``violations`` counts when it does not).

Random, evolution and NSGA-II, 100/300/1000 accuracy evaluations, 5 seeds, all in one run.

    [HWNAS_SHARED_DATA=../shared/data] python bench/search_quality.py [--seeds 5] [--evals 100,300,1000]
        [--devices a,b] [--settings a,b] [--algorithms random,evolution,nsga2]

Writes bench/results/search_quality.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas import spaces  # noqa: E402
from hwnas.search import run_search  # noqa: E402
from hwnas.search.latency import TableLatency, TransferLatency  # noqa: E402
from hwnas.search.result import hypervolume, pareto_front  # noqa: E402
from lut.nasbench201 import is_degenerate  # noqa: E402

SHARED = Path(os.environ.get("HWNAS_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared/data")
"""The shared data folder (``../shared/data`` of the repository; ``$HWNAS_SHARED_DATA`` overrides)."""
ACCURACY = SHARED / "nasbench201_accuracy/accuracy.csv"
LATENCY = SHARED / "nasbench201_latency/latency_ms.csv"
RESULTS = Path(__file__).resolve().parent / "results"
ALGORITHMS = ("random", "evolution", "nsga2")
PERCENTILES = (25, 50, 75)
K_TRANSFER = 10


class TableAccuracy:
    """cifar10_valid by exact lookup (the bench's own objective; reports cifar10_test as a detail)."""

    name = "nasbench201:cifar10_valid"
    has_weights = False

    def __init__(self, valid: dict[str, float], test: dict[str, float]) -> None:
        self.valid, self.test = valid, test

    def evaluate(self, archs):
        """cifar10_valid of each architecture."""
        return np.array([self.valid[a] for a in archs])

    def details(self, arch: str) -> dict:
        """cifar10_test of the architecture."""
        return {"cifar10_test": self.test[arch]}


def load() -> tuple[list[str], np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(archs, cifar10_valid, cifar10_test, device names, (n, devices) latency ms), one arch order."""
    with open(ACCURACY, newline="") as fh:
        acc = {r["arch"]: (float(r["cifar10_valid"]), float(r["cifar10_test"])) for r in csv.DictReader(fh)}
    with open(LATENCY, newline="") as fh:
        reader = csv.DictReader(fh)
        devices = [c for c in reader.fieldnames if c not in ("arch", "nb201_index")]
        lat = {r["arch"]: [float(r[d]) for d in devices] for r in reader}
    archs = sorted(acc)
    return (archs, np.array([acc[a][0] for a in archs]), np.array([acc[a][1] for a in archs]), devices,
            np.array([lat[a] for a in archs]))


class Truth:
    """One device's true front, normalisation ranges, budgets and best accuracy per budget."""

    def __init__(self, archs, valid, latency, degenerate) -> None:
        live = ~degenerate
        self.index = {a: i for i, a in enumerate(archs)}
        self.valid, self.latency = valid, latency
        self.acc_range = (float(valid[live].min()), float(valid[live].max()))
        self.lat_range = (float(latency[live].min()), float(latency[live].max()))
        front = pareto_front(valid, latency)
        self.hv = hypervolume(valid[front], latency[front], self.acc_range, self.lat_range)
        self.budgets = [float(np.percentile(latency[live], p)) for p in PERCENTILES]
        self.best = [float(valid[latency <= b].max()) for b in self.budgets]

    def _hv(self, rows: np.ndarray) -> float:
        return hypervolume(self.valid[rows], self.latency[rows], self.acc_range, self.lat_range) / self.hv

    def _regret(self, rows: np.ndarray) -> list[float]:
        out = []
        for budget, opt in zip(self.budgets, self.best):
            ok = rows[self.latency[rows] <= budget]
            out.append(opt - (float(self.valid[ok].max()) if ok.size else self.acc_range[0]))
        return out

    def score(self, result, device: str) -> dict:
        """HV fraction and regrets, in truth, of what one device's search found and reported."""
        dev = result.devices[device]
        found = np.array([self.index[a] for a in result.archive], dtype=np.int64)
        front = np.array([self.index[c.arch] for c in dev.front], dtype=np.int64)
        chosen, violations = [], 0
        for budget, opt, best in zip(self.budgets, self.best, dev.best):
            if best.arch is not None and self.latency[self.index[best.arch]] <= budget:
                chosen.append(opt - best.accuracy)
            else:
                violations += best.arch is not None
                chosen.append(float("nan"))
        return {"hv": self._hv(found), "regret": self._regret(found), "hv_front": self._hv(front),
                "regret_front": self._regret(front), "chosen_regret": chosen, "violations": violations,
                "front_size": len(front)}


def transfer_objective(device: int, archs, codes_live, latency, live_idx, seed: int, name: str):
    """The few-shot transfer model of one held-out device (10 non-degenerate measurements)."""
    rng = np.random.default_rng([seed, device, K_TRANSFER])
    train = live_idx[rng.choice(len(live_idx), K_TRANSFER, replace=False)]
    prior = np.delete(latency[live_idx], device, axis=1)
    return TransferLatency.fit([archs[i] for i in train], latency[train, device],
                               [archs[i] for i in live_idx], prior, name)


def run(seeds: int, evals: list[int], device_names: list[str] | None, settings: list[str],
        algorithms: tuple[str, ...] = ALGORITHMS) -> dict:
    """Every run of the benchmark; returns the JSON-ready results."""
    start = time.perf_counter()
    load_before = os.getloadavg()
    space = spaces.get("nasbench201")
    archs, valid, test, devices, latency = load()
    degenerate = np.array([is_degenerate(a) for a in archs])
    live_idx = np.flatnonzero(~degenerate)
    accuracy = TableAccuracy(dict(zip(archs, valid)), dict(zip(archs, test)))
    runs = []
    for j, device in enumerate(devices):
        if device_names and device not in device_names:
            continue
        truth = Truth(archs, valid, latency[:, j], degenerate)
        table = TableLatency(dict(zip(archs, latency[:, j])), space, device)
        for setting in settings:
            for seed in range(seeds):
                objective = table if setting == "a" else transfer_objective(j, archs, None, latency, live_idx,
                                                                            seed, device)
                for algorithm in algorithms:
                    for n in evals:
                        t0 = time.perf_counter()
                        result = run_search(space, accuracy, {device: objective}, algorithm=algorithm,
                                            evaluations=n, budgets_ms=truth.budgets, seed=seed)
                        entry = {"device": device, "setting": setting, "seed": seed, "algorithm": algorithm,
                                 "evaluations": n, "made": result.evaluations,
                                 "seconds": round(time.perf_counter() - t0, 3), **truth.score(result, device),
                                 "chosen_test": [b.details.get("cifar10_test") for b in result.devices[device].best]}
                        runs.append(entry)
            print(f"{device} ({setting}): done, {time.perf_counter() - start:.0f}s", file=sys.stderr)
    return {"config": {"accuracy": str(ACCURACY), "latency": str(LATENCY), "seeds": seeds, "evaluations": evals,
                       "algorithms": list(algorithms), "percentiles": list(PERCENTILES), "k_transfer": K_TRANSFER,
                       "settings": settings, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                       "cpus": os.cpu_count(), "elapsed_s": round(time.perf_counter() - start, 1)},
            "summary": summarise(runs), "runs": runs}


def summarise(runs: list[dict]) -> dict:
    """Means over devices and seeds per (setting, algorithm, evaluations), with the seed spread."""
    out: dict = {}
    for r in runs:
        out.setdefault(r["setting"], {}).setdefault(r["algorithm"], {}).setdefault(str(r["evaluations"]), []).append(r)
    summary: dict = {}
    for setting, by_alg in out.items():
        for alg, by_n in by_alg.items():
            for n, rs in by_n.items():
                hv = np.array([r["hv"] for r in rs])
                regret = np.array([np.mean(r["regret"]) for r in rs])
                hv_front = np.array([r["hv_front"] for r in rs])
                regret_front = np.array([np.mean(r["regret_front"]) for r in rs])
                chosen = np.array([np.nanmean(r["chosen_regret"]) for r in rs])
                seeds = sorted({r["seed"] for r in rs})
                per_seed_hv = [np.mean([r["hv"] for r in rs if r["seed"] == s]) for s in seeds]
                per_seed_regret = [np.mean([np.mean(r["regret"]) for r in rs if r["seed"] == s]) for s in seeds]
                summary.setdefault(setting, {}).setdefault(alg, {})[n] = {
                    "hv_mean": float(hv.mean()), "hv_min": float(hv.min()),
                    "hv_seed_std": float(np.std(per_seed_hv)), "regret_mean": float(regret.mean()),
                    "regret_max": float(regret.max()), "regret_seed_std": float(np.std(per_seed_regret)),
                    "hv_front_mean": float(hv_front.mean()), "regret_front_mean": float(regret_front.mean()),
                    "chosen_regret_mean": float(np.nanmean(chosen)),
                    "violations": int(sum(r["violations"] for r in rs)), "budgets": 3 * len(rs),
                    "seconds_mean": float(np.mean([r["seconds"] for r in rs])), "runs": len(rs)}
    return summary


def markdown(res: dict) -> str:
    """The summary table."""
    lines = ["| setting | algorithm | evals | HV % (mean / min; seed std) | regret pts (mean / max; seed std) "
             "| reported front HV % / regret | chosen regret | budget violations | s/run |", "|---" * 9 + "|"]
    for setting, by_alg in res["summary"].items():
        for alg, by_n in by_alg.items():
            for n, s in by_n.items():
                lines.append(f"| {setting} | {alg} | {n} | {100 * s['hv_mean']:.2f} / {100 * s['hv_min']:.2f}; "
                             f"{100 * s['hv_seed_std']:.2f} | {s['regret_mean']:.3f} / {s['regret_max']:.2f}; "
                             f"{s['regret_seed_std']:.3f} | {100 * s['hv_front_mean']:.2f} / "
                             f"{s['regret_front_mean']:.3f} | {s['chosen_regret_mean']:.3f} | "
                             f"{s['violations']}/{s['budgets']} | {s['seconds_mean']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    """Run, print the table, write bench/results/search_quality.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--evals", default="100,300,1000")
    parser.add_argument("--devices", default="", help="comma-separated subset of the 9 devices (default all)")
    parser.add_argument("--settings", default="a,b")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--out", default=str(RESULTS / "search_quality.json"))
    args = parser.parse_args()
    for path in (ACCURACY, LATENCY):
        if not path.exists():
            raise SystemExit(f"data not found: {path}")
    res = run(args.seeds, [int(e) for e in args.evals.split(",")],
              [d for d in args.devices.split(",") if d] or None, args.settings.split(","),
              tuple(args.algorithms.split(",")))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(markdown(res))
    print(f"\n{res['config']['elapsed_s']}s, load {res['config']['loadavg_before']} -> "
          f"{res['config']['loadavg_after']}; wrote {args.out}")


if __name__ == "__main__":
    main()
