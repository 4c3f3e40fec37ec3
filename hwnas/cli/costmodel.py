"""``hwnas costmodel``: learned latency predictors (sub-commands: ``transfer``, ``fit``, ``evaluate``, ``refine``).

Each sub-command is added by its own ``register_<name>(costmodel_subparsers)``
function, so ``fit``/``evaluate``/``refine`` slot in next to ``transfer``.
"""
from __future__ import annotations

import argparse
import sys

from hwnas.cli import add_common
from hwnas.errors import BadInput
from hwnas.output import print_json


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``costmodel`` command group and its sub-commands."""
    p = sub.add_parser("costmodel", help="fit, evaluate and transfer latency cost models")
    commands = p.add_subparsers(dest="costmodel_command", metavar="SUBCOMMAND")
    commands.required = True
    register_transfer(commands)
    register_fit(commands)
    register_evaluate(commands)
    register_refine(commands)


def register_transfer(commands: argparse._SubParsersAction) -> None:
    """Add ``costmodel transfer``: few-shot latency prediction for a new device."""
    p = commands.add_parser(
        "transfer", help="predict a new device's latency from a few measurements plus other devices' data",
        description="Fit a few-shot transfer model (source devices in PRIOR as prior, the new device's "
                    "measurements in TARGET) and write its predictions for the archs in ARCHS to OUT.")
    p.add_argument("--space", required=True, choices=["nasbench201"], help="search space of the architectures")
    p.add_argument("--prior", required=True, metavar="PRIOR.csv",
                   help="columns arch[,nb201_index] + one latency column (ms) per source device")
    p.add_argument("--target", required=True, metavar="TARGET.csv",
                   help="columns arch,latency_ms: the new device's few measurements")
    p.add_argument("--predict", required=True, metavar="ARCHS.csv", help="column arch: architectures to predict")
    p.add_argument("--out", required=True, metavar="OUT.csv", help="written atomically with arch,latency_ms")
    add_common(p, json_flag=True)
    p.set_defaults(func=run_transfer)


def run_transfer(args: argparse.Namespace) -> int:
    """Run the transfer; bad or unreadable input files become BadInput (exit 2)."""
    # imported here so that other commands do not pay for numpy/scikit-learn start-up
    from cost_models.transfer import TransferInputError, transfer_csv

    try:
        info = transfer_csv(args.prior, args.target, args.predict, args.out)
    except TransferInputError as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        name = exc.filename if exc.filename is not None else "input"
        raise BadInput(f"cannot use {name}: {exc.strerror or exc}.") from None
    if args.json:
        print_json({"space": args.space, **info})
    else:
        print(f"predicted {info['n_predicted']} architecture(s) from k={info['k']} measurement(s) and "
              f"{len(info['sources'])} source device(s) -> {info['out']}", file=sys.stderr)
    return 0


# -- fit / evaluate / refine: whole-network models of a search space, from the store --------------------------------

def _device_args(p: argparse.ArgumentParser,
                 space_help: str = "search space (default: every space the device has measured networks of)") -> None:
    p.add_argument("--device", required=True, metavar="NAME", help="device whose measurements to use")
    p.add_argument("--space", default=None, help=space_help)
    add_common(p, json_flag=True)


def register_fit(commands: argparse._SubParsersAction) -> None:
    """Add ``costmodel fit``: fit and save a device's whole-network model per search space."""
    p = commands.add_parser(
        "fit", help="fit a whole-network latency model from the stored block LUT and measured networks",
        description="Fit LUT-sum + learned residual per space and save it (JSON + manifest) under "
                    "<workspace>/cost_models/.")
    _device_args(p)
    p.add_argument("--onnx-kernels", action="store_true",
                   help="build the device's any-ONNX kernel predictor instead (fusion rules learned on the device, "
                        "kernel samples measured there, one regressor per kernel type; resumable)")
    p.add_argument("--rounds", type=int, default=3, help="with --onnx-kernels: refinement rounds at most (default: 3)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="with --onnx-kernels: multiplies the first round's samples per kernel type (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="with --onnx-kernels: sampling seed (default: 0)")
    p.add_argument("--context-nets", type=int, default=None, metavar="N",
                   help="with --onnx-kernels: random networks whose kernels are trained on as a network runs them "
                        "(default: 200; 0 trains on kernels measured alone only)")
    p.set_defaults(func=run_fit)


def register_evaluate(commands: argparse._SubParsersAction) -> None:
    """Add ``costmodel evaluate``: cross-validated accuracy next to the plain and calibrated LUT sum."""
    p = commands.add_parser(
        "evaluate", help="±5%%/±10%% accuracy, RMSPE, Kendall τ, Spearman ρ on held-out measured networks",
        description="K-fold cross-validation on the stored networks: every network is predicted by a model "
                    "fitted without it; the plain and the calibrated LUT sum are scored alongside.")
    _device_args(p)
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    p.add_argument("--onnx-kernels", action="store_true",
                   help="evaluate the kernel predictor instead: whole-model accuracy on measured ONNX models")
    p.add_argument("--onnx", nargs="+", metavar="FILE", default=None,
                   help="with --onnx-kernels: the measured models to score (default: every ONNX model measured on "
                        "the device whose file still exists)")
    p.set_defaults(func=run_evaluate)


def register_refine(commands: argparse._SubParsersAction) -> None:
    """Add ``costmodel refine``: measure where the model is least certain, then refit (hardware in the loop)."""
    p = commands.add_parser(
        "refine", help="measure the N architectures the model is least certain about, then refit",
        description="Fit on the stored networks, sample a candidate pool, measure on the device the --budget "
                    "candidates with the largest relative uncertainty (stored like `hwnas profile --what "
                    "networks`), refit and save.")
    _device_args(p, "search space (default: the one space the device has a saved model of)")
    p.add_argument("--budget", type=int, required=True, metavar="N", help="networks to measure")
    p.add_argument("--pool", type=int, default=5000, help="candidate architectures sampled (default: 5000)")
    p.add_argument("--resolution", type=int, action="append", metavar="R",
                   help="input resolution of candidates (repeatable; mbv3 default 224)")
    p.add_argument("--seed", type=int, default=0, help="seed of the candidate pool (default: 0)")
    p.add_argument("--sessions", type=int, default=None,
                   help="fresh runtime sessions per network (default: the device's measurement.sessions)")
    p.set_defaults(func=run_refine)


def _context(args: argparse.Namespace):
    from hwnas.cli.common import registry, store

    reg = registry(args)
    return reg, reg.device(args.device), store(reg)


def _spaces(args: argparse.Namespace, st, device) -> list[str]:
    """The spaces a fit/evaluate works on: --space, or every space with stored networks."""
    from hwnas import spaces

    if args.space:
        spaces.get(args.space)
        return [args.space]
    found = sorted({m.space for m in st.select(device.name, device.backend, item="network") if m.space}
                   & set(spaces.names()))
    if not found:
        raise BadInput(f"device {device.name!r} has no measured networks of any space; run `hwnas profile "
                       f"--device {device.name} --space nasbench201 --what blocks` and then `... --what networks "
                       f"--num 100` first")
    return found


def run_fit_kernels(args: argparse.Namespace) -> int:
    """Build the device's kernel predictor (rules, samples, regressors, refinement) and save it."""
    import logging

    from hwnas.kernel_fit import CONTEXT_NETS, build

    nets = CONTEXT_NETS if args.context_nets is None else args.context_nets
    if args.rounds < 0 or args.scale <= 0 or nets < 0:
        raise BadInput("--rounds and --context-nets must be at least 0 and --scale positive")
    reg, device, st = _context(args)
    log = logging.getLogger("hwnas")
    predictor, report = build(reg, device, st, rounds=args.rounds, scale=args.scale, seed=args.seed,
                              quiet=args.json, context_nets=nets, log=log.info)
    result = {"device": device.name, "backend": device.backend, "path": report.model_path,
              "rules": report.rules_path, "kernels_measured_this_run": report.measured,
              "kernels_measured_total": predictor.manifest["build"]["kernels_measured_total"],
              "device_seconds_this_run": report.device_seconds, "rounds": report.rounds,
              "cv": predictor.manifest["cv"], "normaliser": predictor.manifest["normaliser"]}
    if args.json:
        print_json(result)
    else:
        for kind, cv in sorted(predictor.manifest["cv"].items()):
            print(f"{kind:10s} {cv['n']:4d} samples  validation RMSPE {cv['rmspe']:.1%}  ±10% {cv['within_10']:.0%}")
        check = predictor.manifest["normaliser"]
        if check:
            print(f"latencies normalised by {check['method']} (speed check: {check['pairs']} models measured twice, "
                  + ", ".join(f"{m} {sc['within_10']:.0%} within ±10%" for m, sc in check["scores"].items()) + ")")
        print(f"measured {report.measured} models (kernel samples, context and calibration networks) in "
              f"{report.device_seconds:.0f} s -> {report.model_path}")
    return 0


def run_fit(args: argparse.Namespace) -> int:
    """Fit and save one model per space; BadInput names the profile command when data is missing."""
    if args.onnx_kernels:
        return run_fit_kernels(args)
    from hwnas import refine, spaces

    reg, device, st = _context(args)
    results = [refine.fit_and_save(reg, device, st, spaces.get(name), quiet=args.json)
               for name in _spaces(args, st, device)]
    if args.json:
        print_json(results)
    else:
        for r in results:
            print(f"{r['space']}: fitted on {r['n_train']} measured networks (in-sample ±10% "
                  f"{r['fit_within_10']:.0%}, RMSPE {r['fit_rmspe']:.1%}) -> {r['path']}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Cross-validated metrics of the LUT sum, the calibrated LUT and the cost model, per space."""
    import numpy as np

    from cost_models.metrics import summary
    from cost_models.network_model import cross_val_predict
    from hwnas import costmodel_api as api
    from hwnas import spaces
    from hwnas.output import print_table

    if args.onnx_kernels:
        return run_evaluate_kernels(args)
    if args.folds < 2:
        raise BadInput(f"--folds must be at least 2, got {args.folds}")
    reg, device, st = _context(args)
    results = []
    for name in _spaces(args, st, device):
        space = spaces.get(name)
        features, _, nets = api.training_set(st, device.name, device.backend, space, args.json)
        X = features.transform(space.encode(nets.archs))
        calibrated, model = cross_val_predict(X, nets.latency_ms, folds=args.folds, feature_names=features.schema)
        y = nets.latency_ms
        results.append({"device": device.name, "backend": device.backend, "space": name, "networks": len(y),
                        "folds": min(args.folds, len(y)),
                        "noise_floor_median_session_spread": float(np.median(nets.spread)),
                        "lut_sum": summary(y, X[:, 0]), "calibrated_lut": summary(y, calibrated),
                        "cost_model": summary(y, model)})
    if args.json:
        print_json(results)
        return 0
    for r in results:
        print(f"{r['space']} on {r['device']}: {r['networks']} measured networks, {r['folds']}-fold cross-validation; "
              f"noise floor (median session spread) {r['noise_floor_median_session_spread']:.1%}")
        print_table(["predictor", "±5%", "±10%", "RMSPE", "Kendall τ", "Spearman ρ"],
                    [[label, f"{m['within_5']:.1%}", f"{m['within_10']:.1%}", f"{m['rmspe']:.1%}",
                      m["kendall_tau"], m["spearman_rho"]]
                     for label, m in (("LUT sum", r["lut_sum"]), ("calibrated LUT", r["calibrated_lut"]),
                                      ("cost model", r["cost_model"]))])
    return 0


def run_evaluate_kernels(args: argparse.Namespace) -> int:
    """Whole-model accuracy of the kernel predictor on models measured on the device."""
    from hwnas.output import print_table
    from hwnas.predict import evaluate, load_predictor

    reg, device, st = _context(args)
    predictor = load_predictor(reg, device.name)
    result = evaluate(predictor, st, device, args.onnx)
    if args.json:
        print_json(result)
        return 0
    m = result["metrics"]
    print(f"kernel predictor on {device.name}: {result['models']} measured models; noise floor (median session "
          f"spread) {result['noise_floor_median_session_spread']:.1%}")
    print_table(["±5%", "±10%", "RMSPE", "Kendall τ"],
                [[f"{m['within_5']:.1%}", f"{m['within_10']:.1%}", f"{m['rmspe']:.1%}", m["kendall_tau"]]])
    return 0


def _refine_space(args: argparse.Namespace, reg, device) -> str:
    from hwnas import costmodel_api as api
    from hwnas import spaces

    if args.space:
        spaces.get(args.space)
        return args.space
    saved = [n for n in spaces.names() if api.model_path(reg.workspace, device.name, device.backend, n).is_file()]
    if len(saved) != 1:
        raise BadInput(f"give --space: device {device.name!r} has {len(saved)} saved cost models "
                       f"({', '.join(saved) or 'none'})")
    return saved[0]


def run_refine(args: argparse.Namespace) -> int:
    """Measure the least certain candidates on the device, refit and save (:func:`hwnas.refine.refine`)."""
    import numpy as np

    from hwnas import refine, spaces
    from hwnas.cli.common import sessions as checked_sessions

    checked_sessions(args.sessions)
    if args.budget < 1 or args.pool < args.budget:
        raise BadInput(f"--budget must be at least 1 and at most --pool ({args.pool}), got {args.budget}")
    reg, device, st = _context(args)
    space = spaces.get(_refine_space(args, reg, device))
    bad = [r for r in args.resolution or [] if r not in space.resolutions]
    if bad:
        raise BadInput(f"--resolution {bad[0]} is not a resolution of space {space.name}")
    chosen = refine.least_certain(device, st, space, args.budget, args.pool, args.seed, args.resolution,
                                  quiet=args.json)
    done = refine.refine(reg, device, st, space, chosen, sessions=args.sessions, seed=args.seed, quiet=args.json)
    result = {"device": device.name, "space": space.name, "budget": args.budget, "pool": args.pool,
              "measured": done.measured, "error": done.error, "chosen": done.chosen,
              "prediction_before_refit": done.prediction_before_refit}
    if done.refit:
        result["refit"] = done.refit
    if args.json:
        print_json(result)
    else:
        spread = np.median([r["std_ms"] / r["predicted_ms"] for r in done.chosen])
        print(f"{space.name}: measured {done.measured} of the {args.budget} least certain of {args.pool} "
              f"candidates (median relative std {spread:.1%})")
        before = done.prediction_before_refit
        if before:
            print(f"  model before refit on them: ±10% {before['within_10']:.0%}, RMSPE {before['rmspe']:.1%}")
        if done.refit:
            print(f"  refitted on {done.refit['n_train']} networks -> {done.refit['path']}")
    return done.exit_code
