"""Hardware in the loop on ``local``: how a cost model fitted on few networks moves toward the
measurements as ``hwnas search`` measures its finalists and refits it.

The nasbench201 blocks are measured once (``bench/.work/search_loop/blocks/``, resumable). Per
seed, in a fresh copy of that workspace (``seed-S/``; default measurement settings: 3 sessions
per network): measure ``--initial`` sampled networks, fit the cost model, then
``hwnas search --device local --rounds R`` with NAS-Bench-201's ``cifar10_valid``. Reported per
round: the median |predicted - measured| of its finalists (new architectures the search picked
with the current model), of the same finalists with the refitted model, and the session spread
of the finalists' measurements (the noise floor); over all finalists, the initial model against
the last refitted one. The machine's load average before and after, and the wall time, are
recorded: timing is the device's, and a loaded machine widens every figure.
Writes ``bench/results/search_loop.json``.

    python -m bench.search_loop [--seeds 0 1 2] [--initial 10] [--rounds 3] [--evaluations 300]
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, hwnas, local_config, machine, write
from hwnas import costmodel_api as api
from hwnas import sweep
from hwnas.store import Store

WORK = Path(__file__).resolve().parent / ".work" / "search_loop"


def _mape(predicted, measured) -> float:
    predicted, measured = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    return float(100 * np.median(np.abs(predicted - measured) / measured))


def blocks() -> Path:
    """A workspace holding the measured nasbench201 block LUT (resumable; shared by the seeds)."""
    folder = WORK / "blocks"
    folder.mkdir(parents=True, exist_ok=True)
    hwnas("profile", "--config", str(local_config(folder)), "--device", "local", "--space", "nasbench201",
          "--what", "blocks")
    return folder / "ws"


def run_seed(seed: int, args: argparse.Namespace, lut: Path) -> dict:
    """One workspace (a copy of the block LUT's), one search with hardware in the loop; the per-round figures."""
    folder = WORK / f"seed-{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copytree(lut, folder / "ws", ignore=shutil.ignore_patterns("agents", "onnx"))
    cfg = str(local_config(folder))
    dev = ["--config", cfg, "--device", "local"]
    hwnas("profile", *dev, "--space", "nasbench201", "--what", "networks", "--num", str(args.initial),
          "--seed", str(100 + seed))
    hwnas("costmodel", "fit", *dev, "--space", "nasbench201")
    wall, out = hwnas("search", "--space", "nasbench201", *dev, "--accuracy", "nasbench201:cifar10_valid",
                      "--evaluations", str(args.evaluations), "--latency-ms", args.budgets, "--rounds",
                      str(args.rounds), "--finalists", str(args.finalists), "--seed", str(seed),
                      "--out", str(folder / "search"))
    st = Store(folder / "ws")
    rounds, measured = [], {}
    for r in out["rounds"]:
        d = r["devices"][0]
        spreads = [st.latest("local", "onnxruntime", sweep.network_signature("nasbench201", f["arch"])).session_spread
                   for f in d["finalists"]]
        measured.update({f["arch"]: f["measured_ms"] for f in d["finalists"]})
        rounds.append({"round": r["round"], "finalists": len(d["finalists"]), "new": d["newly_measured"],
                       "median_abs_error_pct": d["median_abs_error_pct"],
                       "after_refit_median_abs_error_pct": (d["refit"] or {}).get("median_abs_error_pct"),
                       "n_train_after": (d["refit"] or {}).get("n_train"),
                       "median_session_spread_pct": 100 * float(np.median(spreads)), "agree": d["agree"]})
    initial = api.load(folder / "search" / "models" / "round-1" / "local.json", "nasbench201")
    final = api.load(api.model_path(folder / "ws", "local", "onnxruntime", "nasbench201"), "nasbench201")
    archs, ms = list(measured), list(measured.values())
    return {"seed": seed, "search_wall_s": wall, "rounds": rounds,
            "all_finalists": {"n": len(archs), "initial_model_median_abs_error_pct": _mape(initial.predict(archs), ms),
                              "last_model_median_abs_error_pct": _mape(final.predict(archs), ms)}}


def main() -> None:
    """Run the seeds and write the results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--initial", type=int, default=10, help="networks the first cost model is fitted on")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--finalists", type=int, default=8)
    p.add_argument("--evaluations", type=int, default=300)
    p.add_argument("--budgets", default="0.3,0.6")
    args = p.parse_args()
    start, where = time.perf_counter(), machine()
    lut, runs = blocks(), []
    for seed in args.seeds:
        runs.append(run_seed(seed, args, lut))
        run = runs[-1]
        write("search_loop", {"settings": vars(args), "machine": where, "loadavg_after": os.getloadavg(),
                              "wall_s": time.perf_counter() - start, "runs": runs,
                              "note": "the machine was shared by 8 parallel sessions (loaded)"})
        print(f"seed {run['seed']}: " + "; ".join(
            f"round {r['round']} {r['median_abs_error_pct']:.1f}% (refit {r['after_refit_median_abs_error_pct']}, "
            f"spread {r['median_session_spread_pct']:.1f}%)" for r in run["rounds"])
            + f"; all {run['all_finalists']['n']} finalists: initial "
              f"{run['all_finalists']['initial_model_median_abs_error_pct']:.1f}% -> last "
              f"{run['all_finalists']['last_model_median_abs_error_pct']:.1f}%")
    print(f"-> {RESULTS / 'search_loop.json'}")


if __name__ == "__main__":
    main()
