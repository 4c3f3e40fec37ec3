"""``hwnas predict``: predicted latency of any ONNX CNN on a device, from its kernel predictor."""
from __future__ import annotations

import argparse

from hwnas.cli import add_common
from hwnas.cli.common import registry
from hwnas.output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``predict`` command."""
    p = sub.add_parser("predict", help="predict ONNX CNN latency on a device (kernel predictor, no device time)",
                       description="Split each model into the kernels the device's runtime runs and sum their "
                                   "predicted latencies. Build the predictor first with "
                                   "`hwnas costmodel fit --device NAME --onnx-kernels`.")
    p.add_argument("--device", required=True, metavar="NAME", help="registered device")
    p.add_argument("--onnx", nargs="+", required=True, metavar="FILE", help="ONNX model files")
    p.add_argument("--per-kernel", action="store_true", help="also list each kernel and its prediction")
    p.add_argument("--predictor", metavar="PATH", default=None,
                   help="predictor file (default: <workspace>/cost_models/<device>-<backend>.kernels.json)")
    add_common(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate every model first (exit 2 naming a bad one), then predict each."""
    from hwnas.predict import load_predictor, predict_file, read_cnn

    reg = registry(args)
    predictor = load_predictor(reg, args.device, args.predictor)
    models = [(path, read_cnn(path, predictor)) for path in args.onnx]
    rows = [predict_file(path, kernels, predictor, args.device, args.per_kernel) for path, kernels in models]
    if args.json:
        print_json(rows)
        return 0
    print_table(["model", "device", "latency_ms", "±std_ms", "kernels", "note"],
                [[r["model"], r["device"], r["latency_ms"], r["std_ms"], r["kernels"],
                  "contains ops without a predictor: " + ", ".join(r["unpredicted_ops"]) if r["unpredicted_ops"]
                  else ""] for r in rows])
    if args.per_kernel:
        for r in rows:
            print(f"\n{r['model']}:")
            print_table(["kernel", "type", "op", "predicted_us", "±std_us", "nodes"],
                        [[k["kernel"], k["type"], k["op"], k["predicted_us"], k["std_us"],
                          "+".join(k["nodes"]) + ("" if k["predicted"] else "  (no predictor)")]
                         for k in r["per_kernel"]])
    return 0
