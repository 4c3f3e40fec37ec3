"""A convolution alone against the same convolution inside a network: why kernel sums miss.

For corpus models (default one ResNet and one MnasNet), every conv kernel of the predictor's split
is profiled twice on the device: inside the network (the network's per-node profile, nodes
matched to the split's kernels by node name) and alone (the one-kernel model of the same
configuration the kernel samples use). The ratio is reported against the kernel's weight size.
Then, for a few conv shapes, ``copies`` convolutions with distinct weights run side by side on
one input: the per-conv time as the weights they span together outgrow the caches.
Profile times are speed-normalised (the reference kernel around each profile). Writes
``bench/results/kernel_context.json``.

    python -m bench.kernel_context [--device local] [--config hardware.yaml] [--corpus DIR] [--models a,b]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import machine, write
from bench.corpus import DEFAULT_OUT

MODELS = "resnet-001.onnx,mnasnet-000.onnx"
SHAPES = ((512, 512, 3, 2), (256, 256, 3, 4), (128, 128, 3, 8), (320, 960, 1, 4), (24, 72, 1, 32))
COPIES = (1, 4, 16)


def conv_config(kernel: Any) -> dict[str, Any] | None:
    """The kernel-sample configuration of a split conv kernel (None for other kernel types)."""
    from cost_models.onnx_kernels import ACT_CODES
    from hwnas.kernel_sampling import CONV_ACTS

    f = kernel.features
    if kernel.type not in ("conv", "dwconv"):
        return None
    act = {v: k for k, v in ACT_CODES.items()}.get(int(f["act"])) or ""
    if kernel.type == "conv":
        same = f["cin"] == f["cout"] and f["stride"] == 1 and f["hin"] == f["hout"]
        cfg = {"type": "conv", "cin": int(f["cin"]), "cout": int(f["cout"]), "k": int(f["k"]),
               "stride": int(f["stride"]), "h": int(f["hin"]), "sum": int(f["sum"]) if same else 0}
    else:
        cfg = {"type": "dwconv", "cin": int(f["c"]), "cout": int(f["c"]), "k": int(f["k"]),
               "stride": int(f["stride"]), "h": int(f["hin"])}
    cfg["act"] = act if act in CONV_ACTS else "Relu"
    return cfg


def side_by_side(path: Path, cin: int, cout: int, k: int, h: int, copies: int) -> Path:
    """``copies`` convs with distinct weights on one input, each its own output."""
    from hwnas.kernel_graphs import GraphBuilder, save

    g = GraphBuilder((1, cin, h, h), seed=0)
    return save(g.model([g.conv("x", cout, k) for _ in range(copies)]), path)


def main(argv: list[str] | None = None) -> int:
    """Profile the kernels in and out of their networks; print and write the ratios."""
    import onnx

    from cost_models import kernel_model
    from hwnas import config, fleet, kernel_rules, kernel_sampling
    from hwnas.kernel_fit import kernel_times
    from hwnas.kernel_graphs import save
    from hwnas.measure import device_settings, drift_settings, kernel_profile
    from hwnas.predict import load_predictor
    from hwnas.speed import Normaliser
    from hwnas.store import Store

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="local")
    p.add_argument("--config", default="hardware.yaml")
    p.add_argument("--corpus", type=Path, default=DEFAULT_OUT)
    p.add_argument("--models", default=MODELS, help="comma-separated corpus file names")
    args = p.parse_args(argv)
    where = machine()
    reg = config.load(args.config)
    device = reg.device(args.device)
    store = Store(reg.workspace)
    predictor = load_predictor(reg, device.name)
    normaliser = Normaliser(store)
    tmp = Path(tempfile.mkdtemp(prefix="hwnas-context-"))

    def work(dev, client) -> dict[str, Any]:
        settings = {**device_settings(dev), **drift_settings(store, dev.name, client)}

        def profiled(path: Path) -> list[dict[str, Any]]:
            reply = kernel_profile(dev, client, path, settings, reg.workspace, runs=10)
            scale = normaliser.reply_scale(dev.name, reply)
            return [{**n, "dur_us": n["dur_us"] * scale} for n in reply["nodes"]]

        models = {}
        for name in args.models.split(","):
            path = args.corpus / name
            model = onnx.load(str(path))
            kernels = predictor.kernels(model)
            inside, _reorders, _unmatched = kernel_times(model, kernels, profiled(path))
            rows = []
            for i, kernel in enumerate(kernels):
                cfg = conv_config(kernel)
                if cfg is None or i not in inside:
                    continue
                alone_path = save(kernel_sampling.model(cfg), tmp / f"{path.stem}-{i}.onnx")
                alone = sum(n["dur_us"] for n in profiled(alone_path) if n["op_type"] not in kernel_rules.REORDERS)
                rows.append({"config": cfg, "weights": kernel_model.weight_numel(kernel), "in_network_us": inside[i],
                             "alone_us": alone, "ratio": inside[i] / alone if alone > 0 else None})
            models[name] = rows
        copies = []
        for cin, cout, k, h in SHAPES:
            per = {}
            for n in COPIES:
                nodes = profiled(side_by_side(tmp / f"copies-{cin}-{cout}-{k}-{h}-{n}.onnx", cin, cout, k, h, n))
                per[n] = statistics.median(x["dur_us"] for x in nodes if x["op_type"] in ("Conv", "FusedConv"))
            copies.append({"cin": cin, "cout": cout, "k": k, "h": h, "weights_mb": cin * cout * k * k * 4 / 1e6,
                           "per_conv_us": per})
        return {"models": models, "copies": copies}

    outcome = fleet.run(reg, [device], work, store=store)[0]
    if outcome.error:
        raise outcome.error
    result = {"machine": where, "device": device.name, **outcome.value}
    out = write("kernel_context", result)
    for name, rows in result["models"].items():
        big = [r["ratio"] for r in rows if r["ratio"] and r["weights"] >= 200_000]
        small = [r["ratio"] for r in rows if r["ratio"] and r["weights"] < 50_000]
        print(f"{name}: in-network / alone, median {statistics.median(big) if big else float('nan'):.2f} for "
              f"{len(big)} convs with >= 200k weights, {statistics.median(small) if small else float('nan'):.2f} "
              f"for {len(small)} with < 50k")
    for c in result["copies"]:
        cells = "  ".join(f"{n} copies {us:7.1f} µs" for n, us in c["per_conv_us"].items())
        print(f"conv {c['cin']}->{c['cout']} k{c['k']} @{c['h']} ({c['weights_mb']:.2f} MB of weights): {cells}")
    print(f"-> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
