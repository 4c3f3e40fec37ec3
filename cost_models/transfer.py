"""Few-shot latency transfer to an unseen device (HELP setting) for NAS-Bench-201.

Given the latency of many architectures on *source* devices (the prior) and only
``k`` measured architectures on a new *target* device, predict the target latency
of any architecture.

The model: a NAS-Bench-201 network's latency is, on every device in the data we
have, very close to linear in 9 structural features (:func:`arch_features`): an
intercept and, per non-``none`` op type, how many cell edges use it — counted
separately for edges whose output reaches the cell output ("live") and for dead-end
edges (graph optimisers of some runtimes prune those). Each source device gets its
own weight vector (least squares over its archs, normalised to a mean latency of 1).
Those vectors define Gaussian priors for the target's weights: one centred on their
mean with (a multiple of) their covariance, one centred on each source device (a
near twin of the target is common: the same chip at another batch size), and one
"pruning runtime" prior — the mean with dead-end weights set to zero — since a
runtime that drops dead-end branches may appear as a target even when no source
does. Beyond the source covariance, each op type's live and dead-end weights get one
shared isotropic deviation (a runtime that does not prune pays the same for an op
whether its output is used or not; k random archs rarely contain enough dead-end
edges to learn those weights separately), plus a little independent dead-end
variance. Each prior is combined with the ``k`` target measurements by exact
Bayesian linear regression, for a grid of noise and prior-spread hyper-parameters;
the posterior means are averaged with weights given by their marginal likelihood
(Bayesian model averaging), so the data decide how far to trust which prior.
Everything is closed form and deterministic; no pickle anywhere.

:func:`transfer_csv` is the CSV contract of ``hwnas costmodel transfer``.
"""
from __future__ import annotations

import csv
import functools
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from lut.atomic import atomic_open
from lut.nasbench201 import EDGES, OPS, all_archs, encode, is_degenerate, parse_arch

log = logging.getLogger("hwnas")

FEATURES: tuple[str, ...] = ("intercept",) + tuple(f"live_{op}" for op in OPS[1:]) + tuple(
    f"dead_{op}" for op in OPS[1:])
"""Names of the columns of :func:`arch_features`."""

_LIVE = slice(1, len(OPS))  # the live op-count columns
_DEAD = slice(len(OPS), None)  # the dead-end op-count columns, in the same op order


class TransferInputError(ValueError):
    """A transfer input CSV is unusable; the message names the file and the line."""


# --------------------------------------------------------------------------- features

def _codes(archs: Any) -> np.ndarray:
    """``archs`` as an ``(n, 6)`` op-code array (accepts codes, strings or op tuples)."""
    if isinstance(archs, np.ndarray) and archs.dtype.kind in "iu":
        codes = archs.reshape(-1, len(EDGES))
        if codes.size and (codes.min() < 0 or codes.max() >= len(OPS)):
            raise ValueError(f"op codes must lie in 0..{len(OPS) - 1}")
        return codes
    return encode(archs)


def arch_features(archs: Any) -> np.ndarray:
    """The ``(n, 9)`` float feature matrix of :data:`FEATURES` for the given architectures.

    An edge is *live* when its destination node has a path of non-``none`` edges to
    the output node 3; ``none`` edges are not counted at all.
    """
    codes = _codes(archs).astype(np.int64)
    n = codes.shape[0]
    reaches_out = np.zeros((n, 4), dtype=bool)
    reaches_out[:, 3] = True
    for e in reversed(range(len(EDGES))):  # EDGES is ordered by destination node
        src, dst = EDGES[e]
        reaches_out[:, src] |= (codes[:, e] != 0) & reaches_out[:, dst]
    live = reaches_out[:, [dst for _, dst in EDGES]]
    feats = np.zeros((n, len(FEATURES)))
    feats[:, 0] = 1.0
    for op in range(1, len(OPS)):
        uses = codes == op
        feats[:, op] = (uses & live).sum(axis=1)
        feats[:, len(OPS) - 1 + op] = (uses & ~live).sum(axis=1)
    return feats


@functools.cache
def _reference_features() -> np.ndarray:
    """Mean feature vector over the non-degenerate NAS-Bench-201 space (normalises weights)."""
    archs = [a for a in all_archs() if not is_degenerate(a)]
    return arch_features(archs).mean(axis=0)


# ----------------------------------------------------------------------------- model

class TransferRegressor(BaseEstimator):
    """Few-shot NAS-Bench-201 latency predictor for a new device, with source devices as prior.

    Parameters
    ----------
    noise_grid : relative noise variances tried for the target measurements
        (1e-2 means ~10% noise; a measurement's noise is taken proportional to its latency).
    spread_grid : variances of the isotropic part of the prior on the weights (one
        deviation per op type, shared by its live and dead-end weights).
    dead_grid : extra, independent prior variance of the dead-end weights.
    source_scale : how much of the source covariance a prior centred on one source keeps.
    mean_scale : the multiple of the source covariance used by the priors centred on the
        source mean (the plain one and the pruning one); > 1 lets a target lie outside
        the spread of the sources.
    """

    def __init__(self, noise_grid: Sequence[float] = tuple(np.logspace(-5, -1, 9)),
                 spread_grid: Sequence[float] = (1e-5, 1e-4, 1e-3, 1e-2),
                 dead_grid: Sequence[float] = (0.0, 1e-2), source_scale: float = 0.1,
                 mean_scale: float = 3.0) -> None:
        self.noise_grid = noise_grid
        self.spread_grid = spread_grid
        self.dead_grid = dead_grid
        self.source_scale = source_scale
        self.mean_scale = mean_scale

    def fit(self, X: Any, y: Sequence[float], prior_X: Any, prior_Y: Any) -> TransferRegressor:
        """Fit on ``k`` target measurements ``(X, y)`` with source latencies ``prior_Y`` as prior.

        ``X`` and ``prior_X`` are architectures (strings, op tuples or op codes);
        ``prior_Y`` is ``(len(prior_X), n_sources)`` in ms with ``nan`` where a source
        has no measurement. Sources with too few measurements to fit are ignored
        (``sources_used_`` lists the ones kept). Degenerate archs must be removed first.
        """
        phi = arch_features(X)
        y = np.asarray(y, dtype=float).ravel()
        if len(y) != len(phi) or len(y) == 0:
            raise ValueError(f"need one latency per target architecture (got {len(phi)} archs, {len(y)} latencies)")
        if not (np.isfinite(y).all() and (y > 0).all()):
            raise ValueError("target latencies must be finite and positive")
        self.source_coef_, self.sources_used_ = self._fit_sources(arch_features(prior_X), prior_Y)
        self.prior_mean_ = self.source_coef_.mean(axis=0)
        dev = self.source_coef_ - self.prior_mean_
        self.prior_cov_ = dev.T @ dev / max(len(dev) - 1, 1)
        pruned_mean = self.prior_mean_.copy()
        pruned_mean[_DEAD] = 0.0
        pruned_cov = self.prior_cov_.copy()
        pruned_cov[_DEAD, :] = pruned_cov[:, _DEAD] = 0.0
        centres = ([(self.prior_mean_, self.mean_scale * self.prior_cov_, False)]
                   + [(w, self.source_scale * self.prior_cov_, False) for w in self.source_coef_]
                   + [(pruned_mean, self.mean_scale * pruned_cov, True)])
        nll, coefs, second = zip(*(self._posteriors(phi, y, m, c, p) for m, c, p in centres))
        nll, coefs, second = np.concatenate(nll), np.concatenate(coefs), np.concatenate(second)
        weights = np.exp(-(nll - nll.min()))
        weights /= weights.sum()
        self.coef_ = weights @ coefs
        self.second_moment_ = np.einsum("g,gde->de", weights, second)
        self.n_samples_ = len(y)
        return self

    def predict(self, X: Any, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predicted latency in ms of each architecture in ``X``; with ``return_std`` also the standard
        deviation (ms) of the model-averaged predictive distribution (posterior spread of the weights,
        the disagreement between priors and the fitted relative noise of a measurement)."""
        check_is_fitted(self, "coef_")
        phi = arch_features(X)
        mean = phi @ self.coef_
        if not return_std:
            return mean
        var = np.einsum("nd,de,ne->n", phi, self.second_moment_, phi) - mean ** 2
        return mean, np.sqrt(np.maximum(var, 0.0))

    @staticmethod
    def _fit_sources(phi: np.ndarray, prior_Y: Any) -> tuple[np.ndarray, list[int]]:
        """Normalised least-squares weights of each usable source column, and their indices."""
        Y = np.asarray(prior_Y, dtype=float)
        if Y.ndim != 2 or len(Y) != len(phi):
            raise ValueError(f"prior_Y must be (n_archs, n_sources) with n_archs={len(phi)}")
        ref = _reference_features()
        coefs, used = [], []
        for s in range(Y.shape[1]):
            present = np.isfinite(Y[:, s])
            gram = phi[present].T @ phi[present]  # normal equations: the features are small integers
            if np.linalg.matrix_rank(gram) < phi.shape[1]:
                continue
            w = np.linalg.solve(gram, phi[present].T @ Y[present, s])
            if ref @ w <= 0:
                continue
            coefs.append(w / (ref @ w))
            used.append(s)
        if not coefs:
            raise ValueError("no source device has enough measurements to serve as a prior "
                             f"(each needs archs covering all {len(FEATURES)} features)")
        return np.array(coefs), used

    def _posteriors(self, phi: np.ndarray, y: np.ndarray, mean: np.ndarray, cov: np.ndarray,
                    pruned: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Negative log evidence, posterior weights (ms units) and predictive second moment of the
        weights (ms², measurement noise included) of one prior over the grid.

        ``mean`` and ``cov`` are the prior's centre and source-derived covariance (in
        normalised units); ``pruned`` says the prior models a runtime that drops
        dead-end edges, whose isotropic deviation then spares the dead-end weights.
        """
        k, d = phi.shape
        scale = y.mean() / (phi @ mean).mean()
        if not scale > 0:
            raise ValueError("the prior predicts non-positive latency for the target architectures")
        resid = y / scale - phi @ mean
        live, dead_end = np.arange(d)[_LIVE], np.arange(d)[_DEAD]
        iso = np.zeros((d, d))  # no isotropic part on the intercept: the overall scale is matched
        iso[live, live] = 1.0
        if not pruned:  # one deviation per op type, shared by its live and dead-end weights
            iso[dead_end, dead_end] = iso[live, dead_end] = iso[dead_end, live] = 1.0
        dead = np.zeros((d, d))
        dead[dead_end, dead_end] = 1.0
        covs = np.array([cov + t * iso + e * dead
                         for t in self.spread_grid for e in self.dead_grid])
        noise = np.asarray(self.noise_grid, dtype=float)
        gram = np.einsum("kd,gde,le->gkl", phi, covs, phi)              # (G, k, k)
        rel = np.diag((y / y.mean()) ** 2)  # noise grows with latency: relative, not absolute
        K = gram[:, None] + noise[None, :, None, None] * rel              # (G, N, k, k)
        chol = np.linalg.cholesky(K)
        alpha = np.linalg.solve(K, np.broadcast_to(resid, K.shape[:-1])[..., None])[..., 0]
        nll = (0.5 * alpha @ resid + np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)
               + k * math.log(scale))
        post = mean + np.einsum("gde,ke,gnk->gnd", covs, phi, alpha)      # (G, N, d)
        cp = np.einsum("gde,ke->gdk", covs, phi)                          # (G, d, k)
        post_cov = covs[:, None] - cp[:, None] @ np.linalg.solve(K, np.swapaxes(cp, -1, -2)[:, None])
        # a new measurement's relative noise, on the target's mean latency in normalised units
        rel_noise = noise / (y.mean() / scale) ** 2
        outer = np.einsum("gnd,gne->gnde", post, post)
        second = post_cov + (1.0 + rel_noise[None, :, None, None]) * outer
        return nll.ravel(), scale * post.reshape(-1, d), scale ** 2 * second.reshape(-1, d, d)


# ------------------------------------------------------------------------------- CSV

def _read_csv(path: Path, required: Sequence[str]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header of a CSV file (checked to contain ``required``) and its ``(line number, row)`` pairs."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, restval="")
        if reader.fieldnames is None:
            raise TransferInputError(f"{path}, line 1: the file is empty (expected a CSV header).")
        rows = [(reader.line_num, row) for row in reader]
    names = [n.strip() for n in reader.fieldnames]
    missing = [c for c in required if c not in names]
    if missing:
        raise TransferInputError(f"{path}, line 1: missing column(s) {', '.join(missing)} "
                                 f"(found: {', '.join(names) or 'none'}).")
    return names, [(line, {k.strip(): v for k, v in row.items() if k is not None}) for line, row in rows]


def _arch(path: Path, line: int, cell: str | None) -> tuple[str, ...]:
    """The parsed architecture of one CSV cell (TransferInputError naming file and line)."""
    if cell is None or not cell.strip():
        raise TransferInputError(f"{path}, line {line}: missing architecture string.")
    try:
        return parse_arch(cell)
    except ValueError as exc:
        raise TransferInputError(f"{path}, line {line}: {exc}.") from None


def _latency(path: Path, line: int, column: str, cell: str | None) -> float:
    """A positive latency from one CSV cell (TransferInputError naming file and line)."""
    try:
        value = float((cell or "").strip())
    except ValueError:
        raise TransferInputError(f"{path}, line {line}: {column} {cell!r} is not a number.") from None
    if not (math.isfinite(value) and value > 0):
        raise TransferInputError(f"{path}, line {line}: {column} must be a positive latency in ms, got {cell!r}.")
    return value


def _archs_with_values(path: Path, value_columns: Sequence[str] | None,
                       missing_ok: bool) -> tuple[list[tuple[str, ...]], list[str], np.ndarray]:
    """Read a CSV keyed by ``arch``: (non-degenerate archs, value columns, ``(n, columns)`` values).

    ``value_columns=None`` means every column but ``arch`` and ``nb201_index``.
    Duplicate archs, malformed archs and bad values raise TransferInputError; degenerate
    archs are skipped with one warning for the file.
    """
    head, rows = _read_csv(path, ["arch"] + list(value_columns or []))
    columns = list(value_columns) if value_columns is not None else [
        c for c in head if c not in ("arch", "nb201_index")]
    archs, values, degenerate, seen = [], [], [], {}
    for line, row in rows:
        arch = _arch(path, line, row.get("arch"))
        if arch in seen:
            raise TransferInputError(f"{path}, line {line}: duplicate architecture {row['arch'].strip()!r} "
                                     f"(first on line {seen[arch]}).")
        seen[arch] = line
        if is_degenerate(arch):
            degenerate.append(line)
            continue
        archs.append(arch)
        values.append([math.nan if missing_ok and not (row.get(c) or "").strip()
                       else _latency(path, line, c, row.get(c)) for c in columns])
    if degenerate:
        shown = ", ".join(map(str, degenerate[:10])) + (", ..." if len(degenerate) > 10 else "")
        log.warning("%s: skipped %d degenerate architecture(s) (no path from input to output) on line(s) %s",
                    path, len(degenerate), shown)
    return archs, columns, np.array(values, dtype=float).reshape(len(archs), len(columns))


def read_prior(path: str | os.PathLike) -> tuple[list[tuple[str, ...]], list[str], np.ndarray]:
    """A PRIOR CSV: (non-degenerate archs, device names, ``(n, devices)`` ms with ``nan`` for empty cells)."""
    archs, devices, values = _archs_with_values(Path(path), None, missing_ok=True)
    if not devices:
        raise TransferInputError(f"{path}, line 1: no device columns besides arch (and nb201_index).")
    return archs, devices, values


def read_target(path: str | os.PathLike) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """A TARGET CSV (``arch,latency_ms``): non-degenerate archs and their measured ms."""
    archs, _, values = _archs_with_values(Path(path), ["latency_ms"], missing_ok=False)
    if not archs:
        raise TransferInputError(f"{path}: no usable (non-degenerate) measurement to transfer from.")
    return archs, values[:, 0]


def read_archs(path: str | os.PathLike) -> tuple[list[str], list[tuple[str, ...]]]:
    """An ARCHS CSV (``arch``): the strings as written and their parsed ops, in file order."""
    path = Path(path)
    _, rows = _read_csv(path, ["arch"])
    texts, archs = [], []
    for line, row in rows:
        archs.append(_arch(path, line, row.get("arch")))
        texts.append(row["arch"].strip())
    return texts, archs


def write_predictions(path: str | os.PathLike, archs: Sequence[str], latency_ms: Sequence[float]) -> None:
    """Write ``arch,latency_ms`` atomically; the folder must exist (an OSError names ``path``)."""
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["arch", "latency_ms"])
        writer.writerows([a, f"{v:.6g}"] for a, v in zip(archs, latency_ms))


def transfer_csv(prior_path: str | os.PathLike, target_path: str | os.PathLike,
                 archs_path: str | os.PathLike, out_path: str | os.PathLike) -> dict[str, Any]:
    """Fit a :class:`TransferRegressor` from PRIOR and TARGET CSVs, predict ARCHS, write OUT.

    Returns a summary: ``n_predicted``, ``k`` (target measurements used), ``sources``
    (device columns used as prior), ``sources_skipped`` and ``out``.
    """
    prior_archs, devices, prior_values = read_prior(prior_path)
    target_archs, target_ms = read_target(target_path)
    texts, archs = read_archs(archs_path)
    try:
        model = TransferRegressor().fit(target_archs, target_ms, prior_archs, prior_values)
    except ValueError as exc:
        raise TransferInputError(f"{prior_path}: {exc}.") from None
    used = [devices[i] for i in model.sources_used_]
    skipped = [d for d in devices if d not in used]
    if skipped:
        log.warning("%s: ignored device column(s) %s (too few measurements to fit a prior)",
                    prior_path, ", ".join(skipped))
    if any(is_degenerate(a) for a in archs):
        log.warning("%s: degenerate architectures (no path from input to output) are predicted too, "
                    "but such cells compute nothing useful", archs_path)
    write_predictions(out_path, texts, model.predict(archs))
    return {"n_predicted": len(archs), "k": int(model.n_samples_), "sources": used,
            "sources_skipped": skipped, "out": str(out_path)}
