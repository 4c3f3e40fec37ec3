"""Accuracy of the kernel predictor on the evaluation corpus, against two baselines and the noise floor.

On every corpus model measured on the device (``python -m bench.corpus measure``), per
family and overall: the share within ±5% and ±10%, RMSPE and Kendall τ of

* the kernel predictor (``hwnas predict``; never trained on the corpus),
* FLOPs-linear: latency = a·FLOPs + b, fitted by 5-fold cross-validation *on the corpus*
  itself (each model predicted by a fit without it — an advantage this baseline gets),
* the plain sum of per-node latencies from one profile of the model on the device
  (ONNX Runtime's profiler or TVM's timed PrimFuncs, 10 runs, no fixed call cost added),

against the stored measurement (the corpus's first measurement), and the noise floor:
the same figures for one fresh re-measurement (``measure --pass again``) against the
stored value. Measurements are compared speed-normalised (:mod:`hwnas.speed`: latency at
the device's reference speed, which the predictor is trained on) and, as ``*_raw``, raw.
The noise floor is also given over every later measurement of a model against its first,
split by how long after the first it came (within an hour, later) and by how far the reference
kernel moved between the two (under 3%, more), each with, per size third, how far raw and
normalised latencies moved: the reference kernel (a small conv) is what
normalisation divides by, so a model whose speed moved otherwise shows up there. The reference
kernel's move between the build's measurements and the corpus's is reported too, and so is the
memory probe's (a conv that streams 8 MB of weights, timed before and after every session; kernels
whose weights outgrow the caches move with it). The device's normalisation (fixed by the build's
speed check) is recorded, with the noise floor under each of the three (``noise_floor_by_normaliser``):
whether the check chose the one under which the corpus's re-measurements agree best. Also reports
the predictor's build cost from the store (kernel samples measured, on-device seconds) and the
load average. Writes
``bench/results/predict_accuracy.json`` (``predict_accuracy_<device>.json`` for a device other
than ``local``) and beside it a PNG: predicted ÷ measured and re-measured ÷ stored against model
size. ``--plot FILE`` draws that PNG from an existing results file and measures nothing.

    python -m bench.predict_accuracy [--device local] [--config hardware.yaml] [--corpus DIR]
    python -m bench.predict_accuracy --plot bench/results/predict_accuracy.json
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import machine, run, stored_at, work_split, write
from bench.corpus import DEFAULT_OUT, load


def profile_sums(registry: Any, device: Any, store: Any, normaliser: Any,
                 paths: list[Path]) -> dict[str, tuple[float, float]]:
    """Per model, the sum of its per-node profiled times (ms), one profile each on the device: raw, and
    at the device's reference speed (scaled by the reference kernel timed around the profile)."""
    from hwnas import fleet
    from hwnas.measure import device_settings, drift_settings, kernel_profile

    def work(dev, client) -> dict[str, tuple[float, float]]:
        settings = {**device_settings(dev), **drift_settings(store, dev.name, client)}
        sums = {}
        for path in paths:
            reply = kernel_profile(dev, client, Path(path), settings, registry.workspace, runs=10)
            raw = sum(n["dur_us"] for n in reply["nodes"]) / 1000.0
            sums[str(path)] = (raw, raw * normaliser.reply_scale(dev.name, reply))
        return sums

    outcome = fleet.run(registry, [device], work, store=store)[0]
    if outcome.error:
        raise outcome.error
    return outcome.value


def flops_cv(flops: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold predictions of latency = a·FLOPs + b (least squares)."""
    pred = np.zeros_like(y)
    order = np.random.default_rng(seed).permutation(len(y))
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        a, b = np.polyfit(flops[train], y[train], 1)
        pred[test] = a * flops[test] + b
    return pred


def build_cost(store: Any, device: Any) -> dict[str, Any]:
    """Kernel samples, context networks and calibration networks stored for the device, the on-device
    seconds their measurement took (sessions' phases; the per-node profiles and the rule probes come on top)
    and the reference kernel's and the memory probe's median times while they were measured."""
    from hwnas.kernel_fit import CALIBRATION_SPACE, SPACE

    samples = store.select(device.name, device.backend, space=SPACE)
    networks = store.select(device.name, device.backend, item="network", space=CALIBRATION_SPACE)
    timed, phases, total = work_split(samples + networks)
    return {"kernel_samples": sum(m.item == "kernel" for m in samples),
            "context_networks": sum(m.item == "network" for m in samples), "calibration_networks": len(networks),
            "on_device_s": total, "timed_rounds_s": timed, "phases_s": phases,
            "reference_kernel_median_ms": _median([_probe_ms(m) for m in samples + networks]),
            "memory_probe_median_ms": _median([_probe_ms(m, MEMORY) for m in samples + networks])}


MEMORY = "memory_probe_median_ms"
"""The stats key of a measurement's median memory-probe time (:mod:`hwnas.speed`)."""


def _probe_ms(m: Any, key: str = "reference_rounds_median_ms") -> float | None:
    """The median round probe (the reference kernel's time) of a stored measurement, or with ``key`` =
    :data:`MEMORY` its memory probe's, if it has one."""
    return (m.stats or {}).get(key)


def _median(values: list[float | None]) -> float | None:
    """Median of the values that are set (None when none is)."""
    found = [v for v in values if v]
    return float(np.median(found)) if found else None


def _corpus_vs_build(rows: list[dict[str, Any]], key: str, build_ms: float | None) -> float | None:
    """The median of the rows' probe ``key`` ÷ the build's median ``build_ms`` (None when either is missing)."""
    corpus = _median([r[key] for r in rows])
    return corpus / build_ms if corpus and build_ms else None


def _minutes(a: str, b: str) -> float:
    """Minutes from stored UTC time ``a`` to ``b``."""
    return (stored_at(b) - stored_at(a)).total_seconds() / 60.0


def _median_ratio(pairs: list[tuple[float, float]]) -> float | None:
    """Median of ``b / a`` over pairs where both are set (None when none is)."""
    ratios = [b / a for a, b in pairs if a and b]
    return float(np.median(ratios)) if ratios else None


def _moved(r: dict[str, Any]) -> float | None:
    """How far the reference kernel moved between a pair's two measurements (|log ratio|; None unknown)."""
    return abs(float(np.log(r["probe_ratio"]))) if r.get("probe_ratio") else None


BY_GAP = (("within 60 min", lambda r: r["gap_min"] <= 60), ("after 60 min", lambda r: r["gap_min"] > 60))
"""Re-measurement pairs grouped by the time between their two measurements."""
BY_REFERENCE_MOVE = (("reference kernel moved < 3%", lambda r: (m := _moved(r)) is not None and m < np.log(1.03)),
                     ("reference kernel moved ≥ 3%", lambda r: (m := _moved(r)) is not None and m >= np.log(1.03)))
"""Re-measurement pairs grouped by how far the reference kernel (what normalisation divides by) moved."""


def remeasure_pair(first: Any, later: Any, normaliser: Any) -> dict[str, Any]:
    """A stored measurement and a later one of the same model: latencies (normalised and raw), the minutes
    between them, and the reference kernel's and the memory probe's moves (later ÷ first)."""
    probes = (_probe_ms(first), _probe_ms(later))
    memory = (_probe_ms(first, MEMORY), _probe_ms(later, MEMORY))
    return {"measured_ms": normaliser.latency_ms(first), "again_ms": normaliser.latency_ms(later),
            "raw_measured_ms": first.latency_ms, "raw_again_ms": later.latency_ms,
            "gap_min": _minutes(first.created_utc, later.created_utc),
            "probe_ratio": probes[1] / probes[0] if all(probes) else None,
            "memory_ratio": memory[1] / memory[0] if all(memory) else None}


def noise_floor(pairs: list[dict[str, Any]], groups: tuple = BY_GAP) -> dict[str, Any]:
    """The noise floor of re-measurement pairs (:func:`remeasure_pair`) per group of ``groups`` (label,
    predicate): ±10% share and RMSPE (normalised and raw), the median gap, reference-kernel and memory-probe
    moves, the
    correlation of the normalised ratio with model size, and per size third the median raw and normalised
    ratios."""
    from cost_models.metrics import summary

    out = {}
    for label, keep in groups:
        sub = sorted((r for r in pairs if r["again_ms"] is not None and keep(r)), key=lambda r: r["measured_ms"])
        if len(sub) < 3:
            out[label] = {"n": len(sub)}
            continue
        ratio = np.array([r["again_ms"] / r["measured_ms"] for r in sub])
        thirds = np.array_split(np.arange(len(sub)), 3)
        out[label] = {
            "n": len(sub), "median_gap_min": float(np.median([r["gap_min"] for r in sub])),
            "normalised": summary(np.array([r["measured_ms"] for r in sub]), np.array([r["again_ms"] for r in sub])),
            "raw": summary(np.array([r["raw_measured_ms"] for r in sub]), np.array([r["raw_again_ms"] for r in sub])),
            "reference_kernel_ratio": _median_ratio([(1.0, r["probe_ratio"]) for r in sub]),
            "memory_probe_ratio": _median_ratio([(1.0, r.get("memory_ratio")) for r in sub]),
            "corr_log_ratio_log_size": (float(np.corrcoef(np.log(ratio), np.log([r["measured_ms"] for r in sub]))[0, 1])
                                        if np.ptp(ratio) > 0 else None),
            "by_size_third": [{"measured_ms": [sub[t[0]]["measured_ms"], sub[t[-1]]["measured_ms"]],
                               "raw_ratio": _median_ratio([(sub[i]["raw_measured_ms"], sub[i]["raw_again_ms"])
                                                           for i in t]),
                               "normalised_ratio": float(np.median(ratio[t]))} for t in thirds]}
    return out


def plot(result: dict[str, Any], path: Path) -> Path:
    """Write ``path`` (PNG, atomically): per corpus model, predicted ÷ measured (by family) and re-measured ÷
    stored (within an hour, later) against measured latency, with the ±10% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from lut.atomic import atomic_path

    rows = result["rows"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=110, sharey=True)
    for i, family in enumerate(sorted({r["family"] for r in rows})):
        sub = [r for r in rows if r["family"] == family]
        left.scatter([r["measured_ms"] for r in sub], [r["predicted_ms"] / r["measured_ms"] for r in sub], s=12,
                     color=plt.cm.tab20(i % 20), label=family)
    again = [r for r in rows if r.get("again_ms")]
    groups = [*((f"re-measured {label}", lambda r, keep=keep: r.get("gap_min") is not None and keep(r))
                for label, keep in BY_GAP),
              ("re-measured (gap not recorded)", lambda r: r.get("gap_min") is None)]
    for (label, keep), colour in zip(groups, ("0.5", "tab:orange", "tab:purple")):
        sub = [r for r in again if keep(r)]
        if sub:
            right.scatter([r["measured_ms"] for r in sub], [r["again_ms"] / r["measured_ms"] for r in sub], s=12,
                          c=colour, label=f"{label} ({len(sub)})")
    kp = result["overall"]["kernel_predictor"]
    left.set_title(f"kernel predictor: {kp['within_10']:.1%} within ±10%, RMSPE {kp['rmspe']:.1%}", fontsize=9)
    right.set_title("noise floor: re-measured ÷ stored (speed-normalised)", fontsize=9)
    left.set_ylabel("÷ measured (speed-normalised)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # the decade labels only: minor ones overlap
        ax.axhspan(0.9, 1.1, color="tab:green", alpha=0.12, lw=0)
        ax.axhline(1.0, c="tab:green", lw=0.8)
        ax.set_xlabel(f"measured latency on {result['device']} (ms)")
        ax.legend(fontsize=6, loc="upper right", ncol=2)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the bench; prints a table per predictor and writes the results file."""
    from cost_models.metrics import summary
    from hwnas import config
    from hwnas.errors import BadInput
    from hwnas.predict import load_predictor, read_cnn
    from hwnas.speed import Normaliser, compare
    from hwnas.store import Store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="local")
    parser.add_argument("--config", default="hardware.yaml")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--plot", type=Path, metavar="FILE", help="draw the PNG of an existing results file, then stop")
    args = parser.parse_args(argv)
    if args.plot:
        try:
            print(plot(json.loads(args.plot.read_text()), args.plot.with_suffix(".png")))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"{args.plot}: not a predict-accuracy results file ({type(exc).__name__}: {exc})") from None
        return 0
    where = machine()
    started = time.time()
    reg = config.load(args.config)
    device = reg.device(args.device)
    store = Store(reg.workspace)
    predictor = load_predictor(reg, device.name)
    normaliser = Normaliser(store)
    rows, pairs, measurements = [], [], []
    for e in load(args.corpus):
        history = store.history(device.name, device.backend, f"onnx:{e['sha256']}")
        if not history:
            continue
        p = predictor.predict_kernels(*read_cnn(e["path"], predictor))
        later = [remeasure_pair(history[0], m, normaliser) for m in history[1:]]
        pairs += later
        measurements += [(history[0], m) for m in history[1:]]
        rows.append({"family": e["family"], "file": e["file"], "path": e["path"],
                     **(later[0] if later else {"measured_ms": normaliser.latency_ms(history[0]), "again_ms": None,
                                                "raw_measured_ms": history[0].latency_ms, "raw_again_ms": None,
                                                "gap_min": None, "probe_ratio": None}),
                     "remeasured": len(later), "first_probe_ms": _probe_ms(history[0]),
                     "first_memory_probe_ms": _probe_ms(history[0], MEMORY),
                     "session_spread": history[0].session_spread,
                     "predicted_ms": p.latency_ms, "std_ms": p.std_ms,
                     "flops": p.flops, "unpredicted": p.unpredicted,
                     "loadavg": (history[0].facts or {}).get("loadavg")})
    if not rows:
        raise SystemExit("no corpus model is measured; run `python -m bench.corpus measure` first")
    sums = profile_sums(reg, device, store, normaliser, [r["path"] for r in rows])
    y = np.array([r["measured_ms"] for r in rows])
    fl = flops_cv(np.array([r["flops"] for r in rows]), y)
    for r, f in zip(rows, fl):
        r["flops_linear_ms"] = float(f)
        r["raw_profile_sum_ms"], r["profile_sum_ms"] = sums[str(r["path"])]
    families = sorted({r["family"] for r in rows})
    build = {**build_cost(store, device), **predictor.manifest.get("build", {})}

    def score(keys: tuple[str, str], subset: list[dict[str, Any]]) -> dict[str, float]:
        truth, key = keys
        pairs = [(r[truth], r[key]) for r in subset if r[key] is not None]
        if len(pairs) < 2:
            return {"n": len(pairs)}
        t, p = np.array(pairs).T
        return summary(t, p)

    # (truth, estimate): speed-normalised figures first, then the same against raw latencies
    norm, raw = "measured_ms", "raw_measured_ms"
    predictors = {"kernel_predictor": (norm, "predicted_ms"), "flops_linear_cv": (norm, "flops_linear_ms"),
                  "profile_node_sum": (norm, "profile_sum_ms"), "noise_floor_remeasure": (norm, "again_ms"),
                  "kernel_predictor_raw": (raw, "predicted_ms"), "profile_node_sum_raw": (raw, "raw_profile_sum_ms"),
                  "noise_floor_raw_remeasure": (raw, "raw_again_ms")}
    result = {"machine": where, "loadavg_after": os.getloadavg(), "wall_s": time.time() - started,
              "device": device.name, "models": len(rows), "families": len(families),
              "overall": {name: score(key, rows) for name, key in predictors.items()},
              "per_family": {f: {name: score(key, [r for r in rows if r["family"] == f])
                                 for name, key in predictors.items()} for f in families},
              "median_session_spread": float(np.median([r["session_spread"] for r in rows])),
              "remeasure_pairs": len(pairs),
              "noise_floor_by_gap": noise_floor(pairs, BY_GAP),
              "noise_floor_by_reference_move": noise_floor(pairs, BY_REFERENCE_MOVE),
              "normaliser": normaliser.check(device.name),
              "noise_floor_by_normaliser": compare(measurements, normaliser)["scores"],
              "reference_kernel_corpus_vs_build": _corpus_vs_build(rows, "first_probe_ms",
                                                                   build["reference_kernel_median_ms"]),
              "memory_probe_corpus_vs_build": _corpus_vs_build(rows, "first_memory_probe_ms", build[MEMORY]),
              "build": build,
              "predictor_cv": predictor.manifest.get("cv"), "regressor": "scikit-learn GradientBoostingRegressor",
              "rows": [{k: (str(v) if isinstance(v, Path) else v) for k, v in r.items()} for r in rows]}
    out = write("predict_accuracy" if device.name == "local" else f"predict_accuracy_{device.name}", result)
    plot(result, out.with_suffix(".png"))
    print(f"{len(rows)} corpus models of {len(families)} families on {device.name} (load average "
          f"{where['loadavg_before']})")
    header = f"{'family':14s}" + "".join(f"{n:>26s}" for n in predictors)
    print(header + "\n" + "-" * len(header))
    for f in [*families, "overall"]:
        scores = result["overall"] if f == "overall" else result["per_family"][f]
        cells = "".join(f"{s.get('within_10', float('nan')):>9.0%} ±10 {s.get('rmspe', float('nan')):>6.1%} rmspe  "
                        if s.get("n", 0) > 1 else f"{'n/a':>26s}" for s in (scores[n] for n in predictors))
        print(f"{f:14s}{cells}")
    by = {**result["noise_floor_by_gap"], **result["noise_floor_by_reference_move"]}
    for label, g in by.items():
        if g["n"] >= 3:
            print(f"noise floor, {label} (n {g['n']}, median gap {g['median_gap_min']:.0f} min): normalised "
                  f"{g['normalised']['within_10']:.0%} ±10, raw {g['raw']['within_10']:.0%}; reference kernel "
                  f"×{g['reference_kernel_ratio'] or float('nan'):.3f}, memory probe "
                  f"×{g['memory_probe_ratio'] or float('nan'):.3f}, raw ratio by size third "
                  + " / ".join(f"{t['raw_ratio']:.3f}" for t in g["by_size_third"]))
    check = result["normaliser"]
    print(f"normalised by {check['method'] if check else 'memory probes where measured (no speed check)'}; "
          "the corpus's re-measurements within ±10% under each: " + ", ".join(
              f"{m} {s['within_10']:.1%}" for m, s in result["noise_floor_by_normaliser"].items() if s))
    for probe in ("reference_kernel", "memory_probe"):
        if result[f"{probe}_corpus_vs_build"]:
            print(f"{probe.replace('_', ' ')}: ×{result[f'{probe}_corpus_vs_build']:.3f} during the corpus's "
                  "measurement against the build's")
    b = result["build"]
    print(f"build: {b['kernel_samples']} kernel samples + {b['context_networks']} context networks + "
          f"{b['calibration_networks']} calibration networks, "
          f"{b['on_device_s'] / 60:.1f} min on the device -> {out}")
    return 0


if __name__ == "__main__":
    run(main)
