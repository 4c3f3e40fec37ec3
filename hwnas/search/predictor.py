"""An accuracy predictor fitted on a table's rows, for the architectures the table lacks.

Features are the one-hot of an architecture's choice codes (one integer per
searchable choice, from the space; the categories are those seen in training, an
unseen value encodes as all zeros). Two regressors are tried — ridge regression
(penalty by leave-one-out CV) and gradient-boosted trees — and the one whose
predictions rank a seeded held-out fifth of the rows better (Spearman ρ) is refit
on every row; :attr:`AccuracyPredictor.selection_` records both held-out figures.

Prediction is plain numpy on learned arrays (ridge coefficients; each tree's
feature, threshold, children and leaf values), so :meth:`to_dict`/:meth:`from_dict`
round-trip a predictor exactly through JSON — never pickle — and a scikit-learn
upgrade never breaks a saved one. :func:`save`/:func:`load` add a versioned,
checksummed envelope with a manifest (space, source table, column, training hash).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from cost_models import metrics
from lut.atomic import write_text_atomic

FORMAT = "hwnas-accuracy-predictor"
VERSION = 1
KINDS = ("ridge", "gbdt")
MIN_SELECTION_ROWS = 20
"""Below this many rows there is no held-out split: the first of ``kinds`` (ridge) is used."""
GBDT_PARAMS = {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.05, "subsample": 0.8}


class PredictorFileError(ValueError):
    """A saved predictor that cannot be used (unreadable, tampered, unknown version)."""


def _one_hot(codes: np.ndarray, categories: list[list[int]]) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[1] != len(categories):
        raise ValueError(f"expected ({len(categories)} choice codes) per architecture, got shape {codes.shape}")
    blocks = [(codes[:, j:j + 1] == np.asarray(cats)[None, :]).astype(float) for j, cats in enumerate(categories)]
    return np.concatenate(blocks, axis=1)


def _fit_ridge(X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from sklearn.linear_model import RidgeCV

    model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(X, y)
    return {"coef": model.coef_.tolist(), "intercept": float(model.intercept_), "alpha": float(model.alpha_)}


def _fit_gbdt(X: np.ndarray, y: np.ndarray, seed: int) -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingRegressor

    model = GradientBoostingRegressor(random_state=seed, **GBDT_PARAMS).fit(X, y)
    trees = []
    for est in model.estimators_[:, 0]:
        t = est.tree_
        trees.append({"feature": t.feature.tolist(), "threshold": t.threshold.tolist(),
                      "left": t.children_left.tolist(), "right": t.children_right.tolist(),
                      "value": t.value[:, 0, 0].tolist()})
    return {"init": float(np.ravel(model.init_.constant_)[0]), "learning_rate": float(model.learning_rate),
            "trees": trees}


def _predict_ridge(model: dict[str, Any], X: np.ndarray) -> np.ndarray:
    return X @ np.asarray(model["coef"], dtype=float) + model["intercept"]


def _predict_gbdt(model: dict[str, Any], X: np.ndarray) -> np.ndarray:
    out = np.full(X.shape[0], model["init"], dtype=float)
    rows = np.arange(X.shape[0])
    for tree in model["trees"]:
        feature, threshold = np.asarray(tree["feature"]), np.asarray(tree["threshold"], dtype=float)
        left, right, value = np.asarray(tree["left"]), np.asarray(tree["right"]), np.asarray(tree["value"], dtype=float)
        node = np.zeros(X.shape[0], dtype=np.int64)
        while True:
            inner = left[node] >= 0
            if not inner.any():
                break
            go_left = X[rows, np.where(inner, feature[node], 0)] <= threshold[node]
            node = np.where(inner, np.where(go_left, left[node], right[node]), node)
        out += model["learning_rate"] * value[node]
    return out


_FIT = {"ridge": lambda X, y, seed: _fit_ridge(X, y), "gbdt": _fit_gbdt}
_PREDICT = {"ridge": _predict_ridge, "gbdt": _predict_gbdt}


class AccuracyPredictor:
    """One-hot choice codes -> accuracy, ridge or boosted trees chosen on a held-out split.

    ``fit(codes, y)`` takes the ``(n, choices)`` integer choice codes of the table's
    architectures and their accuracies; learned attributes end in ``_``.
    """

    def __init__(self, kinds: tuple[str, ...] = KINDS, seed: int = 0, holdout: float = 0.2) -> None:
        self.kinds = kinds
        self.seed = seed
        self.holdout = holdout

    def fit(self, codes: np.ndarray, y: np.ndarray) -> AccuracyPredictor:
        """Select the regressor on a seeded held-out split, then refit it on every row."""
        codes, y = np.asarray(codes, dtype=np.int64), np.asarray(y, dtype=float)
        if codes.ndim != 2 or codes.shape[0] != y.shape[0] or y.shape[0] < 2:
            raise ValueError(f"need at least 2 rows of codes and accuracies, got {codes.shape} and {y.shape}")
        self.categories_ = [sorted(set(codes[:, j].tolist())) for j in range(codes.shape[1])]
        X = _one_hot(codes, self.categories_)
        self.selection_: dict[str, float] = {}
        kind = self.kinds[0]
        if y.shape[0] >= MIN_SELECTION_ROWS and len(self.kinds) > 1:
            order = np.random.default_rng(self.seed).permutation(y.shape[0])
            n_test = max(int(round(self.holdout * y.shape[0])), 2)
            test, train = order[:n_test], order[n_test:]
            for k in self.kinds:
                pred = _PREDICT[k](_FIT[k](X[train], y[train], self.seed), X[test])
                self.selection_[k] = metrics.spearman_rho(y[test], pred)
            kind = max(self.kinds, key=lambda k: np.nan_to_num(self.selection_[k], nan=-2.0))
        self.kind_ = kind
        self.model_ = _FIT[kind](X, y, self.seed)
        self.n_train_ = int(y.shape[0])
        return self

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """Predicted accuracies of the ``(n, choices)`` codes."""
        if not hasattr(self, "model_"):
            raise ValueError("the accuracy predictor is not fitted")
        return _PREDICT[self.kind_](self.model_, _one_hot(codes, self.categories_))

    def to_dict(self) -> dict[str, Any]:
        """The fitted predictor as plain JSON-able data."""
        selection = {k: (None if np.isnan(v) else v) for k, v in self.selection_.items()}
        return {"kind": self.kind_, "categories": self.categories_, "selection": selection,
                "n_train": self.n_train_, "seed": self.seed, "model": self.model_}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> AccuracyPredictor:
        """A predictor from :meth:`to_dict` output; ValueError on a malformed document."""
        try:
            self = cls(seed=int(doc["seed"]))
            self.kind_ = str(doc["kind"])
            if self.kind_ not in _PREDICT:
                raise ValueError(f"unknown predictor kind {self.kind_!r}")
            self.categories_ = [[int(v) for v in cats] for cats in doc["categories"]]
            self.selection_ = {str(k): float("nan" if v is None else v) for k, v in doc["selection"].items()}
            self.n_train_ = int(doc["n_train"])
            self.model_ = doc["model"]
            _PREDICT[self.kind_](self.model_, np.zeros((1, sum(map(len, self.categories_)))))
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"malformed accuracy predictor ({type(exc).__name__}: {exc})") from None
        return self


def _checksum(manifest: dict[str, Any], model: dict[str, Any]) -> str:
    text = json.dumps({"manifest": manifest, "model": model}, sort_keys=True, separators=(",", ":"),
                      allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def save(path: str | Path, predictor: AccuracyPredictor, manifest: dict[str, Any]) -> Path:
    """Write ``predictor`` with ``manifest`` to ``path`` as checksummed JSON (atomically)."""
    path = Path(path)
    model = predictor.to_dict()
    doc = {"format": FORMAT, "version": VERSION, "manifest": manifest, "model": model,
           "sha256": _checksum(manifest, model)}
    write_text_atomic(path, json.dumps(doc, allow_nan=False) + "\n")
    return path


def load(path: str | Path) -> tuple[AccuracyPredictor, dict[str, Any]]:
    """The predictor and manifest saved at ``path``; PredictorFileError names the file and the cause."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PredictorFileError(f"{path}: cannot read the accuracy predictor ({exc}).") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise PredictorFileError(f"{path}: not a version-{VERSION} {FORMAT} file.")
    try:
        checksum = _checksum(doc["manifest"], doc["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PredictorFileError(f"{path}: malformed accuracy predictor ({exc}).") from None
    if doc.get("sha256") != checksum:
        raise PredictorFileError(f"{path}: checksum mismatch (the file was edited or truncated).")
    try:
        return AccuracyPredictor.from_dict(doc["model"]), doc["manifest"]
    except ValueError as exc:
        raise PredictorFileError(f"{path}: {exc}.") from None
