"""Few-shot latency transfer, leave-one-device-out on the 9-device NAS-Bench-201 latency data.

For every device (held out as the target) and k in {5, 10, 20, 50}: draw k
non-degenerate architectures at random (seeded), give the model their target
latency plus every other device's full column, and score the predictions on all
the other non-degenerate architectures (Spearman ρ, Kendall τ; mean over draws).
Models: ``TransferRegressor`` (cost_models/transfer.py), a FLOPs ranking, and a
ridge regression on the source-device latencies fit on the k samples. Two ceilings
per device put the few-shot figures in context: the in-sample least-squares fit of the
transfer features on all of the device's data ("oracle"), and a gradient-boosted model
on all of it, 5-fold cross-validated ("ceiling"); plus how strongly what the features
miss on a device correlates with what they miss on any other device.

    python bench/transfer.py [--draws 20] [--seed 0]

Prints a markdown table and writes bench/results/transfer.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, cross_val_predict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cost_models.metrics import kendall_tau, spearman_rho, summary  # noqa: E402
from cost_models.transfer import TransferRegressor, arch_features, read_prior  # noqa: E402
from lut.atomic import write_text_atomic  # noqa: E402
from lut.nasbench201 import encode  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared/data/nasbench201_latency/latency_ms.csv"
RESULTS = Path(__file__).resolve().parent / "results"
KS = (5, 10, 20, 50)
MODELS = ("transfer", "flops", "ridge")


def nb201_mflops(codes: np.ndarray) -> np.ndarray:
    """Multiply-accumulates (millions) of the NAS-Bench-201 CIFAR network (C=16, 5 cells per stage).

    Cells: a 1x1 ReLU-Conv-BN costs C*C*H*W MACs, a 3x3 one 9*C*C*H*W, pools and
    skips ~0. Constant parts: 3x3 stem, two ResNet reduction blocks (3x3 stride 2,
    3x3, avg-pool + 1x1 shortcut), the 64->10 classifier.
    """
    conv_units = (codes == 2).sum(axis=1) + 9 * (codes == 3).sum(axis=1)
    cells = sum(5 * c * c * hw * hw for c, hw in ((16, 32), (32, 16), (64, 8)))
    reductions = sum((9 * c * 2 * c + 9 * (2 * c) ** 2 + c * 2 * c) * hw * hw for c, hw in ((16, 16), (32, 8)))
    constant = 9 * 3 * 16 * 32 * 32 + reductions + 64 * 10
    return (conv_units * cells + constant) / 1e6


def predict(model: str, codes: np.ndarray, sources: np.ndarray, train: np.ndarray,
            y_train: np.ndarray, mflops: np.ndarray) -> np.ndarray:
    """One model's predictions for every architecture, fit on the ``train`` indices only."""
    if model == "transfer":
        return TransferRegressor().fit(codes[train], y_train, codes, sources).predict(codes)
    if model == "flops":
        return mflops
    return Ridge(alpha=1.0).fit(sources[train], y_train).predict(sources)


def oracle(codes: np.ndarray, y: np.ndarray) -> float:
    """Spearman ρ of a least-squares fit of the transfer features on ALL of a device's data.

    Not a few-shot figure: the in-sample ceiling of the feature set, which on noisy
    devices is set by measurement noise.
    """
    phi = arch_features(codes)
    return spearman_rho(y, phi @ np.linalg.lstsq(phi, y, rcond=None)[0])


def ceiling(codes: np.ndarray, y: np.ndarray) -> float:
    """Spearman ρ of a gradient-boosted model fit on ALL of a device's data, 5-fold cross-validated.

    Features: the transfer features plus the op of every edge (one-hot), so interactions a
    linear model misses are available. What no few-shot model can beat: what remains is
    measurement noise, or structure that needs thousands of the device's own samples.
    """
    onehot = np.concatenate([(codes == op).astype(float) for op in range(int(codes.max()) + 1)], axis=1)
    x = np.concatenate([arch_features(codes), onehot], axis=1)
    model = HistGradientBoostingRegressor(max_iter=400, random_state=0)
    pred = cross_val_predict(model, x, y, cv=KFold(5, shuffle=True, random_state=0))
    return spearman_rho(y, pred)


def residual_correlation(codes: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Per device, the largest correlation of its least-squares residual with another device's.

    Near zero means what the features miss on one device is not seen on any other: no
    prior built from other devices can predict it.
    """
    phi = arch_features(codes)
    resid = latency - phi @ np.linalg.lstsq(phi, latency, rcond=None)[0]
    corr = np.corrcoef(resid.T)
    np.fill_diagonal(corr, -np.inf)
    return corr.max(axis=1)


def scores(model: str, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Metrics of one draw: all of them for the transfer model, ranks only for the baselines."""
    if model == "transfer":
        return summary(y_true, y_pred)
    return {"spearman_rho": spearman_rho(y_true, y_pred), "kendall_tau": kendall_tau(y_true, y_pred)}


def run(draws: int, seed: int) -> dict:
    """Every figure of the benchmark as a JSON-ready dict."""
    start = time.perf_counter()
    archs, devices, latency = read_prior(DATA)
    codes = encode(archs)
    mflops = nb201_mflops(codes)
    n = len(codes)
    per_device: dict = {m: {d: {} for d in devices} for m in MODELS}
    for j, device in enumerate(devices):
        sources = np.delete(latency, j, axis=1)
        for k in KS:
            rng = np.random.default_rng([seed, j, k])
            draws_scores: dict[str, list[dict]] = {m: [] for m in MODELS}
            for _ in range(draws):
                train = rng.choice(n, size=k, replace=False)
                test = np.setdiff1d(np.arange(n), train)
                for m in MODELS:
                    pred = predict(m, codes, sources, train, latency[train, j], mflops)
                    draws_scores[m].append(scores(m, latency[test, j], pred[test]))
            for m, got in draws_scores.items():
                entry = {key: float(np.mean([s[key] for s in got])) for key in got[0] if key != "n"}
                entry["spearman_rho_worst_draw"] = float(min(s["spearman_rho"] for s in got))
                per_device[m][device][str(k)] = entry
        print(f"{device}: done ({time.perf_counter() - start:.0f}s)", file=sys.stderr)
    mean = {m: {str(k): {key: float(np.mean([per_device[m][d][str(k)][key] for d in devices]))
                         for key in ("spearman_rho", "kendall_tau")} for k in KS} for m in MODELS}
    return {"config": {"data": str(DATA), "draws": draws, "seed": seed, "ks": list(KS), "n_archs": n,
                       "devices": devices, "evaluation": "non-degenerate archs not among the k samples",
                       "elapsed_s": round(time.perf_counter() - start, 1)},
            "mean": mean, "per_device": per_device,
            "oracle_spearman": {d: oracle(codes, latency[:, j]) for j, d in enumerate(devices)},
            "ceiling_spearman_gbm_cv5": {d: ceiling(codes, latency[:, j]) for j, d in enumerate(devices)},
            "max_residual_correlation": dict(zip(devices, map(float, residual_correlation(codes, latency))))}


def markdown(res: dict) -> str:
    """The result tables in markdown: means per k, then per device at every k."""
    devices = res["config"]["devices"]
    lines = ["| model | " + " | ".join(f"k={k} ρ / τ" for k in KS) + " |", "|---" * (len(KS) + 1) + "|"]
    for m in MODELS:
        cells = [f"{res['mean'][m][str(k)]['spearman_rho']:.3f} / {res['mean'][m][str(k)]['kendall_tau']:.3f}"
                 for k in KS]
        lines.append(f"| {m} (mean of {len(devices)}) | " + " | ".join(cells) + " |")
    for m in MODELS:
        lines += ["", f"**{m}** — Spearman ρ / Kendall τ per held-out device"
                  + (" (oracle = full-data fit of the same features, in sample; ceiling = gradient"
                     " boosting on all of the device's data, 5-fold CV)" if m == "transfer" else ""), "",
                  "| device | " + " | ".join(f"k={k}" for k in KS)
                  + (" | oracle | ceiling |" if m == "transfer" else " |"),
                  "|---" * (len(KS) + 1 + 2 * (m == "transfer")) + "|"]
        for d in devices:
            cells = [f"{res['per_device'][m][d][str(k)]['spearman_rho']:.3f} / "
                     f"{res['per_device'][m][d][str(k)]['kendall_tau']:.3f}" for k in KS]
            if m == "transfer":
                cells += [f"{res['oracle_spearman'][d]:.3f}", f"{res['ceiling_spearman_gbm_cv5'][d]:.3f}"]
            lines.append(f"| {d} | " + " | ".join(cells) + " |")
        if m == "transfer":
            means = [float(np.mean([res[key][d] for d in devices])) for key in ("oracle_spearman",
                                                                                "ceiling_spearman_gbm_cv5")]
            lines.append("| mean | " + " | ".join(f"{res['mean'][m][str(k)]['spearman_rho']:.3f}" for k in KS)
                         + f" | {means[0]:.3f} | {means[1]:.3f} |")
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark, print the markdown tables, write bench/results/transfer.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=20, help="random draws of the k samples (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"data not found: {DATA}")
    res = run(args.draws, args.seed)
    RESULTS.mkdir(exist_ok=True)
    write_text_atomic(RESULTS / "transfer.json", json.dumps(res, indent=2) + "\n")
    print(markdown(res))
    print(f"\n{args.draws} draws per (device, k), seed {args.seed}, {res['config']['elapsed_s']}s; "
          f"wrote {RESULTS / 'transfer.json'}")


if __name__ == "__main__":
    main()
