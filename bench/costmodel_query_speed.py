"""Cost-model query speed: batched ``CostModel.predict`` throughput on one core (nasbench201, mbv3).

Pins the process to one CPU and one BLAS/OpenMP thread. The model is fitted on a
synthetic block LUT (a value for every key of the space) and synthetic network
latencies — the values do not change the work a query does, and this keeps the bench
independent of any store. Times ``predict`` on pre-encoded random architectures
(nasbench201: (n, 6) op codes, as search code holds them; mbv3: (n, 21) layout codes),
with and without the uncertainty (``return_std``), and on a list of architecture
strings for reference. Median of 5 repeats. Writes ``bench/results/costmodel_query_speed.json``.

    python -m bench.costmodel_query_speed
"""
from __future__ import annotations

import os
from functools import partial

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"


import numpy as np  # noqa: E402

from bench.common import machine, pin_one_core, throughput, write  # noqa: E402
from bench.lut_query_speed import mbv3_codes  # noqa: E402
from cost_models.features import FeatureMap  # noqa: E402
from hwnas import costmodel_api as api  # noqa: E402
from hwnas import spaces  # noqa: E402
from lut.table import BASELINE, LatencyTable  # noqa: E402

TARGET = 200_000  # nasbench201, encoded input, one core (issue 6)
BATCHES = (1_000, 10_000, 100_000, 1_000_000)
STRING_BATCH = 10_000


def synthetic_model(name: str, rng: np.random.Generator) -> api.CostModel:
    """A cost model fitted on a synthetic LUT and 300 synthetic measured networks."""
    space = spaces.get(name)
    keys = sorted(space.layout().keys())
    table = LatencyTable.from_records([(k, float(0.05 + rng.random()), 0.0, 1) for k in keys]
                                      + [(BASELINE, 0.02, 0.0, 1)])
    features = FeatureMap(space.layout(), table, kernels=api.kernel_table(space, "onnxruntime"))
    kwargs = {"resolutions": [224]} if name == "mbv3" else {}
    archs = space.sample(300, rng, **kwargs)
    y = features.lut_sum(space.encode(archs)) * 1.2 * np.exp(rng.normal(0, 0.03, len(archs))) + 0.3
    return api.fit(space, features, archs, y)


def main() -> None:
    """Run the bench and print its figures."""
    pin_one_core()
    rng = np.random.default_rng(0)
    result = {"config": {"threads": 1, "repeats": 5, "batches": BATCHES, "chunk_rows": api.CHUNK,
                         "model": "synthetic LUT (every key) + 300 synthetic networks, 16 bootstrap members"},
              "machine": machine(), "spaces": {}}
    for name in ("nasbench201", "mbv3"):
        cm = synthetic_model(name, rng)
        data = (rng.integers(0, 5, (max(BATCHES), 6)).astype(np.int8) if name == "nasbench201"
                else mbv3_codes(max(BATCHES), rng))
        rates = {str(b): throughput(cm.predict, data[:b]) for b in BATCHES}
        with_std = {str(b): throughput(partial(cm.predict, return_std=True), data[:b]) for b in BATCHES}
        kwargs = {"resolutions": [224]} if name == "mbv3" else {}
        strings = spaces.get(name).sample(STRING_BATCH, rng, **kwargs)
        string_rate = throughput(cm.predict, strings, repeats=3)
        best = max(rates.values())
        entry = {"archs_per_s_by_batch": rates, "archs_per_s_with_std_by_batch": with_std,
                 "archs_per_s_from_strings": string_rate, "best": best, "best_with_std": max(with_std.values()),
                 "features": len(cm.features.schema)}
        if name == "nasbench201":
            entry.update(target=TARGET, met=best >= TARGET)
        result["spaces"][name] = entry
        print(f"{name} ({len(cm.features.schema)} features): "
              + ", ".join(f"batch {b}: {r / 1e6:.2f} M/s" for b, r in rates.items())
              + f"; with std best {entry['best_with_std'] / 1e6:.2f} M/s; from strings {string_rate / 1e3:.0f} k/s"
              + (f"  (target {TARGET / 1e3:.0f} k/s: {'met' if best >= TARGET else 'NOT met'})"
                 if name == "nasbench201" else ""))
    result["machine"]["loadavg_after"] = os.getloadavg()
    print(f"written to {write('costmodel_query_speed', result)}")


if __name__ == "__main__":
    main()
