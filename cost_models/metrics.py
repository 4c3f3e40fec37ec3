"""Accuracy metrics of latency predictors — the one definition used by every model, bench and CLI.

Relative metrics compare a prediction with the true latency as ``|pred - true| / true``
and need strictly positive true values. Rank metrics (Kendall τ-b, Spearman ρ) come
from ``scipy.stats`` and are ``nan`` when either side is constant.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated 1-D float arrays of equal, non-zero length."""
    t = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    if t.size == 0:
        raise ValueError("metrics need at least one value")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise ValueError("metrics need finite values (found nan or inf)")
    return t, p


def _relative_error(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """``|pred - true| / true`` per item; ``true`` must be > 0."""
    t, p = _pair(y_true, y_pred)
    if (t <= 0).any():
        raise ValueError("relative metrics need strictly positive true latencies")
    return np.abs(p - t) / t


def within(y_true: ArrayLike, y_pred: ArrayLike, tolerance: float) -> float:
    """The share (0..1) of predictions whose relative error is at most ``tolerance`` (0.05 = ±5%)."""
    return float(np.mean(_relative_error(y_true, y_pred) <= tolerance + 1e-12))


def rmspe(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root mean squared percentage error, as a fraction (0.1 = 10%)."""
    return float(np.sqrt(np.mean(_relative_error(y_true, y_pred) ** 2)))


def kendall_tau(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Kendall's τ-b between true and predicted values (``nan`` if either is constant)."""
    t, p = _pair(y_true, y_pred)
    if t.size < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return math.nan
    return float(stats.kendalltau(t, p).statistic)


def spearman_rho(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Spearman's rank correlation between true and predicted values (``nan`` if either is constant)."""
    t, p = _pair(y_true, y_pred)
    if t.size < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        return math.nan
    return float(stats.spearmanr(t, p).statistic)


def summary(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """Every metric at once: ``within_5``, ``within_10``, ``rmspe``, ``kendall_tau``, ``spearman_rho``, ``n``."""
    t, p = _pair(y_true, y_pred)
    return {
        "n": int(t.size),
        "within_5": within(t, p, 0.05),
        "within_10": within(t, p, 0.10),
        "rmspe": rmspe(t, p),
        "kendall_tau": kendall_tau(t, p),
        "spearman_rho": spearman_rho(t, p),
    }
