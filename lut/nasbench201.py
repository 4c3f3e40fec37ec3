"""The NAS-Bench-201 cell codec: parse, format, encode and enumerate architectures.

A NAS-Bench-201 cell is a DAG over 4 nodes; each of its 6 edges ``i -> j`` (i < j)
carries one of five operations. The standard string form lists the edges grouped
by their destination node, each as ``op~source``::

    |nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|

Here an architecture is the tuple of its 6 edge ops in that string order, i.e. the
edges ``(0->1), (0->2), (1->2), (0->3), (1->3), (2->3)`` (see :data:`EDGES`).
Pure functions, numpy only, no I/O.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import numpy as np

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The five edge operations; an op's position here is its integer code in :func:`encode`."""

EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
"""The ``(source, destination)`` node pair of each of the 6 edges, in string order."""

"""The size of the search space: 5^6 = 15,625."""

Arch = tuple[str, ...]
ArchLike = str | Sequence[str]

_OP_INDEX = {op: i for i, op in enumerate(OPS)}


def parse_arch(s: str) -> Arch:
    """The 6 edge ops of the architecture string ``s``, in string order.

    Raises ``ValueError`` naming the problem when ``s`` is not a well-formed
    NAS-Bench-201 string (wrong number of nodes or edges, wrong source node,
    unknown op).
    """
    if not isinstance(s, str):
        raise ValueError(f"architecture must be a string, got {type(s).__name__}")
    text = s.strip()
    groups = text.split("+")
    if len(groups) != 3:
        raise ValueError(f"malformed NAS-Bench-201 architecture {s!r}: expected 3 node groups "
                         f"separated by '+', found {len(groups)}")
    ops: list[str] = []
    for node, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise ValueError(f"malformed NAS-Bench-201 architecture {s!r}: node {node} group "
                             f"{group!r} must be enclosed in '|'")
        edges = group[1:-1].split("|")
        if len(edges) != node:
            raise ValueError(f"malformed NAS-Bench-201 architecture {s!r}: node {node} needs "
                             f"{node} incoming edge(s), found {len(edges)}")
        for source, edge in enumerate(edges):
            op, sep, src = edge.partition("~")
            if not sep or src != str(source):
                raise ValueError(f"malformed NAS-Bench-201 architecture {s!r}: edge {edge!r} "
                                 f"of node {node} must read 'op~{source}'")
            if op not in _OP_INDEX:
                raise ValueError(f"unknown operation {op!r} in NAS-Bench-201 architecture {s!r} "
                                 f"(known: {', '.join(OPS)})")
            ops.append(op)
    return tuple(ops)


def _as_ops(arch: ArchLike) -> Arch:
    """``arch`` as a validated tuple of 6 op names (a string is parsed)."""
    if isinstance(arch, str):
        return parse_arch(arch)
    ops = tuple(arch)
    if len(ops) != len(EDGES):
        raise ValueError(f"an architecture has {len(EDGES)} edge ops, got {len(ops)}: {ops!r}")
    for op in ops:
        if op not in _OP_INDEX:
            raise ValueError(f"unknown operation {op!r} (known: {', '.join(OPS)})")
    return ops


def format_arch(ops: Sequence[str]) -> str:
    """The standard string form of the 6 edge ops ``ops`` (inverse of :func:`parse_arch`)."""
    ops = _as_ops(tuple(ops))
    groups, k = [], 0
    for node in range(1, 4):
        groups.append("|" + "|".join(f"{ops[k + src]}~{src}" for src in range(node)) + "|")
        k += node
    return "+".join(groups)


def is_degenerate(arch: ArchLike) -> bool:
    """True when no path of non-``none`` edges joins the cell input (node 0) to its output (node 3).

    Such cells (341 of the 15,625) output zeros regardless of the input; their
    measured latencies are meaningless.
    """
    ops = _as_ops(arch)
    reached = [True, False, False, False]
    for (src, dst), op in zip(EDGES, ops):  # EDGES is ordered by destination node
        if op != "none" and reached[src]:
            reached[dst] = True
    return not reached[3]


def encode(archs: Iterable[ArchLike]) -> np.ndarray:
    """An ``(n, 6)`` int8 array of op codes (positions in :data:`OPS`), one row per architecture.

    Each item may be an architecture string or a sequence of 6 op names.
    """
    rows = [[_OP_INDEX[op] for op in _as_ops(a)] for a in archs]
    return np.asarray(rows, dtype=np.int8).reshape(len(rows), len(EDGES))


def all_archs() -> list[Arch]:
    """All 15,625 architectures as op tuples, in lexicographic order of their op codes.

    The order is deterministic (edge 0 varies slowest) but is not the official
    NAS-Bench-201 index order; use the ``nb201_index`` column of a data set for that.
    """
    return [tuple(ops) for ops in itertools.product(OPS, repeat=len(EDGES))]
