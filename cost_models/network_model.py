"""Whole-network latency model: a calibrated LUT sum times a learned, feature-dependent correction.

:class:`NetworkCostModel` follows scikit-learn's estimator conventions. Its input
is the feature matrix of :class:`cost_models.features.FeatureMap` — column 0 is
the block LUT sum — and its target the measured network latency (ms):

1. an additive base: the LUT sum calibrated to the measurements, ``a * lut_sum + b``
   (least squares of the relative error, so small networks count as much as large ones; a
   proportional fit, ``b = 0``, when the affine one finds a negative fixed cost) — or, when the features hold
   kernel counts (names starting with ``additive_prefix``, see
   :mod:`cost_models.kernels`), a ridge regression of the latency on the LUT sum
   and those counts: a cost per kernel, since latency adds up over the kernels a
   runtime runs after fusion. The kernel base needs more training networks than it has
   coefficients (with fewer it is underdetermined, and its signed per-kernel costs
   extrapolate to zero or negative latencies), so below that the calibrated LUT sum is
   the base; and a row whose kernel base is not positive gets the calibrated LUT sum;
2. the residual ``log(measured / base)`` is regressed on the standardised
   features with ridge regression (penalty chosen by leave-one-out CV), so
   ``prediction = base * exp(z @ coef + intercept)``;
3. ``n_bootstrap`` further ridge fits on bootstrap resamples give the spread
   returned by ``predict(X, return_std=True)`` — an uncertainty that tells active
   refinement where a measurement would teach the model most.

Prediction is plain numpy on the learned arrays (no scikit-learn objects are
kept), so :func:`to_dict`/:func:`from_dict` round-trip a model exactly through JSON.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge, RidgeCV

from cost_models import metrics

ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))
_LEARNED = ("n_features_in_", "feature_names_in_", "calibration_", "additive_", "base_coef_", "base_intercept_",
            "mean_", "scale_", "coef_", "intercept_", "alpha_", "boot_coef_", "boot_intercept_")
_MIN_BASE_MS = 1e-6


class NetworkCostModel(RegressorMixin, BaseEstimator):
    """Latency of whole networks from their features; see the module docstring.

    ``feature_names``: the schema the model is fitted on (e.g. ``FeatureMap.schema``);
    when given, ``fit`` checks the column count and :meth:`check_schema` compares names.
    ``alphas``: ridge penalties tried. ``n_bootstrap``: ensemble size of the uncertainty.
    ``additive_prefix``: features whose names start with it join the LUT sum in the additive base.
    """

    def __init__(self, feature_names: Sequence[str] | None = None, alphas: Sequence[float] = ALPHAS,
                 n_bootstrap: int = 16, random_state: int = 0, additive_prefix: str = "kernel") -> None:
        self.feature_names = feature_names
        self.alphas = alphas
        self.n_bootstrap = n_bootstrap
        self.random_state = random_state
        self.additive_prefix = additive_prefix

    # -- fitting -------------------------------------------------------------------------------------------------

    def fit(self, X: np.ndarray, y: np.ndarray) -> NetworkCostModel:
        """Fit on features ``X`` (n, F) — column 0 the LUT sum — and measured latencies ``y`` (n,) in ms."""
        X, y = self._check_xy(X, y)
        names = list(self.feature_names) if self.feature_names is not None else [f"x{i}" for i in range(X.shape[1])]
        if len(names) != X.shape[1]:
            raise ValueError(f"X has {X.shape[1]} columns but feature_names lists {len(names)}")
        a, b = self._calibrate(X[:, 0], y)
        additive = [0] + [i for i, n in enumerate(names) if i and n.startswith(self.additive_prefix)]
        if len(additive) > 1 and len(y) > len(additive):
            base_fit = RidgeCV(alphas=list(self.alphas)).fit(X[:, additive], y)
            base_coef, base_intercept = np.asarray(base_fit.coef_, dtype=float), float(base_fit.intercept_)
        else:
            additive = [0]
            base_coef, base_intercept = np.array([a]), b
        base = self._additive_base(X, additive, base_coef, base_intercept, a, b)
        target = np.log(y / base)
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale < 1e-12] = 1.0
        Z = (X - mean) / scale
        ridge = RidgeCV(alphas=list(self.alphas)).fit(Z, target)
        rng = np.random.default_rng(self.random_state)
        boot_coef, boot_intercept = [], []
        for _ in range(self.n_bootstrap):
            sample = rng.integers(0, len(y), len(y))
            member = Ridge(alpha=float(ridge.alpha_)).fit(Z[sample], target[sample])
            boot_coef.append(member.coef_)
            boot_intercept.append(member.intercept_)
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(names, dtype=object)
        self.calibration_ = np.array([a, b])
        self.additive_ = additive
        self.base_coef_, self.base_intercept_ = base_coef, base_intercept
        self.mean_, self.scale_ = mean, scale
        self.coef_, self.intercept_ = np.asarray(ridge.coef_, dtype=float), float(ridge.intercept_)
        self.alpha_ = float(ridge.alpha_)
        self.boot_coef_ = np.asarray(boot_coef, dtype=float).reshape(self.n_bootstrap, X.shape[1])
        self.boot_intercept_ = np.asarray(boot_intercept, dtype=float)
        return self

    @staticmethod
    def _calibrate(lut_sum: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """``(a, b)`` of ``a * lut_sum + b`` fitted to minimise the squared *relative* error (latency is
        judged relatively, so a network ten times faster weighs as much), or of a proportional fit
        (b = 0) when the affine one has a negative fixed cost ``b`` (meaningless, and small networks
        would get a non-positive base)."""
        ratio, inverse = lut_sum / y, 1.0 / y
        if len(y) > 1 and np.ptp(ratio) > 0:
            (a, b), *_ = np.linalg.lstsq(np.stack([ratio, inverse], axis=1), np.ones_like(y), rcond=None)
            if b >= 0 and a > 0:
                return float(a), float(b)
        return float(ratio.sum() / (ratio @ ratio)), 0.0

    @staticmethod
    def _check_xy(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float).ravel()
        if X.ndim != 2 or X.shape[0] != y.shape[0] or X.shape[0] < 2:
            raise ValueError(f"need X (n, F) and y (n,) with n >= 2, got {X.shape} and {y.shape}")
        if not (np.isfinite(X).all() and np.isfinite(y).all()) or (y <= 0).any() or (X[:, 0] <= 0).any():
            raise ValueError("X must be finite with a positive LUT sum (column 0) and y finite and > 0")
        return X, y

    @staticmethod
    def _base(lut_sum: np.ndarray, a: float, b: float) -> np.ndarray:
        return lut_sum * a + b

    @classmethod
    def _additive_base(cls, X: np.ndarray, additive: Sequence[int], coef: np.ndarray, intercept: float,
                       a: float, b: float) -> np.ndarray:
        """The first stage: the additive base, or the calibrated LUT sum where that is not positive."""
        base = X[:, list(additive)] @ coef + intercept
        fallback = np.maximum(cls._base(X[:, 0], a, b), _MIN_BASE_MS)
        return np.where(base > _MIN_BASE_MS, base, fallback)

    # -- prediction ----------------------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("this NetworkCostModel is not fitted yet; call fit(X, y) first")

    def check_schema(self, names: Sequence[str]) -> None:
        """ValueError naming the first difference when ``names`` is not the schema the model was fitted on."""
        self._check_fitted()
        mine = list(self.feature_names_in_)
        names = list(names)
        if names != mine:
            diff = next((i for i, (a, b) in enumerate(zip(mine, names)) if a != b), min(len(mine), len(names)))
            have = names[diff] if diff < len(names) else "(end)"
            want = mine[diff] if diff < len(mine) else "(end)"
            raise ValueError(f"feature schema mismatch at column {diff}: the model was fitted on {want!r}, "
                             f"got {have!r} ({len(mine)} vs {len(names)} columns)")

    def predict(self, X: np.ndarray, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Latency (ms) of each row of ``X``; with ``return_std`` also the bootstrap ensemble's spread (ms)."""
        self._check_fitted()
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have shape (n, {self.n_features_in_}) (the fitted feature schema), "
                             f"got {X.shape}")
        base = self._additive_base(X, self.additive_, self.base_coef_, self.base_intercept_, *self.calibration_)
        Z = (X - self.mean_) / self.scale_
        pred = base * np.exp(Z @ self.coef_ + self.intercept_)
        if not return_std:
            return pred
        if self.n_bootstrap < 2:
            return pred, np.zeros_like(pred)
        boot = base[:, None] * np.exp(Z @ self.boot_coef_.T + self.boot_intercept_)
        return pred, boot.std(axis=1)

    def calibrated_lut(self, X: np.ndarray) -> np.ndarray:
        """The calibrated LUT sum ``a * lut_sum + b`` (ms) alone, the model's first stage."""
        self._check_fitted()
        a, b = self.calibration_
        return self._base(np.asarray(X, dtype=float)[:, 0], a, b)

    def score(self, X: np.ndarray, y: np.ndarray, sample_weight: None = None) -> float:
        """Share (0..1) of rows predicted within ±10% of ``y`` (see :mod:`cost_models.metrics` for more)."""
        return metrics.within(y, self.predict(X), 0.10)

    # -- plain-data form (persistence) ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Parameters and learned arrays as JSON-ready lists and floats."""
        self._check_fitted()
        learned = {}
        for name in _LEARNED:
            value = getattr(self, name)
            learned[name] = value.tolist() if isinstance(value, np.ndarray) else value
        params = self.get_params()
        params["feature_names"] = list(params["feature_names"]) if params["feature_names"] is not None else None
        params["alphas"] = [float(a) for a in params["alphas"]]
        return {"class": type(self).__name__, "params": params, "learned": learned}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> NetworkCostModel:
        """The model :meth:`to_dict` described; ValueError names a missing or malformed field."""
        if not isinstance(doc, dict) or doc.get("class") != cls.__name__:
            raise ValueError(f"not a {cls.__name__} description")
        params, learned = doc.get("params"), doc.get("learned")
        if not isinstance(params, dict) or not isinstance(learned, dict):
            raise ValueError("model description needs 'params' and 'learned' mappings")
        unknown = set(params) - set(cls._get_param_names())
        if unknown:
            raise ValueError(f"unknown model parameter(s): {', '.join(sorted(unknown))}")
        for name in ("feature_names", "alphas"):  # JSON lists back to the tuples the constructor is given
            if isinstance(params.get(name), list):
                params[name] = tuple(params[name])
        model = cls(**params)
        missing = [n for n in _LEARNED if n not in learned]
        if missing:
            raise ValueError(f"model description lacks {', '.join(missing)}")
        n = learned["n_features_in_"]
        if not isinstance(n, int) or n < 1:
            raise ValueError("n_features_in_ must be a positive integer")
        names = learned["feature_names_in_"]
        if not isinstance(names, list) or len(names) != n or not all(isinstance(s, str) for s in names):
            raise ValueError(f"feature_names_in_ must list {n} strings")
        model.n_features_in_ = n
        model.feature_names_in_ = np.asarray(names, dtype=object)
        additive = learned["additive_"]
        if (not isinstance(additive, list) or not additive or additive[0] != 0
                or not all(isinstance(i, int) and 0 <= i < n for i in additive)):
            raise ValueError(f"additive_ must list feature columns (0..{n - 1}), starting with 0")
        model.additive_ = additive
        shapes = {"calibration_": (2,), "base_coef_": (len(additive),), "mean_": (n,), "scale_": (n,), "coef_": (n,),
                  "boot_coef_": (model.n_bootstrap, n), "boot_intercept_": (model.n_bootstrap,)}
        for name, shape in shapes.items():
            try:
                value = np.asarray(learned[name], dtype=float).reshape(shape)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be numbers of shape {shape}") from None
            if not np.isfinite(value).all():
                raise ValueError(f"{name} holds a non-finite number")
            setattr(model, name, value)
        for name in ("intercept_", "alpha_", "base_intercept_"):
            value = learned[name]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
            setattr(model, name, float(value))
        return model


def cross_val_predict(X: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0,
                      **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions of the calibrated LUT sum and of the full model, one pair per row.

    Every row is predicted by a model fitted without it (``folds``-fold, seeded shuffle).
    ``params`` go to :class:`NetworkCostModel` — pass ``feature_names`` so kernel columns form
    the additive base as they do in the fitted model.
    """
    X, y = NetworkCostModel._check_xy(X, y)
    folds = max(2, min(folds, len(y)))
    calibrated, full = np.empty_like(y), np.empty_like(y)
    for part in np.array_split(np.random.default_rng(seed).permutation(len(y)), folds):
        train = np.setdiff1d(np.arange(len(y)), part)
        model = NetworkCostModel(**{"n_bootstrap": 0, **params}).fit(X[train], y[train])
        calibrated[part] = model.calibrated_lut(X[part])
        full[part] = model.predict(X[part])
    return calibrated, full
