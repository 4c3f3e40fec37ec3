"""Do the learned fusion rules split real CNNs into the kernels each runtime really runs?

For two devices on this host, an ONNX Runtime one (``local``: CPU provider, 1 thread) and a
TVM one (``llvm``, the default Relax pipeline), the fusion rules are learned from the test
graphs by profiling them with that device's own runtime (``kernel_fit.ensure_rules``; the
learning time is reported). Then ``--per-family`` models of every corpus family (seeded
configurations, resolution capped at 96 to keep TVM's compiles short) are split on the host
with those rules and profiled on the device, and the two kernel lists are compared: the share
of models whose kernel count is exactly the runtime's, the mean |count difference|, and the
share whose kernels' op types match as a multiset. No timing is involved, so the figures do
not depend on this machine's noise. A model TVM cannot compile is counted apart, with the
reason. Writes ``bench/results/kernel_detection.json``.

    python -m bench.kernel_detection [--per-family 3] [--seed 11]
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from bench.common import machine, write
from bench.corpus_models import FAMILIES, export, sample
from cost_models.onnx_kernels import split
from hwnas import config, kernel_fit
from hwnas.agent_client import AgentClient
from hwnas.errors import BadInput
from hwnas.measure import device_settings, kernel_profile
from hwnas.store import Store
from hwnas.transports.local import LocalTransport

DEVICES = {"local": "{backend: onnxruntime, providers: [CPUExecutionProvider], threads: 1}",
           "tvm": "{backend: tvm, target: {kind: llvm}}"}
SAME_OP = {"FusedConv": "Conv", "FusedGemm": "Gemm", "QuickGelu": "Swish", "MatMul": "Gemm"}
"""One name per kernel on both sides: ONNX Runtime's fused kernels (conv + activation, gemm + activation,
x * sigmoid(x)); TVM imports Gemm as matmul (+ add) and names its kernel after the matmul."""
MAX_RESOLUTION = 96


def _compare(mine: list[Any], ran: list[dict[str, Any]]) -> dict[str, Any]:
    """Compute kernels (layout reorders apart) of the split and of the runtime: counts and op types."""
    split_ops = collections.Counter(SAME_OP.get(k.op, k.op) for k in mine if k.type != "reorder")
    ran_ops = collections.Counter(SAME_OP.get(n["op_type"], n["op_type"]) for n in ran
                                  if not n["op_type"].startswith("Reorder"))
    return {"split": sum(split_ops.values()), "ran": sum(ran_ops.values()), "ops_match": split_ops == ran_ops,
            "only_split": dict(split_ops - ran_ops), "only_ran": dict(ran_ops - split_ops)}


def main(argv: list[str] | None = None) -> int:
    """Learn both devices' rules, split and profile the models, write the comparison."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-family", type=int, default=3)
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args(argv)
    where = machine()
    out: dict[str, Any] = {"machine": where, "per_family": args.per_family, "seed": args.seed,
                           "max_resolution": MAX_RESOLUTION, "devices": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = tmp / "hardware.yaml"
        cfg.write_text(f"workspace: {tmp / 'ws'}\ndevices:\n" + "".join(
            f"  - name: {name}\n    kind: x86_cpu\n    transport: {{type: local}}\n    runtime: {runtime}\n"
            for name, runtime in DEVICES.items()))
        reg = config.load(cfg)
        store = Store(reg.workspace)
        rng = np.random.default_rng(args.seed)
        models = []
        for family in FAMILIES:
            for i in range(args.per_family):
                conf = sample(family, rng)
                conf["resolution"] = min(conf["resolution"], MAX_RESOLUTION)
                path = tmp / f"{family}-{i}.onnx"
                export(family, conf, str(path))
                models.append((family, path))
        for name in DEVICES:
            device = reg.device(name)
            started = time.monotonic()
            rules, _ = kernel_fit.ensure_rules(reg, device, store)
            learn_s = time.monotonic() - started
            client = AgentClient(LocalTransport(device, reg.workspace), timeout_s=900)
            client.start()
            per_family: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
            try:
                for n, (family, path) in enumerate(models, 1):
                    print(f"\r{name}: {n}/{len(models)} {family}          ", end="", file=sys.stderr, flush=True)
                    try:
                        ran = kernel_profile(device, client, path, device_settings(device), reg.workspace,
                                             runs=1)["nodes"]
                    except BadInput as exc:
                        per_family[family].append({"model": path.name, "error": str(exc)})
                        continue
                    per_family[family].append({"model": path.name,
                                               **_compare(split(onnx.load(str(path)), rules), ran)})
            finally:
                client.close()
            print(file=sys.stderr)
            out["devices"][name] = {"backend": device.backend, "rules_learn_s": learn_s,
                                    "rules": {k: v for k, v in rules.to_dict().items() if k != "meta"},
                                    "families": {f: _summary(rows) for f, rows in per_family.items()},
                                    "overall": _summary([r for rows in per_family.values() for r in rows])}
        store.close()
    out["loadavg_after"] = os.getloadavg()
    path = write("kernel_detection", out)
    for name, d in out["devices"].items():
        o = d["overall"]
        print(f"{name}: exact kernel count {o['exact_count']}/{o['compared']}, op types match "
              f"{o['ops_match']}/{o['compared']}, failed {o['failed']} (rules learned in {d['rules_learn_s']:.0f} s)")
    print(f"wrote {path}")
    return 0


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in rows if "error" not in r]
    return {"models": len(rows), "compared": len(done), "exact_count": sum(r["split"] == r["ran"] for r in done),
            "ops_match": sum(r["ops_match"] for r in done),
            "mean_abs_count_diff": float(np.mean([abs(r["split"] - r["ran"]) for r in done])) if done else None,
            "failed": len(rows) - len(done), "errors": sorted({r["error"] for r in rows if "error" in r}),
            "rows": rows}


if __name__ == "__main__":
    sys.exit(main())
