"""Kernels as the runtime runs them: counts of the nodes ONNX Runtime's graph optimiser leaves.

A block LUT sums blocks measured one by one, but a runtime rewrites the whole graph
before it runs it: ONNX Runtime's CPU optimiser drops branches that reach no output,
computes identical parameter-free ops on the same input once (common subexpression
elimination), and fuses a convolution with the ReLU and the Add that follow it. On
NAS-Bench-201 that turns, e.g., 47 AveragePool and 32 Add nodes into 17 and 15, or 95
ReLU and 47 Add nodes into 2 and 0. So the cost model counts *kernels* — the nodes of
the optimised graph, named by op type and, for a Conv, its kernel shape, fused
activation and fused sum (:func:`kernel_name`) — the nn-Meter observation that
latency is additive over kernels after fusion, not over the nodes of the source graph.

:class:`KernelTable` holds those counts for every architecture of a space whose
architectures can be enumerated (NAS-Bench-201: 15,625): a space lists, per
architecture, small probe graphs (one cell, and two cells in a row so the steady
state of cell-to-cell fusion shows). To keep building fast, many probes are packed as
independent components of one ONNX graph, optimised in one session, and the optimised
graph is split back into its connected components. A table is
plain JSON and is stored inside the cost model that uses it, so a later runtime
upgrade cannot change a saved model's features; it records the runtime version that
made it.
"""
from __future__ import annotations

import collections
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import onnx

BATCH = 256
"""Architectures whose probes are optimised together in one session."""
TABLE_VERSION = 1
"""Bump when kernel naming or probing changes (cached tables of another version are not reused)."""


def kernel_name(node: onnx.NodeProto) -> str:
    """A kernel's name: the op type, and for a Conv its kernel shape, fused activation and fused sum
    (e.g. ``Conv3x3+Relu+Sum``; ONNX Runtime's fused Conv takes the summand as a 4th input)."""
    if node.op_type != "Conv":
        return node.op_type
    attrs = {a.name: a for a in node.attribute}
    name = "Conv"
    if "kernel_shape" in attrs:
        name += "x".join(str(k) for k in attrs["kernel_shape"].ints)
    if "activation" in attrs:
        name += "+" + attrs["activation"].s.decode()
    if len(node.input) > 3 and node.input[3]:
        name += "+Sum"
    return name


def optimized_graph(model: onnx.ModelProto, providers: Sequence[str]) -> onnx.GraphProto:
    """The graph ONNX Runtime actually runs for ``model`` (all graph optimisations on)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=list(providers))
        return onnx.load(opts.optimized_model_filepath).graph


def component_kernels(graph: onnx.GraphProto) -> dict[str, collections.Counter]:
    """Kernel counts of the connected component behind each graph output.

    Probes packed into one graph are independent components (each has its own input;
    they share no tensor but weights), so this splits the optimised graph back into
    probes. A node that feeds no output — a dead-end branch the runtime still runs —
    counts for the component it hangs off.
    """
    weights = {t.name for t in graph.initializer}
    parent = list(range(len(graph.node)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for name in [*node.input, *node.output]:
            if not name or name in weights:
                continue
            if name in owner:
                parent[root(i)] = root(owner[name])
            else:
                owner[name] = i
    members: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for i, node in enumerate(graph.node):
        members[root(i)][kernel_name(node)] += 1
    return {out.name: members[root(owner[out.name])] if out.name in owner else collections.Counter()
            for out in graph.output}


class KernelTable:
    """Kernel counts per enumerated architecture; immutable once built.

    ``columns``: feature names (``kernel1:<kernel>`` = one cell, ``kernel2:<kernel>`` = what a
    second cell in a row adds). ``counts``: (rows, columns). A row is found from a space's
    layout codes as the mixed-radix number ``codes[:, 1:] @ radices``. ``meta``: the runtime
    and providers that made it.
    """

    def __init__(self, columns: Sequence[str], counts: np.ndarray, radices: Sequence[int],
                 meta: dict[str, Any]) -> None:
        counts = np.array(counts, dtype=np.float64)  # a private copy, frozen below
        if counts.ndim != 2 or counts.shape[1] != len(columns):
            raise ValueError(f"kernel counts must be (rows, {len(columns)}), got {counts.shape}")
        self.columns = tuple(columns)
        self.counts = counts
        self.counts.setflags(write=False)
        self.radices = np.asarray(radices, dtype=np.int64)
        self.meta = dict(meta)

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """The (n, columns) kernel counts of layout-encoded architectures ``codes``."""
        rows = np.asarray(codes, dtype=np.int64)[:, 1:] @ self.radices
        if rows.size and (rows.min() < 0 or rows.max() >= self.counts.shape[0]):
            raise ValueError("encoded architectures fall outside the kernel table")
        return np.take(self.counts, rows, axis=0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (counts as integer lists)."""
        return {"columns": list(self.columns), "radices": self.radices.tolist(), "meta": self.meta,
                "counts": self.counts.astype(np.int64).tolist()}

    @classmethod
    def from_dict(cls, doc: Any) -> KernelTable:
        """The table :meth:`to_dict` described; ValueError names what is malformed."""
        if not isinstance(doc, dict) or not {"columns", "radices", "meta", "counts"} <= set(doc):
            raise ValueError("a kernel table needs columns, radices, meta and counts")
        if not all(isinstance(c, str) for c in doc["columns"]) or not isinstance(doc["meta"], dict):
            raise ValueError("kernel table columns must be strings and meta a mapping")
        try:
            counts = np.asarray(doc["counts"], dtype=np.float64)
            radices = [int(r) for r in doc["radices"]]
        except (TypeError, ValueError):
            raise ValueError("kernel table counts and radices must be numbers") from None
        if not np.isfinite(counts).all():
            raise ValueError("kernel table counts must be finite")
        return cls(doc["columns"], counts, radices, doc["meta"])


def build(archs: Sequence[Any], probes: Callable[[Sequence[Any]], tuple[onnx.ModelProto, list[list[str]]]],
          radices: Sequence[int], providers: Sequence[str],
          progress: Callable[[int], None] | None = None) -> KernelTable:
    """Count the kernels of every architecture (``archs`` in row order).

    ``probes(batch)`` gives one model holding, per architecture of the batch, the outputs of
    its probes: ``[one_cell_output, two_cell_output]``. ``progress(n)`` is told after each batch.
    """
    import onnxruntime as ort

    per_arch: list[tuple[collections.Counter, dict[str, int]]] = []
    for start in range(0, len(archs), BATCH):
        batch = archs[start:start + BATCH]
        model, outputs = probes(batch)
        kernels = component_kernels(optimized_graph(model, providers))
        for one, two in outputs:
            first, both = kernels[one], kernels[two]
            per_arch.append((first, {k: both[k] - first[k] for k in both.keys() | first.keys()}))
        if progress:
            progress(len(batch))
    names = sorted({k for one, two in per_arch for k in (*one, *two)})
    columns = [f"kernel1:{k}" for k in names] + [f"kernel2:{k}" for k in names]
    counts = np.array([[one.get(k, 0) for k in names] + [two.get(k, 0) for k in names] for one, two in per_arch])
    meta = {"runtime": "onnxruntime", "version": ort.__version__, "providers": list(providers)}
    return KernelTable(columns, counts.reshape(len(per_arch), len(columns)), radices, meta)

