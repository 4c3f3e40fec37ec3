"""Build a device's any-ONNX kernel predictor: learn its fusion rules, sample and measure kernels, fit.

The steps of ``hwnas costmodel fit --device NAME --onnx-kernels``, each resumable:

1. **rules** — profile the fusion test graphs on the device (:mod:`hwnas.kernel_rules`);
   kept in ``<workspace>/kernels/<device>-<backend>-<runtime version>.rules.json``.
2. **sample + measure** — draw kernel configurations from the prior
   (:mod:`hwnas.kernel_sampling`) with a seeded Generator and measure each single-kernel
   model through the sweep machinery (interleaved sessions, drift checks, per-node
   profile with shapes, stored as it finishes; a re-run measures only what is missing).
   Every sweep also measures the empty model, whose latency is one call's fixed cost.
3. **speed check** — a hundred kernel samples and twenty context networks of step 2 are measured
   again and the device's normalisation is fixed (:func:`speed_check`; before the first fit, so every
   fit trains under it).
4. **fit** — per kernel type a regressor (:mod:`cost_models.kernel_model`) on
   log latency, cross-validated.
5. **refine** — more samples next to the configurations with the worst validation
   error, in the types whose error is worst, until a round no longer improves the
   error by :data:`MIN_GAIN` (or ``rounds`` are done).
6. **calibrate** — :data:`CALIBRATION_NETS` networks of hwnas's mbv3 search space (never
   an evaluation model) are measured, and the sum of kernel predictions is calibrated to
   their latency (:func:`network_calibration`); that calibration is kept only when it predicts
   the context networks no worse than the samples' own (:func:`calibration_check`).

Training target of a kernel: its sample's measured latency less one call's fixed cost, the share
of it the device's profiler gives the kernel's nodes (layout reorders apart: they are a kernel type of
their own, learned from the same samples; :func:`training_rows`). Every time is speed-normalised
(:mod:`hwnas.speed`) when the device measures with round probes: the predictor predicts latency at
the reference speed.
"""
from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cost_models import kernel_model
from cost_models.onnx_kernels import FusionRules, split
from hwnas import backends, fleet, kernel_networks, kernel_rules, kernel_sampling, speed, sweep
from hwnas.config import DeviceConfig, Registry
from hwnas.errors import BadInput, DeviceFailure
from hwnas.kernel_graphs import save
from hwnas.measure import device_settings, kernel_profile
from hwnas.store import Store
from lut import builders
from lut.signature import parse
from lut.table import BASELINE

SPACE = "kernels"
"""The store ``space`` of kernel samples."""
MIN_GAIN = 0.02
CALIBRATION_NETS = 60
FLOOR_US = 0.5
"""Least training target (µs): below it a sample's latency is its call cost within the measurement's noise."""
CONTEXT_NETS = 800
"""Context networks measured per build, whose kernels are trained on as a network runs them. On the AMD
EPYC host (stop 20) 200, 400 and 800 of them put 56%, 69% and 74% of the corpus within ±10%, at about
0.95 s of device time each."""
SESSIONS = 2
"""Sessions per kernel sample (many samples average each other's noise; networks use the device's default)."""
SPEED_CHECK_SAMPLES = 100
SPEED_CHECK_NETS = 20
"""Kernel samples and context networks a build measures twice to choose the device's normalisation."""


@dataclass
class FitReport:
    """What a build did: rules, samples measured per round, validation error per round and type."""

    device: str
    rules_path: str = ""
    rounds: list[dict[str, Any]] = field(default_factory=list)
    measured: int = 0
    device_seconds: float = 0.0
    model_path: str = ""


def runtime_version(registry: Registry, device: DeviceConfig, store: Store) -> str | None:
    """The device runtime's version, from the newest stored measurement or a handshake."""
    for m in reversed(store.select(device.name, device.backend)):
        if m.runtime_version:
            return m.runtime_version
    outcome = fleet.run(registry, [device], lambda d, client: (client.facts.get("runtimes") or {}).get(d.backend),
                        store=store)[0]
    if outcome.error:
        raise outcome.error
    return outcome.value


def ensure_rules(registry: Registry, device: DeviceConfig, store: Store,
                 log: Callable[[str], None] = lambda _m: None) -> tuple[FusionRules, Path]:
    """The device's fusion rules: loaded when learned before for this runtime version, else learned now
    from the kernels its own runtime reports for the test graphs (any backend with ``KERNEL_PROFILES``)."""
    if not backends.get(device.backend).KERNEL_PROFILES:
        raise BadInput(f"device {device.name!r}: kernel detection needs a runtime that reports the kernels it "
                       f"runs (onnxruntime, tvm); {device.backend} does not")
    version = runtime_version(registry, device, store)
    path = kernel_rules.rules_path(registry.workspace, device.name, device.backend, version)
    if path.is_file():
        return kernel_rules.load_rules(path), path
    log(f"learning {device.name}'s fusion rules from test graphs")

    def work(dev: DeviceConfig, client) -> FusionRules:
        facts = client.facts
        runtime = dev.runtime
        meta = {"device": dev.name, "backend": dev.backend, "runtime_version": (facts.get("runtimes") or {}).get(
            dev.backend), "providers": list(getattr(runtime, "provider_names", ())),
            "target": getattr(runtime, "target", None), "cpu": facts.get("cpu"), "agent": facts.get("agent")}
        settings = device_settings(dev)
        return kernel_rules.learn(lambda onnx_path: kernel_profile(dev, client, onnx_path, settings,
                                                                   registry.workspace, runs=2)["nodes"], meta)

    outcome = fleet.run(registry, [device], work, store=store)[0]
    if outcome.error:
        raise outcome.error
    return outcome.value, kernel_rules.save_rules(outcome.value, path)


def kernel_needs(configs: list[dict[str, Any]], workspace: Path) -> list[sweep.Need]:
    """Sweep needs of kernel configurations, plus the empty model (one call's fixed cost)."""
    folder = workspace / "onnx" / SPACE
    base = parse(BASELINE)
    needs = [sweep.Need(base.key(), "block", SPACE, None, folder / "baseline.onnx",
                        lambda path: builders.write_block(base, path))]
    return needs + [_model_need(kernel_sampling.signature(cfg), "kernel", folder,
                                lambda cfg=cfg: kernel_sampling.model(cfg)) for cfg in configs]


def _model_need(sig: str, item: str, folder: Path, make: Callable[[], Any]) -> sweep.Need:
    """A sweep need whose ONNX file ``make()`` builds unless the cache has it."""
    return sweep.Need(sig, item, SPACE, None, folder / sweep._file_name(sig),
                      lambda path: path if path.is_file() else save(make(), path))


def measure(registry: Registry, device: DeviceConfig, store: Store, configs: list[dict[str, Any]],
            quiet: bool = False, seed: int = 0) -> tuple[int, float]:
    """Measure what the store lacks of ``configs`` on the device; returns (measured, device seconds)."""
    return _measure_needs(registry, device, store, kernel_needs(configs, registry.workspace), quiet, seed,
                          sessions=SESSIONS)


def _measure_needs(registry: Registry, device: DeviceConfig, store: Store, needs: list[sweep.Need],
                   quiet: bool, seed: int, sessions: int | None = None, times: int = 1) -> tuple[int, float]:
    started = time.monotonic()
    reports = sweep.run(registry, [device], store, needs, uuid.uuid4().hex, "kernels", SPACE,
                        sessions=sessions, per_node=True, quiet=quiet, seed=seed, times=times)
    report = reports[0]
    if report.error:  # the fleet has printed it: keep its exit code, do not print it again
        error = (BadInput if report.exit_code == BadInput.exit_code else DeviceFailure)(report.error)
        error.reported = True
        raise error
    return report.measured, time.monotonic() - started


def initial_configs(seed: int, scale: float = 1.0) -> list[dict[str, Any]]:
    """The first round's configurations: :data:`kernel_sampling.TYPES` samples per type (times ``scale``)."""
    rng = np.random.default_rng(seed)
    configs: list[dict[str, Any]] = []
    for kind, n in kernel_sampling.TYPES.items():
        configs += kernel_sampling.sample(kind, max(3, int(n * scale)), rng)
    return configs


def kernel_times(model: Any, kernels: list[Any], nodes: list[dict[str, Any]], less_us: float = 0.0
                 ) -> tuple[dict[int, float], list[dict[str, Any]], float]:
    """A network's profiled node times per kernel of its split: ``{kernel index: µs}`` (a node matched
    to the kernel whose source nodes or outputs carry its name, less the runtime's decorations: see
    :data:`RUNTIME_SUFFIX`), the layout-reorder nodes (named by the runtime, not the graph), and the
    µs of nodes matched to no kernel. Every node's time is taken less ``less_us`` (at least 0; the
    reorder nodes' ``dur_us`` too)."""
    by_name = {n.name: n for n in model.graph.node}
    owner: dict[str, int] = {}
    for i, kernel in enumerate(kernels):
        if kernel.type == "reorder":
            continue
        for name in kernel.nodes:
            owner[name] = i
            owner.update({out: i for out in (by_name[name].output if name in by_name else [])})
    times: dict[int, float] = {}
    reorders, unmatched = [], 0.0
    for node in nodes:
        dur = max(float(node["dur_us"]) - less_us, 0.0)
        if node["op_type"] in kernel_rules.REORDERS:
            reorders.append({**node, "dur_us": dur})
            continue
        name = node["name"]
        i = owner.get(name, owner.get(name.removesuffix("_nchwc"), owner.get(RUNTIME_SUFFIX.sub("", name))))
        if i is None:
            unmatched += dur
        else:
            times[i] = times.get(i, 0.0) + dur
    return times, reorders, unmatched


RUNTIME_SUFFIX = re.compile(r"(/[A-Za-z]+Fusion/?|_bn)?(_nchwc)?$")
"""What ONNX Runtime appends to the name of a node it rewrote: ``/QuickGeluFusion/`` to a node it fused
(``mul9/QuickGeluFusion/``), ``_bn`` to a lone BatchNormalization on a blocked tensor it turned into a convolution
(seen on the AVX2 host, ``FusionRules.bn_as_conv``), ``_nchwc`` to a node it moved to the blocked layout."""
MAX_UNMATCHED = 0.05
"""A context network whose profile has more than this share of its time in nodes matched to no kernel
of its split is not used (its split and the runtime disagree)."""


def _reorder_row(node: dict[str, Any], us: float, net_weights: float, alone: bool) -> tuple[dict, Any, float]:
    shape = node["input_shapes"][0] if node["input_shapes"] else []
    kernel = kernel_model.reorder_kernel(int(np.prod(shape)) if shape else 0, shape[1] if len(shape) > 1 else 1,
                                         node["op_type"] == "ReorderInput")
    kernel.features.update(alone=int(alone), net_weights=net_weights)
    return {"reorder": shape, "to_nchwc": kernel.features["to_nchwc"]}, kernel, max(us, FLOOR_US)


def profiler_overhead(nets: list[tuple[Any, list[dict[str, Any]]]], call_ms: float, normaliser: speed.Normaliser
                      ) -> float:
    """µs the profiler adds to each node it times (which a network run does not pay): the per-node
    coefficient of ``Σ profiled − (measured − call) ≈ a·nodes + b·Σ profiled + c`` over the profiled
    networks (0 with fewer than 8). About 1.1 µs a node on ``local``: sharing a network's time out in
    proportion to its raw profile gave its tiny kernels about twice their time."""
    if len(nets) < 8:
        return 0.0
    rows = []
    for m, nodes in nets:
        profiled = sum(max(float(n["dur_us"]), 0.0) for n in nodes) * normaliser.profile_scale(m)
        rows.append((len(nodes), profiled, profiled - (normaliser.latency_ms(m) - call_ms) * 1000.0))
    n, profiled, excess = np.asarray(rows, dtype=np.float64).T
    coef = np.linalg.lstsq(np.stack([n, profiled, np.ones_like(n)], axis=1), excess, rcond=None)[0]
    return float(max(coef[0], 0.0))


def _network_graph(m: Any) -> Any:
    """A stored context network's graph, read from its ONNX file without its weights (rebuilt from its
    signature when the file is gone)."""
    from hwnas.predict import read_graph

    path = Path(m.source or "")
    return read_graph(path) if path.is_file() else kernel_networks.model(kernel_networks.parse_signature(m.signature))


def training_rows(store: Store, device: DeviceConfig, rules: FusionRules, networks: bool = True
                  ) -> tuple[dict[str, list], dict[str, float]]:
    """Per kernel type, (config, kernel, µs) rows from the stored samples (and, with ``networks``, the
    kernels inside the stored context networks of :mod:`hwnas.kernel_networks`), and the calibration
    from a sum of kernel times to measured latency (:func:`cost_models.kernel_model.fit_calibration`,
    from the samples).

    A sample's or network's time is its **measured** latency (the protocol's interleaved,
    speed-normalised rounds) less one call's fixed cost: the empty model's latency outside its one node
    (a network pays that per call, but a node's own dispatch per kernel). Its profile only shares that
    time out: each node gets the part its profiled duration is of the profile's total. A sample's kernel
    row gets the share of its nodes other than layout reorders; a network's kernels the shares of the
    nodes matched to them (:func:`kernel_times`), each node's time first less the profiler's own cost per
    node (:func:`profiler_overhead`); reorder rows get the shares of the ReorderInput/ReorderOutput nodes.
    A single profile is far noisier than the measurement, and its node times carry the profiler's own
    cost, which a network run does not pay. Every kernel carries its context
    (:data:`cost_models.kernel_model.CONTEXT`): alone in a sample, or in a network with that network's
    convolution weights."""
    rows: dict[str, list] = {}
    normaliser = speed.Normaliser(store)
    samples, nets, call_ms = [], [], None
    for m in store.select(device.name, device.backend, space=SPACE):
        if m.id is None:
            continue
        nodes = store.node_profile(m.id)
        if m.item == "block":
            inside = sum(float(n["dur_us"]) for n in nodes) * normaliser.profile_scale(m) / 1000.0
            call_ms = normaliser.latency_ms(m) - inside
        elif nodes and all(n.get("input_shapes") is not None for n in nodes):
            (samples if m.item == "kernel" else nets).append((m, nodes))
    if not samples or call_ms is None:
        raise BadInput(f"device {device.name!r} has no profiled kernel samples (and empty model); run the sampling "
                       "step first")
    timed, outputs, measured = [], [], []
    for m, nodes in samples:
        cfg = kernel_sampling.parse_signature(m.signature)
        model = kernel_sampling.model(cfg)
        latency = normaliser.latency_ms(m)
        profiled = sum(max(float(n["dur_us"]), 0.0) for n in nodes)
        main = [k for k in split(model, rules, image_input=False) if k.type != "reorder"]
        if profiled <= 0 or len(main) != 1:
            continue
        per_us = max(latency - call_ms, 0.0) * 1000.0 / profiled  # measured µs per profiled µs
        own = kernel_model.conv_weights(main)
        kernel_us = 0.0
        for node in nodes:
            share = max(float(node["dur_us"]), 0.0) * per_us
            if node["op_type"] not in kernel_rules.REORDERS:
                kernel_us += share
            elif node["input_shapes"]:
                rows.setdefault("reorder", []).append(_reorder_row(node, share, own, alone=True))
        main[0].features.update(alone=1, net_weights=own)
        rows.setdefault(main[0].type, []).append((cfg, main[0], max(kernel_us, FLOOR_US)))
        timed.append(profiled * per_us / 1000.0)
        outputs.append(kernel_model.output_numel(model))
        measured.append(latency)
    overhead_us = profiler_overhead(nets, call_ms, normaliser) if networks else 0.0
    for m, nodes in nets if networks else []:
        model = _network_graph(m)
        kernels = split(model, rules)
        times, reorders, unmatched = kernel_times(model, kernels, nodes, overhead_us / normaliser.profile_scale(m))
        profiled = sum(times.values()) + sum(max(float(n["dur_us"]), 0.0) for n in reorders) + unmatched
        if profiled <= 0 or unmatched > MAX_UNMATCHED * profiled:
            continue
        per_us = max(normaliser.latency_ms(m) - call_ms, 0.0) * 1000.0 / profiled
        weights = kernel_model.conv_weights(kernels)
        for i, us in times.items():
            kernel = kernels[i]
            if kernel.type == "other":
                continue
            kernel.features.update(alone=0, net_weights=weights)
            rows.setdefault(kernel.type, []).append(({"network": m.model_sha256, "kernel": i}, kernel,
                                                     max(us * per_us, FLOOR_US)))
        for node in reorders:
            if node["input_shapes"]:
                rows.setdefault("reorder", []).append(_reorder_row(node, max(float(node["dur_us"]), 0.0) * per_us,
                                                                   weights, alone=False))
    return rows, {**kernel_model.fit_calibration(timed, outputs, measured), "profiler_overhead_us": overhead_us}


def _worst(predictor: kernel_model.KernelPredictor, rows: dict[str, list], top_types: int
           ) -> list[tuple[str, list[dict[str, Any]]]]:
    """The kernel types with the worst validation RMSPE, each with its worst-predicted configurations."""
    sampled = [(t, r) for t, r in predictor.regressors.items() if t in kernel_sampling.TYPES]
    ranked = sorted(sampled, key=lambda kv: -kv[1].cv_["rmspe"])[:top_types]
    out = []
    for kind, reg in ranked:
        y = np.log([t for *_r, t in rows[kind]])
        err = np.abs(reg.oof_ - y)
        worst = [rows[kind][i][0] for i in np.argsort(err)[::-1] if "type" in rows[kind][i][0]]
        out.append((kind, worst[:20]))  # samples only: a network's kernel is no configuration to refine
    return out


def mean_rmspe(predictor: kernel_model.KernelPredictor, kinds: list[str] | None = None) -> float:
    """Mean validation RMSPE over kernel types (all, or ``kinds``)."""
    regs = [r for t, r in predictor.regressors.items() if kinds is None or t in kinds]
    return float(np.mean([r.cv_["rmspe"] for r in regs])) if regs else float("nan")


def build(registry: Registry, device: DeviceConfig, store: Store, rounds: int = 3, scale: float = 1.0,
          per_round: int = 60, seed: int = 0, quiet: bool = False, context_nets: int = CONTEXT_NETS,
          log: Callable[[str], None] = lambda _m: None) -> tuple[kernel_model.KernelPredictor, FitReport]:
    """Learn rules, measure the first samples, fit, then refine where validation error is worst; save."""
    from hwnas.predict import predictor_path

    report = FitReport(device.name)
    rules, path = ensure_rules(registry, device, store, log)
    report.rules_path = str(path)
    configs = initial_configs(seed, scale)
    log(f"round 0: {len(configs)} kernel samples from the prior (sessions {SESSIONS}, progress bar shows the ETA)")
    measured, secs = measure(registry, device, store, configs, quiet, seed)
    if context_nets:
        log(f"round 0: {context_nets} context networks (kernels as a network runs them)")
        more, more_secs = _measure_needs(registry, device, store, context_needs(registry.workspace, context_nets,
                                                                                seed), quiet, seed)
        measured, secs = measured + more, secs + more_secs
    report.measured += measured
    report.device_seconds += secs
    if device.measurement.normalise:
        _check, measured, secs = speed_check(registry, device, store, configs, context_nets, quiet, seed, log)
        report.measured += measured
        report.device_seconds += secs
    rows, calibration = training_rows(store, device, rules, networks=context_nets > 0)
    predictor = kernel_model.fit(rules, rows, calibration, device.name, device.backend, seed)
    report.rounds.append({"round": 0, "samples": len(configs), "context_networks": context_nets,
                          "measured": measured, "device_s": secs,
                          "cv": {t: r.cv_ for t, r in predictor.regressors.items()}})
    log(f"round 0: mean validation RMSPE {mean_rmspe(predictor):.1%} over {len(predictor.regressors)} kernel types")
    rng = np.random.default_rng(seed + 1)
    for r in range(1, rounds + 1):
        worst = _worst(predictor, rows, top_types=4)
        kinds = [k for k, _ in worst]
        before = mean_rmspe(predictor, kinds)
        more = []
        for kind, bad in worst:
            near = kernel_sampling.refine(bad, per_round // 2, rng) if bad else []
            more += near + kernel_sampling.sample(kind, per_round // 2, rng)
        configs += more
        log(f"round {r}/{rounds}: {len(more)} more samples of {', '.join(kinds)} (validation RMSPE {before:.1%})")
        measured, secs = measure(registry, device, store, configs, quiet, seed + r)
        report.measured += measured
        report.device_seconds += secs
        rows, calibration = training_rows(store, device, rules, networks=context_nets > 0)
        predictor = kernel_model.fit(rules, rows, calibration, device.name, device.backend, seed)
        after = mean_rmspe(predictor, kinds)
        report.rounds.append({"round": r, "types": kinds, "samples": len(more), "measured": measured, "device_s": secs,
                              "rmspe_before": before, "rmspe_after": after,
                              "cv": {t: g.cv_ for t, g in predictor.regressors.items()}})
        log(f"round {r}/{rounds}: validation RMSPE of those types {before:.1%} -> {after:.1%}")
        if not before - after > MIN_GAIN * before:
            log(f"round {r}: improved by less than {MIN_GAIN:.0%}; stopping")
            break
    log(f"calibration: {CALIBRATION_NETS} networks of the {CALIBRATION_SPACE} search space")
    measured, secs = _measure_needs(registry, device, store, calibration_needs(registry.workspace, CALIBRATION_NETS,
                                                                               seed), quiet, seed)
    report.measured += measured
    report.device_seconds += secs
    calibration = network_calibration(predictor, store, device, registry.workspace)
    if calibration is not None:
        calibration["context_check"] = check = calibration_check(predictor, calibration, store, device)
        if check["adopted"]:
            predictor.set_network_calibration(calibration)
        else:
            predictor.manifest["network_calibration_rejected"] = calibration
            log(f"calibration: the network calibration predicts the context networks worse (RMSPE "
                f"{check['network_rmspe']:.1%} against {check['sample_rmspe']:.1%}); kept the samples' calibration")
    predictor.manifest["normaliser"] = speed.Normaliser(store).check(device.name)
    predictor.manifest["build"] = {"rounds": len(report.rounds),
                                   "kernels_measured_total": sum(len(v) for v in rows.values()),
                                   "device_seconds_this_run": report.device_seconds}
    report.model_path = str(kernel_model.save(predictor, predictor_path(registry.workspace, device.name,
                                                                       device.backend)))
    return predictor, report


def speed_check(registry: Registry, device: DeviceConfig, store: Store, configs: list[dict[str, Any]],
                context_nets: int, quiet: bool, seed: int, log: Callable[[str], None] = lambda _m: None
                ) -> tuple[dict[str, Any] | None, int, float]:
    """The device's speed check (:func:`hwnas.speed.compare`): :data:`SPEED_CHECK_SAMPLES` of the first
    round's kernel samples and :data:`SPEED_CHECK_NETS` of its context networks, spread over the round,
    are measured a second time, and the normalisation under which the two measurements agree best is
    fixed for the device. Returns (the check, models measured, device seconds); a device that has a
    check keeps it and measures nothing (resumable: a re-run re-measures only what has one measurement)."""
    normaliser = speed.Normaliser(store)
    if normaliser.check(device.name):
        return normaliser.check(device.name), 0, 0.0
    samples = _spread(kernel_needs(configs, registry.workspace), SPEED_CHECK_SAMPLES)
    nets = _spread(context_needs(registry.workspace, context_nets, seed), SPEED_CHECK_NETS) if context_nets else []
    log(f"speed check: {len(samples)} kernel samples and {len(nets)} context networks measured once more")
    measured, secs = _measure_needs(registry, device, store, samples, quiet, seed, sessions=SESSIONS, times=2)
    if nets:
        more, more_secs = _measure_needs(registry, device, store, nets, quiet, seed, times=2)
        measured, secs = measured + more, secs + more_secs
    histories = [store.history(device.name, device.backend, n.signature) for n in samples + nets]
    check = speed.compare([(h[0], h[1]) for h in histories if len(h) >= 2], normaliser)
    if check["method"] is None:
        log(f"speed check: {check['pairs']} re-measured models are too few to choose a normalisation")
        return check, measured, secs
    log("speed check: re-measured within ±10% " + ", ".join(
        f"{m} {s['within_10']:.0%}" for m, s in check["scores"].items()) + f"; normalising by {check['method']}")
    return normaliser.fix_method(device.name, check), measured, secs


def _spread(needs: list[sweep.Need], num: int) -> list[sweep.Need]:
    """``num`` of ``needs`` evenly spaced over the list (a sweep measures it in a seeded random order, so
    they are spread over the sweep's time too)."""
    if num <= 0:
        return []
    return needs[::max(1, len(needs) // num)][:num]


def context_needs(workspace: Path, num: int, seed: int) -> list[sweep.Need]:
    """Sweep needs of ``num`` context networks (:mod:`hwnas.kernel_networks`), profiled node by node."""
    folder = workspace / "onnx" / SPACE / "networks"
    return [_model_need(kernel_networks.signature(cfg), "network", folder, lambda cfg=cfg: kernel_networks.model(cfg))
            for cfg in kernel_networks.sample_many(num, seed)]


CALIBRATION_SPACE = "mbv3"
CALIBRATION_RESOLUTIONS = (128, 160, 192, 224)


def calibration_needs(workspace: Path, num: int, seed: int) -> list[sweep.Need]:
    """Whole networks of the Once-for-All MobileNetV3 space (hwnas's own search space, not any evaluation
    model) whose measured latencies calibrate the sum of kernel predictions."""
    from hwnas import spaces

    space = spaces.get(CALIBRATION_SPACE)
    archs = sweep.sample_archs(space, num, seed, CALIBRATION_RESOLUTIONS)
    return sweep.network_needs(space, archs, workspace)


def network_calibration(predictor: kernel_model.KernelPredictor, store: Store, device: DeviceConfig,
                        workspace: Path) -> dict[str, float] | None:
    """Fit ``measured ≈ base + scale·Σ kernels + per_mweight·conv weights + per_kernel·kernels`` on the stored
    calibration networks (None when fewer than 8 are stored). In a network each convolution reads its
    weights cold, where a kernel sample measured alone finds them in cache: the weight term carries that."""
    from hwnas import spaces
    from hwnas.predict import read_graph

    space = spaces.get(CALIBRATION_SPACE)
    raw, weights, counts, measured = [], [], [], []
    normaliser = speed.Normaliser(store)
    folder = workspace / "onnx" / space.name / "networks"
    for m in store.select(device.name, device.backend, item="network", space=CALIBRATION_SPACE):
        path = folder / sweep._file_name(m.arch)
        if not path.is_file():
            continue
        model = read_graph(path)
        kernels = predictor.kernels(model)
        p = predictor.predict_kernels(kernels, kernel_model.output_numel(model))
        raw.append(sum(k["predicted_us"] for k in p.kernels) / 1000.0)
        weights.append(kernel_model.conv_weights(kernels) / 1e6)
        counts.append(len(kernels))
        measured.append(normaliser.latency_ms(m))
    if len(measured) < 8:
        return None
    return kernel_model.fit_network_calibration(raw, weights, counts, measured)


def calibration_check(predictor: kernel_model.KernelPredictor, calibration: dict[str, float], store: Store,
                      device: DeviceConfig) -> dict[str, Any]:
    """Whether the whole-network ``calibration`` predicts the stored context networks (every block kind,
    0.1-20 ms on ``local``, where the calibration networks are one search space's) at least as well as
    the kernel samples' calibration: their RMSPE under each and ``adopted``. Fitted on networks of one
    size range, its per-kernel and fixed terms can extrapolate badly: on the AMD EPYC host (stop 19) it
    put 0.6 ms models at 3x their latency (context RMSPE 56% against 11%). Adopted when there are no
    context networks to check on."""
    normaliser = speed.Normaliser(store)
    measured, sums, counts, weights, outputs = [], [], [], [], []
    for m in store.select(device.name, device.backend, item="network", space=SPACE):
        model = _network_graph(m)
        kernels = predictor.kernels(model)
        outputs.append(kernel_model.output_numel(model))
        p = predictor.predict_kernels(kernels, outputs[-1])
        measured.append(normaliser.latency_ms(m))
        sums.append(sum(k["predicted_us"] for k in p.kernels) / 1000.0)
        counts.append(len(kernels))
        weights.append(kernel_model.conv_weights(kernels))
    if not measured:
        return {"networks": 0, "adopted": True}
    y, raw = np.asarray(measured), np.asarray(sums)
    network = kernel_model.network_calibrated_ms(calibration, raw, np.asarray(weights), np.asarray(counts))
    sample = predictor.base_ms + predictor.scale * raw + predictor.out_ms_per_melem * np.asarray(outputs) / 1e6
    net_rmspe, sample_rmspe = (float(np.sqrt(np.mean((p / y - 1) ** 2))) for p in (network, sample))
    return {"networks": len(y), "network_rmspe": net_rmspe, "sample_rmspe": sample_rmspe,
            "adopted": net_rmspe <= sample_rmspe}
