"""Which regressor fits a device's kernel samples better: scikit-learn's boosted trees or xgboost's,
on the roofline residual or on plain log latency?

On the kernel samples a device's predictor was built from (``hwnas costmodel fit
--onnx-kernels``; the rows :func:`hwnas.kernel_fit.training_rows` reads from the store),
per kernel type: 5-fold cross-validated RMSPE and share within ±10% of gradient-boosted
trees with the same settings (the predictor's: 300 trees, depth 4, learning rate 0.05,
subsample 0.8, same folds): scikit-learn's ``GradientBoostingRegressor`` and xgboost's
``XGBRegressor``, each on the residual of the FLOPs/traffic roofline
(:class:`cost_models.kernel_model.RooflineTrees`, what the predictor uses), and scikit-learn's
on plain log latency (the predictor's first form). Writes
``bench/results/kernel_regressors.json``.

    python -m bench.kernel_regressors [--device local] [--config hardware.yaml]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from bench.common import machine, write
from cost_models.kernel_model import KernelRegressor, RooflineTrees, cross_val_log, features, rel_errors


def main(argv: list[str] | None = None) -> int:
    """Cross-validate both regressors per kernel type and write the results JSON."""
    from xgboost import XGBRegressor

    from hwnas import config, kernel_fit
    from hwnas.store import Store

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="local")
    p.add_argument("--config", default="hardware.yaml")
    args = p.parse_args(argv)
    where = machine()
    reg = config.load(args.config)
    device = reg.device(args.device)
    store = Store(reg.workspace)
    rules, _ = kernel_fit.ensure_rules(reg, device, store)
    rows, _ = kernel_fit.training_rows(store, device, rules)
    ref = KernelRegressor()

    def xgb() -> XGBRegressor:
        return XGBRegressor(n_estimators=ref.n_estimators, learning_rate=ref.learning_rate, max_depth=ref.max_depth,
                            subsample=0.8, random_state=0, n_jobs=1, tree_method="exact")

    per_type = {}
    for kind, rs in sorted(rows.items()):
        if len(rs) < 10:
            continue
        X = np.stack([features(k) for _cfg, k, _y in rs])
        y = np.log(np.maximum([t for *_r, t in rs], 1e-3))
        per_type[kind] = {
            "n": len(rs),
            "sklearn": rel_errors(np.exp(cross_val_log(X, y, lambda: RooflineTrees(ref._gbr()), 0)), np.exp(y)),
            "xgboost": rel_errors(np.exp(cross_val_log(X, y, lambda: RooflineTrees(xgb()), 0)), np.exp(y)),
            "sklearn_plain": rel_errors(np.exp(cross_val_log(X, y, ref._gbr, 0)), np.exp(y))}
    better = sorted(k for k, v in per_type.items() if v["xgboost"]["rmspe"] < v["sklearn"]["rmspe"])
    roofline = sorted(k for k, v in per_type.items() if v["sklearn"]["rmspe"] < v["sklearn_plain"]["rmspe"])
    result = {"machine": where, "device": device.name, "workspace": str(reg.workspace), "per_type": per_type,
              "xgboost_lower_rmspe_on": better, "roofline_lower_rmspe_on": roofline, "types": len(per_type)}
    out = write("kernel_regressors", result)
    for kind, v in per_type.items():
        sk, xg, plain = v["sklearn"], v["xgboost"], v["sklearn_plain"]
        print(f"{kind:<11} n={v['n']:<5} RMSPE sklearn {sk['rmspe']:6.1%}  xgboost {xg['rmspe']:6.1%}  "
              f"plain trees {plain['rmspe']:6.1%}   ±10% {sk['within_10']:4.0%} / {xg['within_10']:4.0%} / "
              f"{plain['within_10']:4.0%}")
    print(f"xgboost lower on {len(better)} of {len(per_type)} types, the roofline residual lower than plain "
          f"trees on {len(roofline)} -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
