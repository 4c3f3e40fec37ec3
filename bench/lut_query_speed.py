"""LUT query speed: batched ``predict`` throughput on one core, nasbench201 and mbv3.

Pins the process to one CPU and one BLAS/OpenMP thread, builds a table with a value
for every key of the space (the values do not affect speed; a synthetic table keeps
the bench independent of the store), compiles it for the space layout and times
``predict`` on pre-encoded random architectures (nasbench201 timing includes turning
the (n, 6) op codes into LUT codes). Median of 5 repeats per batch size.
Writes ``bench/results/lut_query_speed.json``.

    python -m bench.lut_query_speed
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"


import numpy as np  # noqa: E402

from bench.common import machine, pin_one_core, throughput, write  # noqa: E402
from hwnas import spaces  # noqa: E402
from hwnas.spaces import mbv3, nasbench201  # noqa: E402
from lut.table import LatencyTable  # noqa: E402

TARGETS = {"nasbench201": 1_000_000, "mbv3": 200_000}
BATCHES = (1_000, 10_000, 100_000, 1_000_000)


def mbv3_codes(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random valid mbv3 LUT codes (uniform width/resolution, depths, kernels, expands), vectorised."""
    codes = np.zeros((n, 1 + mbv3.N_SLOTS), dtype=np.int64)
    codes[:, 0] = rng.integers(0, len(mbv3.WIDTHS) * len(mbv3.RESOLUTIONS), n)
    depth = rng.choice(mbv3.DEPTHS, (n, len(mbv3.STAGE_BASE)))
    position = np.tile(np.arange(mbv3.MAX_DEPTH), len(mbv3.STAGE_BASE))
    active = position[None, :] < np.repeat(depth, mbv3.MAX_DEPTH, axis=1)
    codes[:, 1:] = np.where(active, rng.integers(1, mbv3.N_CODES, (n, mbv3.N_SLOTS)), 0)
    return codes


def main() -> None:
    """Run the bench and print its figures."""
    pin_one_core()
    rng = np.random.default_rng(0)
    result = {"config": {"threads": 1, "repeats": 5, "batches": BATCHES, "table": "synthetic values, every key"},
              "machine": machine(), "spaces": {}}
    for name in ("nasbench201", "mbv3"):
        space = spaces.get(name)
        layout = space.layout()
        table = LatencyTable.from_records([(k, float(v), 0.0, 1) for k, v in
                                           zip(sorted(layout.keys()), rng.random(len(layout.keys())))])
        predictor = table.predictor(layout)
        if name == "nasbench201":
            data = rng.integers(0, 5, (max(BATCHES), 6)).astype(np.int8)

            def fn(ops, predictor=predictor):
                return predictor.predict(nasbench201.lut_codes(ops))
        else:
            data, fn = mbv3_codes(max(BATCHES), rng), predictor.predict
        rates = {str(b): throughput(fn, data[:b]) for b in BATCHES}
        best = max(rates.values())
        result["spaces"][name] = {"archs_per_s_by_batch": rates, "best": best, "target": TARGETS[name],
                                  "met": best >= TARGETS[name], "layout_terms": len(layout.terms)}
        print(f"{name}: " + ", ".join(f"batch {b}: {r / 1e6:.2f} M/s" for b, r in rates.items())
              + f"  (target {TARGETS[name] / 1e6:.1f} M/s: {'met' if best >= TARGETS[name] else 'NOT met'})")
    print(f"written to {write('lut_query_speed', result)}")


if __name__ == "__main__":
    main()
