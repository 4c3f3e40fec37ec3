"""Architecture features for whole-network cost models, compiled for batched, vectorised queries.

A search space describes its encoded architectures with a :class:`lut.table.Layout`
(``[context, code_1 .. code_S]`` rows; slot ``s`` with code ``c`` adds a list of
blocks). :class:`FeatureMap` compiles a layout and a block LUT into one table of
per-cell raw features, so featurising a batch is one row gather per slot plus a
few element-wise operations — no Python loop over architectures.

Raw features of a cell, summed over the blocks it adds (times their multiplicity):

* ``lut_ms[g]`` — the LUT latency (fixed per-call cost subtracted, as in
  :meth:`lut.table.LatencyTable.predictor`) of the blocks of group ``g``;
* ``count[g]`` — how many blocks of group ``g`` it adds;
* ``macs``, ``params``, ``activations`` — multiply-accumulates, weights and
  activation elements (millions) from :func:`block_cost`.

A block's group is its op and output channel count (:func:`group_of`): for
NAS-Bench-201 that is one group per edge op per stage, for MobileNetV3 one per
stage (and width). The model features (:attr:`FeatureMap.schema`) are the LUT sum
first, then each group's share of it, the per-group block counts and the logs of
the LUT sum, MACs, params and activations; then, for a space with a
:class:`cost_models.kernels.KernelTable`, its kernel counts (``kernel1:...``,
``kernel2:...``: the nodes the runtime's graph optimiser leaves).
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from cost_models.kernels import KernelTable
from lut.builders import SE_REDUCTION, make_divisible
from lut.signature import Signature, parse
from lut.table import BASELINE, LatencyTable, Layout

LUT_SUM = "lut_sum"
_TOTALS = ("macs", "params", "activations")
_CHUNK = 65_536


def _prod(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape))


def block_cost(sig: Signature) -> tuple[float, float, float]:
    """(MACs, parameters, activation elements) of one block, each in millions.

    Activations count the block's input, output and internal tensors once each.
    Ops without a formula here (e.g. a new block type) count only their input and output.
    """
    src, dst = _prod(sig.input), _prod(sig.output)
    acts = src + dst
    macs = params = 0
    if sig.op in ("Conv", "nb201_stem", "nor_conv_1x1", "nor_conv_3x3", "Conv_1", "Conv_2"):
        k = {"nor_conv_1x1": 1, "Conv_1": 1, "Conv_2": 1}.get(sig.op, sig.kernel or 3)
        cin, cout = sig.input[-1], sig.output[-1]
        macs, params = dst * cin * k * k, cout * cin * k * k + cout
    elif sig.op == "expanded_conv":
        cin, cout, mid, k = sig.input[2], sig.output[2], sig.expand, sig.kernel
        hw_in, hw_out = sig.input[0] * sig.input[1], sig.output[0] * sig.output[1]
        if mid != cin:
            macs, params, acts = hw_in * cin * mid, cin * mid + mid, acts + hw_in * mid
        macs += hw_out * mid * k * k + hw_out * mid * cout
        params += mid * k * k + mid + mid * cout + cout
        acts += hw_out * mid
        if sig.se:
            reduced = make_divisible(mid // SE_REDUCTION)
            macs += 2 * mid * reduced
            params += 2 * mid * reduced + mid + reduced
    elif sig.op == "nb201_reduction":
        cin, cout, hw = sig.input[2], sig.output[2], sig.output[0] * sig.output[1]
        macs = hw * (cin * cout * 9 + cout * cout * 9 + cin * cout)
        params = cin * cout * 9 + cout * cout * 9 + cin * cout + 2 * cout
        acts += 2 * dst
    elif sig.op == "nb201_head":
        macs, params = src + sig.input[-1] * sig.output[0], sig.input[-1] * (sig.output[0] + 4) + sig.output[0]
    elif sig.op == "Logits":
        macs, params = sig.input[-1] * sig.output[0], sig.input[-1] * sig.output[0] + sig.output[0]
    elif sig.op in ("Add", "AvgPool2D"):
        macs = src
    elif sig.op == "avg_pool_3x3":
        macs = 9 * src
    return macs / 1e6, params / 1e6, acts / 1e6


def group_of(sig: Signature) -> str:
    """The feature group of a block: its op and output channel count, e.g. ``nor_conv_3x3@32``."""
    return f"{sig.op}@{sig.output[-1]}"


def layout_sha256(layout: Layout) -> str:
    """A hash of everything in ``layout`` (a changed space definition changes it)."""
    doc = [layout.space, layout.n_slots, layout.n_codes, list(layout.contexts), [list(t) for t in layout.terms]]
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


class FeatureMap:
    """A layout and a block LUT compiled into per-cell raw features; see the module docstring.

    Immutable after construction, so one instance may serve any number of threads.
    """

    def __init__(self, layout: Layout, table: LatencyTable, subtract_baseline: bool = True,
                 kernels: KernelTable | None = None) -> None:
        self.layout = layout
        self.kernels = kernels
        self.baseline_ms = table.entries[BASELINE].mean_ms if subtract_baseline and BASELINE in table else 0.0
        sigs = {key: parse(key) for key in layout.keys()}
        self.groups: tuple[str, ...] = tuple(sorted({group_of(s) for s in sigs.values()}))
        column = {g: i for i, g in enumerate(self.groups)}
        n_groups, n_ctx = len(self.groups), len(layout.contexts)
        width = 2 * n_groups + len(_TOTALS)
        self._stride = layout.n_slots * layout.n_codes
        self._offsets = np.arange(layout.n_slots, dtype=np.int64) * layout.n_codes
        self.cells = np.zeros((n_ctx * self._stride, width))
        self.fixed = np.zeros((n_ctx, width))
        self._missing: dict[tuple[int, int], str] = {}
        costs = {key: block_cost(sig) for key, sig in sigs.items()}
        for ctx, slot, code, key, mult in layout.terms:
            cell = -1 if slot < 0 else ctx * self._stride + slot * layout.n_codes + code
            row = self.fixed[ctx] if slot < 0 else self.cells[cell]
            g = column[group_of(sigs[key])]
            entry = table.entries.get(key)
            if entry is None:
                self._missing.setdefault((ctx, cell), key)
                row[g] = math.nan
            else:
                row[g] += mult * max(entry.mean_ms - self.baseline_ms, 0.0)
            row[n_groups + g] += mult
            row[2 * n_groups:] += mult * np.asarray(costs[key])
        self.cells.setflags(write=False)
        self.fixed.setflags(write=False)
        self.schema: tuple[str, ...] = (
            LUT_SUM, *(f"share:{g}" for g in self.groups), *(f"count:{g}" for g in self.groups),
            f"log_{LUT_SUM}", *(f"log_{t}" for t in _TOTALS), *(kernels.columns if kernels else ()))

    @property
    def n_columns(self) -> int:
        """Length of :attr:`schema` (columns of :meth:`transform`)."""
        return len(self.schema)

    def _raw(self, codes: np.ndarray) -> np.ndarray:
        """Summed raw features (n, 2G+3) of a chunk of encoded architectures."""
        ctx = codes[:, 0].astype(np.int64)
        index = codes[:, 1:].astype(np.int64) + (self._offsets + (ctx * self._stride)[:, None])
        out = np.take(self.fixed, ctx, axis=0)
        for slot in range(index.shape[1]):
            out += np.take(self.cells, index[:, slot], axis=0)
        return out

    def _check_codes(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        layout = self.layout
        if codes.ndim != 2 or codes.shape[1] != layout.n_slots + 1 or codes.dtype.kind not in "iu":
            raise ValueError(f"{layout.space}: encoded architectures must be an (n, {layout.n_slots + 1}) int "
                             f"array, got {codes.dtype} of shape {codes.shape}")
        if codes.size and (codes[:, 0].min() < 0 or codes[:, 0].max() >= len(layout.contexts)
                           or codes[:, 1:].min() < 0 or codes[:, 1:].max() >= layout.n_codes):
            raise ValueError(f"{layout.space}: encoded architectures hold codes outside the layout "
                             f"(contexts 0..{len(layout.contexts) - 1}, codes 0..{layout.n_codes - 1})")
        return codes

    def _missing_key(self, codes: np.ndarray, row: int) -> str:
        ctx = int(codes[row, 0])
        cells = {-1, *(int(c) for c in codes[row, 1:] + self._offsets + ctx * self._stride)}
        return next(k for (c, cell), k in self._missing.items() if c == ctx and cell in cells)

    def covered(self, codes: np.ndarray) -> np.ndarray:
        """Boolean mask: which encoded architectures the LUT has every block for."""
        codes = self._check_codes(codes)
        n_groups = len(self.groups)
        return np.concatenate([np.isfinite(self._raw(codes[s:s + _CHUNK])[:, :n_groups].sum(axis=1))
                               for s in range(0, codes.shape[0], _CHUNK)] or [np.zeros(0, dtype=bool)])

    def lut_sum(self, codes: np.ndarray) -> np.ndarray:
        """Uncalibrated LUT sums (ms) of encoded architectures (the first column of :meth:`transform`)."""
        return self.transform(codes)[:, 0]

    def transform(self, codes: np.ndarray) -> np.ndarray:
        """The (n, :attr:`n_columns`) model features of encoded architectures ``codes``.

        ValueError names a block the LUT lacks when an architecture needs one.
        """
        codes = self._check_codes(codes)
        n_groups = len(self.groups)
        out = np.empty((codes.shape[0], self.n_columns))
        for start in range(0, codes.shape[0], _CHUNK):
            chunk = codes[start:start + _CHUNK]
            raw = self._raw(chunk)
            total = raw[:, :n_groups].sum(axis=1)
            if self._missing and np.isnan(total).any():
                row = int(np.flatnonzero(np.isnan(total))[0])
                raise ValueError(f"the LUT has no entry for {self._missing_key(chunk, row)!r} (context "
                                 f"{self.layout.contexts[int(chunk[row, 0])]}); profile the missing blocks first")
            block = out[start:start + chunk.shape[0]]
            block[:, 0] = total
            safe = np.maximum(total, 1e-9)[:, None]
            block[:, 1:1 + n_groups] = raw[:, :n_groups] / safe
            block[:, 1 + n_groups:1 + 2 * n_groups] = raw[:, n_groups:2 * n_groups]
            totals = 2 + 2 * n_groups  # first column of the logs of MACs, params, activations
            block[:, totals - 1] = np.log(safe[:, 0])
            block[:, totals:totals + len(_TOTALS)] = np.log(np.maximum(raw[:, 2 * n_groups:], 1e-9))
            if self.kernels is not None:
                block[:, totals + len(_TOTALS):] = self.kernels.lookup(chunk)
        return out
