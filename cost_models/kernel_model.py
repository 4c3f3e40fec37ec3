"""Kernel-level latency predictors for any ONNX CNN (nn-Meter style), with safe JSON persistence.

A model's latency is predicted as ``base_ms + scale * (sum of its kernels' predicted
latencies) + out_ms_per_melem * (its output elements)``; the kernels come from
:func:`cost_models.onnx_kernels.split` with the rules learned on the device. Each kernel
type has a :class:`KernelRegressor`: a linear roofline (FLOPs, memory traffic, cold weights) times
gradient-boosted regression trees (scikit-learn) on the log residual, over the type's
features plus log FLOPs and log traffic, trained on sampled kernels' measured latencies (less a
call's fixed cost, shared out over a sample's nodes by its profile:
:func:`hwnas.kernel_fit.training_rows`).
``scale`` and ``base_ms`` map a sum of kernel times to the latency the measurement protocol
reports (a call's fixed cost, the return of its outputs); they are fitted on the same kernel
samples (:func:`fit_calibration`), and replaced by a whole-network calibration when one is fitted
and passes :func:`hwnas.kernel_fit.calibration_check`.
After fitting, the trees are kept as plain arrays (:class:`TreeEnsemble`) and evaluated with
numpy, so a saved predictor is JSON, loads without scikit-learn's pickles and predicts the same
on any later version.

An op no regressor covers (type ``other``, or a type the device has no samples of) is
never counted as zero: it gets the element-wise-pass estimate for its tensor size with a
100% uncertainty, a warning naming it, and the prediction says it contains one.

File format (one JSON object)::

    {"format": "hwnas-kernel-predictor", "version": 4,
     "manifest": {versions of hwnas/sklearn/numpy/python, device, backend, runtime_version,
                  providers, feature_schema {type: [names]}, training_sha256, n_train {type: n},
                  cv {type: {rmspe, ...}}, created_utc},
     "rules": FusionRules.to_dict(), "base_ms": float, "scale": float, "out_ms_per_melem": float,
     "regressors": {type: KernelRegressor.to_dict()},
     "sha256": hash of the canonical JSON of everything above}
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cost_models.onnx_kernels import (
    FEATURES,
    FusionRules,
    Kernel,
    feature_vector,
    split,
)
from cost_models.persistence import versions
from lut.formats import write_text_atomic

FORMAT = "hwnas-kernel-predictor"
VERSION = 4
"""2: regressors predict the residual of a FLOPs/traffic roofline (``roofline`` coefficients);
3: the network calibration's weight term counts convolution weights only (:func:`conv_weights`);
4: every regressor sees the kernel's :data:`CONTEXT` (alone or in a network, that network's weights, its
own weights read cold), and the roofline has a fourth, cold-weight term."""
FALLBACK_US_PER_ELEMENT = 1e-3
"""Element-wise estimate when even the ``act`` regressor is missing (1 ns per element)."""


class PredictorFileError(ValueError):
    """A predictor file that cannot be used (unreadable, tampered, other format or version, other schema)."""


def reorder_kernel(numel: int, c: int, to_nchwc: bool) -> Kernel:
    """A layout reorder kernel of a tensor of ``numel`` elements and ``c`` channels."""
    return Kernel("reorder", "reorder", [], {"numel": numel, "c": c, "to_nchwc": int(to_nchwc)}, 0.0, "Reorder")


def traffic(kernel: Kernel) -> float:
    """Elements a kernel reads and writes once each (inputs, outputs, weights): the memory side of
    its roofline, from its features."""
    f = kernel.features
    if kernel.type in ("conv", "gconv"):
        return f["cin"] * f["hin"] ** 2 + f["cout"] * f["hout"] ** 2 + weight_numel(kernel)
    if kernel.type == "dwconv":
        return f["c"] * (f["hin"] ** 2 + f["hout"] ** 2) + weight_numel(kernel)
    if kernel.type == "pool":
        return f["c"] * (f["hin"] ** 2 + f["hout"] ** 2)
    if kernel.type == "globalpool":
        return f["c"] * (f["hin"] ** 2 + 1)
    if kernel.type == "gemm":
        return weight_numel(kernel) + f["cin"] + f["cout"]
    if kernel.type == "resize":
        return f["numel_in"] + f["numel_out"]
    return 2.0 * float(f.get("numel", 0) or f.get("numel_out", 0))


CONTEXT = ("alone", "log2_net_weights", "log2_cold_weights")
"""Where a kernel ran, as the regressors see it: ``alone`` is 1 for a kernel sample (a model of one
kernel) and 0 inside a network; ``log2_net_weights`` is log2(1 + the convolution weights of the model it
ran in), which decides whether its own weights are still in cache when it runs; ``log2_cold_weights`` is
log2(1 + its own weights) inside a network and 0 alone (the roofline's fourth term)."""


def features(kernel: Kernel, net_weights: float | None = None) -> np.ndarray:
    """The regressor input of a kernel: its type's features, its :data:`CONTEXT` (``net_weights``: the
    convolution weights of the network it runs in; default the ``net_weights`` its features carry), then
    log2(1 + FLOPs) and log2(1 + traffic) (the roofline reads these last two and the cold weights)."""
    weights = kernel.features.get("net_weights", 0.0) if net_weights is None else net_weights
    alone = float(kernel.features.get("alone", 0))
    cold = 0.0 if alone else weight_numel(kernel)
    return np.append(feature_vector(kernel), [alone, math.log2(1.0 + weights), math.log2(1.0 + cold),
                                              math.log2(1.0 + kernel.flops), math.log2(1.0 + traffic(kernel))])


def feature_schema() -> dict[str, list[str]]:
    """Feature names per kernel type, as the regressors see them."""
    return {t: [*names, *CONTEXT, "log2_flops", "log2_traffic"] for t, names in FEATURES.items()}


def roofline_fit(X: np.ndarray, y_us: np.ndarray) -> np.ndarray:
    """Non-negative ``(a, b, c, d)`` of ``latency ≈ a·FLOPs + b·traffic + c + d·cold weights`` (least
    squares on relative error) from the last three columns of :func:`features` rows. Cold weights are a
    kernel's weights when it runs inside a network, where they may have to come from memory (a sample
    alone finds them in cache): a term linear in them carries over to convs heavier than any context
    network's, which trees on the residual cannot extrapolate to."""
    from scipy.optimize import nnls

    A = _roofline_terms(X)
    coef = nnls(A / y_us[:, None], np.ones(len(y_us)))[0] if len(y_us) >= 3 else np.zeros(4)
    return coef if coef.any() else np.array([0.0, 0.0, float(np.median(y_us)) if len(y_us) else 1.0, 0.0])


def _roofline_terms(X: np.ndarray) -> np.ndarray:
    return np.stack([np.exp2(X[:, -2]) - 1.0, np.exp2(X[:, -1]) - 1.0, np.ones(len(X)), np.exp2(X[:, -3]) - 1.0],
                    axis=1)


def roofline_log(X: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """log of the roofline estimate (µs) for the rows of ``X``, floored at 1e-3 µs."""
    return np.log(np.maximum(_roofline_terms(X) @ coef, 1e-3))


class RooflineTrees:
    """log latency = log(roofline estimate) + boosted trees on (features, log estimate): the trees learn
    how far a kernel falls from a linear FLOPs/traffic model, which they interpolate far better than
    latency itself (a tree is piecewise constant; latency spans four decades)."""

    def __init__(self, gbr: Any) -> None:
        self.gbr = gbr

    def fit(self, X: np.ndarray, y_log: np.ndarray) -> RooflineTrees:
        """Fit on rows ``X`` and log latencies ``y_log``."""
        self.coef = roofline_fit(X, np.exp(y_log))
        base = roofline_log(X, self.coef)
        self.gbr.fit(np.column_stack([X, base]), y_log - base)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Log latencies of the rows of ``X``."""
        return roofline_residual_log(X, self.coef, self.gbr)


def roofline_residual_log(X: np.ndarray, coef: np.ndarray, trees: Any) -> np.ndarray:
    """Log latencies of the rows of ``X``: the roofline ``coef`` plus ``trees`` (anything with
    ``predict``: fitted scikit-learn trees or a :class:`TreeEnsemble`) on the residual."""
    base = roofline_log(X, coef)
    return trees.predict(np.column_stack([X, base])) + base


class TreeEnsemble:
    """Boosted regression trees as flat arrays: ``init + rate * sum(tree values)``; numpy only."""

    def __init__(self, init: float, rate: float, trees: list[dict[str, list]]) -> None:
        self.init = float(init)
        self.rate = float(rate)
        self.trees = [{k: np.asarray(v, dtype=np.float64 if k in ("threshold", "value") else np.int64)
                       for k, v in t.items()} for t in trees]
        # all trees padded into (trees, nodes) arrays, so prediction walks every tree at once
        width = max((len(t["left"]) for t in self.trees), default=1)
        self._left = np.full((len(self.trees), width), -1, dtype=np.int64)
        self._right = np.full((len(self.trees), width), -1, dtype=np.int64)
        self._feature = np.zeros((len(self.trees), width), dtype=np.int64)
        self._threshold = np.zeros((len(self.trees), width))
        self._value = np.zeros((len(self.trees), width))
        for i, t in enumerate(self.trees):
            n = len(t["left"])
            self._left[i, :n], self._right[i, :n] = t["left"], t["right"]
            self._feature[i, :n], self._threshold[i, :n], self._value[i, :n] = \
                np.maximum(t["feature"], 0), t["threshold"], t["value"]

    @classmethod
    def from_sklearn(cls, gbr: Any) -> TreeEnsemble:
        """The trees of a fitted ``GradientBoostingRegressor`` (squared-error loss)."""
        trees = []
        for est in gbr.estimators_[:, 0]:
            t = est.tree_
            trees.append({"left": t.children_left.tolist(), "right": t.children_right.tolist(),
                          "feature": t.feature.tolist(), "threshold": t.threshold.tolist(),
                          "value": t.value[:, 0, 0].tolist()})
        init = float(np.ravel(gbr.init_.predict(np.zeros((1, gbr.n_features_in_))))[0])
        return cls(init, gbr.learning_rate, trees)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for the rows of ``X``."""
        X = np.asarray(X, dtype=np.float64)
        trees = np.arange(len(self.trees))[:, None]
        node = np.zeros((len(self.trees), len(X)), dtype=np.int64)
        samples = np.arange(len(X))[None, :]
        while True:
            left = self._left[trees, node]
            inner = left >= 0
            if not inner.any():
                break
            go_left = X[samples, self._feature[trees, node]] <= self._threshold[trees, node]
            node = np.where(inner, np.where(go_left, left, self._right[trees, node]), node)
        return self.init + self.rate * self._value[trees, node].sum(axis=0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        trees = [{k: v.tolist() for k, v in t.items()} for t in self.trees]
        return {"init": self.init, "rate": self.rate, "trees": trees}

    @classmethod
    def from_dict(cls, doc: Any) -> TreeEnsemble:
        """The ensemble :meth:`to_dict` wrote; ValueError on a malformed one."""
        if not isinstance(doc, dict) or not {"init", "rate", "trees"} <= set(doc):
            raise ValueError("a tree ensemble needs init, rate and trees")
        for t in doc["trees"]:
            if not isinstance(t, dict) or set(t) != {"left", "right", "feature", "threshold", "value"}:
                raise ValueError("a tree needs left, right, feature, threshold and value arrays")
            n = len(t["left"])
            if any(len(t[k]) != n for k in t) or any(not (-1 <= c < n) for c in (*t["left"], *t["right"])):
                raise ValueError("tree arrays disagree in length or point outside the tree")
        return cls(doc["init"], doc["rate"], doc["trees"])


class KernelRegressor:
    """Latency (µs) of one kernel type from its features: boosted trees on log latency.

    ``fit`` sets ``ensemble_``, ``n_features_``, and from 5-fold cross-validation ``cv_``
    (RMSPE, share within ±10%), ``log_std_`` (spread of the log residuals: the relative
    uncertainty of one prediction) and ``oof_`` (out-of-fold predictions, for active learning).
    """

    def __init__(self, n_estimators: int = 300, learning_rate: float = 0.05, max_depth: int = 4,
                 seed: int = 0) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.seed = seed

    def _gbr(self) -> Any:
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                                         max_depth=self.max_depth, subsample=0.8, random_state=self.seed)

    def fit(self, X: np.ndarray, y_us: np.ndarray) -> KernelRegressor:
        """Fit on ``X`` (n, features) and latencies ``y_us`` (µs, > 0)."""
        X, y = np.asarray(X, dtype=np.float64), np.log(np.maximum(np.asarray(y_us, dtype=np.float64), 1e-3))
        self.oof_ = cross_val_log(X, y, lambda: RooflineTrees(self._gbr()), self.seed)
        self.cv_ = rel_errors(np.exp(self.oof_), np.exp(y))
        self.log_std_ = float(np.std(self.oof_ - y)) if len(y) > 1 else 1.0
        final = RooflineTrees(self._gbr()).fit(X, y)
        self.roofline_ = final.coef
        self.ensemble_ = TreeEnsemble.from_sklearn(final.gbr)
        self.n_features_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Latencies (µs) of the rows of ``X``."""
        if not hasattr(self, "ensemble_"):
            raise RuntimeError("KernelRegressor.predict before fit")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_:
            raise ValueError(f"expected {self.n_features_} features, got {X.shape}")
        return np.exp(roofline_residual_log(X, self.roofline_, self.ensemble_))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (parameters, roofline coefficients, fitted trees, validation figures)."""
        return {"params": {"n_estimators": self.n_estimators, "learning_rate": self.learning_rate,
                           "max_depth": self.max_depth, "seed": self.seed},
                "n_features": self.n_features_, "log_std": self.log_std_, "cv": self.cv_,
                "roofline": [float(c) for c in self.roofline_], "ensemble": self.ensemble_.to_dict()}

    @classmethod
    def from_dict(cls, doc: Any) -> KernelRegressor:
        """The regressor :meth:`to_dict` wrote; ValueError on a malformed one."""
        keys = {"params", "n_features", "log_std", "cv", "roofline", "ensemble"}
        if not isinstance(doc, dict) or not keys <= set(doc):
            raise ValueError("a kernel regressor needs params, n_features, log_std, cv, roofline and ensemble")
        if not isinstance(doc["roofline"], list) or len(doc["roofline"]) != 4:
            raise ValueError("a kernel regressor's roofline is four coefficients")
        reg = cls(**doc["params"])
        reg.roofline_ = np.asarray(doc["roofline"], dtype=np.float64)
        reg.ensemble_ = TreeEnsemble.from_dict(doc["ensemble"])
        reg.n_features_ = int(doc["n_features"])
        reg.log_std_ = float(doc["log_std"])
        reg.cv_ = dict(doc["cv"])
        return reg


def cross_val_log(X: np.ndarray, y: np.ndarray, make: Any, seed: int, folds: int = 5) -> np.ndarray:
    """Out-of-fold predictions of ``make()`` regressors (``y`` as given: log latency)."""
    n = len(y)
    oof = np.full(n, float(np.mean(y)) if n else 0.0)
    if n < 2 * folds:
        return oof
    order = np.random.default_rng(seed).permutation(n)
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        oof[test] = make().fit(X[train], y[train]).predict(X[test])
    return oof


def rel_errors(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """RMSPE and the shares within ±5% / ±10% of ``pred`` against ``true``."""
    err = (np.asarray(pred) - np.asarray(true)) / np.asarray(true)
    return {"rmspe": float(np.sqrt(np.mean(err ** 2))) if len(err) else float("nan"),
            "within_5": float(np.mean(np.abs(err) <= 0.05)) if len(err) else float("nan"),
            "within_10": float(np.mean(np.abs(err) <= 0.10)) if len(err) else float("nan"), "n": len(err)}


@dataclasses.dataclass
class Prediction:
    """A model's predicted latency: total and uncertainty (ms), per-kernel figures, ops without a predictor."""

    latency_ms: float
    std_ms: float
    base_ms: float
    kernels: list[dict[str, Any]]
    unpredicted: list[str]
    flops: float


class KernelPredictor:
    """Whole-model latency = fixed call cost + sum of per-kernel predictions, for one device."""

    def __init__(self, rules: FusionRules, regressors: dict[str, KernelRegressor], base_ms: float,
                 manifest: dict[str, Any], scale: float = 1.0, out_ms_per_melem: float = 0.0) -> None:
        self.rules = rules
        self.regressors = regressors
        self.base_ms = float(base_ms)
        self.scale = float(scale)
        self.out_ms_per_melem = float(out_ms_per_melem)
        self.manifest = manifest

    def kernels(self, model: Any) -> list[Kernel]:
        """The kernels ``model`` (an ``onnx.ModelProto``) runs as on this device (GraphError if unreadable)."""
        return split(model, self.rules)

    def _fallback(self, kernel: Kernel, net_weights: float) -> float:
        numel = float(kernel.features.get("numel", 0) or kernel.features.get("numel_out", 0) or 1)
        act = self.regressors.get("act")
        if act is not None:
            probe = Kernel("act", kernel.name, kernel.nodes, {"numel": numel, "op": 0, "nchwc": 0}, numel)
            return float(act.predict(features(probe, net_weights)[None, :])[0])
        return FALLBACK_US_PER_ELEMENT * numel

    def predict_kernels(self, kernels: Sequence[Kernel], outputs: int = 1000) -> Prediction:
        """Predict from a kernel list (batched per type); ``outputs``: elements of the model's outputs."""
        us = np.zeros(len(kernels))
        rel = np.ones(len(kernels))
        by_type: dict[str, list[int]] = {}
        for i, k in enumerate(kernels):
            by_type.setdefault(k.type, []).append(i)
        unpredicted = []
        weights = conv_weights(kernels)
        for kind, idx in by_type.items():
            reg = self.regressors.get(kind)
            if reg is None:
                for i in idx:
                    us[i] = self._fallback(kernels[i], weights)
                    unpredicted.append(kernels[i].op or kind)
                continue
            us[idx] = reg.predict(np.stack([features(kernels[i], weights) for i in idx]))
            rel[idx] = math.expm1(reg.log_std_)
        rows = [{"kernel": k.name, "type": k.type, "op": k.op, "nodes": k.nodes, "predicted_us": float(u),
                 "std_us": float(u * r), "predicted": k.type in self.regressors} for k, u, r in zip(kernels, us, rel)]
        total = self.base_ms + self.scale * float(us.sum()) / 1000.0 + self.out_ms_per_melem * outputs / 1e6
        net = self.manifest.get("network_calibration")
        if net:  # whole-network calibration replaces the sample one
            total = network_calibrated_ms(net, float(us.sum()) / 1000.0, weights, len(kernels))
        # kernel errors of one type are correlated in a model: add their stds per type, combine types in quadrature
        per_type = [sum(float(us[i] * rel[i]) for i in idx) for idx in by_type.values()]
        std = (net["scale"] if net else self.scale) * math.sqrt(sum(s * s for s in per_type)) / 1000.0
        if net:
            std = math.hypot(std, net["rmspe"] * total)
        flops = float(sum(k.flops for k in kernels))
        return Prediction(total, std, self.base_ms, rows, sorted(set(unpredicted)), flops)

    def set_network_calibration(self, calibration: dict[str, float]) -> None:
        """Use a whole-network calibration (:func:`fit_network_calibration`) from now on."""
        self.manifest["network_calibration"] = dict(calibration)

    def predict(self, model: Any) -> Prediction:
        """Predicted latency of one ONNX model."""
        return self.predict_kernels(self.kernels(model), output_numel(model))

    def to_dict(self) -> dict[str, Any]:
        """The JSON document :func:`save` writes (without its checksum)."""
        return {"format": FORMAT, "version": VERSION, "manifest": self.manifest, "rules": self.rules.to_dict(),
                "base_ms": self.base_ms, "scale": self.scale, "out_ms_per_melem": self.out_ms_per_melem,
                "regressors": {t: r.to_dict() for t, r in sorted(self.regressors.items())}}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> KernelPredictor:
        """The predictor :meth:`to_dict` described (ValueError on a malformed one)."""
        rules = FusionRules.from_dict(doc["rules"])
        regs = {t: KernelRegressor.from_dict(r) for t, r in doc["regressors"].items()}
        return cls(rules, regs, float(doc["base_ms"]), dict(doc["manifest"]), float(doc["scale"]),
                   float(doc["out_ms_per_melem"]))


def weight_numel(kernel: Kernel) -> float:
    """Weights a kernel reads (convolutions and fully connected layers; 0 for the others)."""
    f = kernel.features
    if kernel.type == "conv":
        return float(f["cin"] * f["cout"] * f["k"] ** 2)
    if kernel.type == "dwconv":
        return float(f["c"] * f["k"] ** 2)
    if kernel.type == "gconv":
        return float(f["cin"] // max(1, f["groups"]) * f["cout"] * f["k"] ** 2)
    if kernel.type == "gemm":
        return float(f["cin"] * f["cout"])
    return 0.0


def conv_weights(kernels: Sequence[Kernel]) -> float:
    """Weights of a network's convolutions: the weights a kernel sample finds in cache and a network
    does not (a conv reads each weight once per output pixel; a fully connected layer reads each once
    per run, alone as in a network, so its sample already pays for fetching them)."""
    return float(sum(weight_numel(k) for k in kernels if k.type != "gemm"))


def fit_network_calibration(raw_ms: Sequence[float], weights_m: Sequence[float], kernels: Sequence[float],
                            measured_ms: Sequence[float]) -> dict[str, float]:
    """``measured ≈ base_ms + scale·raw + per_mweight_ms·weights + per_kernel_ms·kernels`` on whole networks
    (relative least squares, coefficients kept non-negative by dropping a negative term and refitting)."""
    cols = {"scale": np.asarray(raw_ms, float), "per_mweight_ms": np.asarray(weights_m, float),
            "per_kernel_ms": np.asarray(kernels, float), "base_ms": np.ones(len(raw_ms))}
    y = np.asarray(measured_ms, float)
    names = list(cols)
    while True:
        A = np.stack([cols[n] for n in names], axis=1) / y[:, None]
        coef = np.linalg.lstsq(A, np.ones_like(y), rcond=None)[0]
        if (coef >= 0).all() or len(names) == 1:
            break
        names.pop(int(np.argmin(coef)))
    out = {n: 0.0 for n in cols}
    out.update({n: float(max(c, 0.0)) for n, c in zip(names, coef)})
    fitted = sum(out[n] * cols[n] for n in cols)
    out["rmspe"] = float(np.sqrt(np.mean((fitted / y - 1) ** 2)))
    out["n"] = len(y)
    return out


def network_calibrated_ms(calibration: dict[str, float], kernel_sum_ms: Any, weights: Any, kernels: Any) -> Any:
    """A network's latency under a whole-network ``calibration`` (:func:`fit_network_calibration`) from the sum
    of its kernel predictions, its convolution weights and its kernel count (floats or numpy arrays)."""
    return (calibration["base_ms"] + calibration["scale"] * kernel_sum_ms
            + calibration["per_mweight_ms"] * weights / 1e6 + calibration["per_kernel_ms"] * kernels)


def output_numel(model: Any) -> int:
    """Elements of a model's graph outputs (symbolic dimensions count as 1)."""
    total = 0
    for out in model.graph.output:
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in out.type.tensor_type.shape.dim]
        total += int(np.prod(dims)) if dims else 1
    return total


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def training_sha256(rows: dict[str, list[tuple[Any, Any, float]]]) -> str:
    """Hash of training data: per type, the (configuration, target) pairs (order-independent)."""
    items = sorted(json.dumps([t, cfg, round(y, 6)], sort_keys=True) for t, rs in rows.items() for cfg, _k, y in rs)
    return hashlib.sha256("\n".join(items).encode()).hexdigest()


def manifest(device: str, backend: str, rules: FusionRules, rows: dict[str, list],
             regressors: dict[str, KernelRegressor], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of a predictor: versions, device, runtime, feature schema, training-data hash, CV."""
    return {**versions(), "device": device, "backend": backend,
            "runtime_version": rules.meta.get("runtime_version"), "providers": rules.meta.get("providers"),
            "feature_schema": feature_schema(), "training_sha256": training_sha256(rows),
            "n_train": {t: len(r) for t, r in rows.items()}, "cv": {t: r.cv_ for t, r in regressors.items()},
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            **(extra or {})}


def fit_calibration(kernel_ms: Sequence[float], output_numel: Sequence[float],
                    measured_ms: Sequence[float]) -> dict[str, float]:
    """``measured ≈ base_ms + scale * kernels + out_ms_per_melem * outputs``, least squares on relative
    error, over kernel samples: ``kernel_ms`` the sum of a sample's kernel times, ``output_numel``
    the elements of its graph outputs (a call hands its outputs back as fresh arrays: a cost that grows
    with their size and that a network, whose kernels write into the runtime's reused buffers, pays only
    for its own outputs), ``measured_ms`` its measured latency."""
    x = np.asarray(kernel_ms, dtype=np.float64)
    o = np.asarray(output_numel, dtype=np.float64) / 1e6
    y = np.asarray(measured_ms, dtype=np.float64)
    if len(x) < 4:
        return {"scale": 1.0, "base_ms": float(np.min(y)) if len(y) else 0.0, "out_ms_per_melem": 0.0,
                "rmspe": float("nan"), "n": len(x)}
    A = np.stack([x, o, np.ones_like(x)], axis=1) / y[:, None]
    scale, per_melem, base = (max(float(v), 0.0) for v in np.linalg.lstsq(A, np.ones_like(y), rcond=None)[0])
    scale = max(scale, 1e-3)
    fitted = scale * x + per_melem * o + base
    return {"scale": scale, "base_ms": base, "out_ms_per_melem": per_melem,
            "rmspe": float(np.sqrt(np.mean((fitted / y - 1) ** 2))), "n": len(x)}


def fit(rules: FusionRules, rows: dict[str, list[tuple[Any, Kernel, float]]], calibration: dict[str, float],
        device: str, backend: str, seed: int = 0, extra: dict[str, Any] | None = None) -> KernelPredictor:
    """Fit one regressor per kernel type with at least 5 rows; ``calibration`` from :func:`fit_calibration`."""
    regs = {}
    for kind, rs in sorted(rows.items()):
        if len(rs) < 5:
            continue
        X = np.stack([features(k) for _cfg, k, _y in rs])
        regs[kind] = KernelRegressor(seed=seed).fit(X, np.array([y for *_r, y in rs]))
    info = manifest(device, backend, rules, rows, regs, {"calibration": calibration, **(extra or {})})
    return KernelPredictor(rules, regs, calibration["base_ms"], info, calibration["scale"],
                           calibration["out_ms_per_melem"])


def save(predictor: KernelPredictor, path: str | Path) -> Path:
    """Write the predictor as one checksummed JSON file, atomically."""
    body = predictor.to_dict()
    doc = {**body, "sha256": hashlib.sha256(_canonical(body)).hexdigest()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(doc, separators=(",", ":")))
    return path


def loads(text: str, name: str = "predictor") -> tuple[KernelPredictor, list[str]]:
    """A predictor from its JSON text, and warnings (library versions other than the ones it was
    trained with: reported, not fatal, since prediction needs only numpy)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PredictorFileError(f"{name}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PredictorFileError(f"{name}: not an hwnas kernel predictor")
    if doc.get("version") != VERSION:
        raise PredictorFileError(f"{name}: predictor format version {doc.get('version')!r}; this hwnas reads {VERSION} "
                                 "(rebuild it with `hwnas costmodel fit --onnx-kernels`)")
    body = {k: v for k, v in doc.items() if k != "sha256"}
    if hashlib.sha256(_canonical(body)).hexdigest() != doc.get("sha256"):
        raise PredictorFileError(f"{name}: checksum mismatch (the file was edited or truncated)")
    try:
        predictor = KernelPredictor.from_dict(body)
    except (KeyError, TypeError, ValueError) as exc:
        raise PredictorFileError(f"{name}: malformed predictor ({exc})") from None
    if predictor.manifest.get("feature_schema") != feature_schema():
        raise PredictorFileError(f"{name}: its feature schema differs from this hwnas's; rebuild it with "
                                 "`hwnas costmodel fit --onnx-kernels`")
    now = versions()
    warnings = [f"{name}: trained with {lib} {predictor.manifest.get(lib)}, running {now[lib]} "
                "(predictions use numpy on the stored trees, so they are unaffected)"
                for lib in ("sklearn", "numpy") if predictor.manifest.get(lib) != now[lib]]
    return predictor, warnings


def load(path: str | Path) -> tuple[KernelPredictor, list[str]]:
    """A predictor saved by :func:`save` (PredictorFileError names the file and cause) and its warnings."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PredictorFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return loads(text, str(path))
