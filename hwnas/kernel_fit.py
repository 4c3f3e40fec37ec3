"""Build a device's any-ONNX kernel predictor: learn its fusion rules, sample and measure kernels, fit.

The steps of ``hwnas costmodel fit --device NAME --onnx-kernels``, each resumable:

1. **rules** — profile the fusion test graphs on the device (:mod:`hwnas.kernel_rules`);
   kept in ``<workspace>/kernels/<device>-<backend>-<runtime version>.rules.json``.
2. **sample + measure** — draw kernel configurations from the prior
   (:mod:`hwnas.kernel_sampling`) with a seeded Generator and measure each single-kernel
   model through the sweep machinery (interleaved sessions, drift checks, per-node
   profile with shapes, stored as it finishes; a re-run measures only what is missing).
   Every sweep also measures the empty model, whose latency is one call's fixed cost.
3. **fit** — per kernel type a regressor (:mod:`cost_models.kernel_model`) on
   log latency, cross-validated.
4. **refine** — more samples next to the configurations with the worst validation
   error, in the types whose error is worst, until a round no longer improves the
   error by :data:`MIN_GAIN` (or ``rounds`` are done).

Training target of a kernel: the measured latency of its model, less the empty model's
latency and less the layout reorders the device's profiler reports around it; the
reorders themselves are learned from those profiles.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cost_models import kernel_model
from cost_models.onnx_kernels import FusionRules, split
from hwnas import fleet, kernel_rules, kernel_sampling, sweep
from hwnas.config import DeviceConfig, Registry
from hwnas.errors import BadInput, DeviceFailure
from hwnas.kernel_graphs import save
from hwnas.measure import device_settings
from hwnas.store import Store
from lut import builders
from lut.signature import parse
from lut.table import BASELINE

SPACE = "kernels"
"""The store ``space`` of kernel samples."""
MIN_GAIN = 0.02
SESSIONS = 2
"""Sessions per kernel sample (many samples average each other's noise; networks use the device's default)."""


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
    """The device's fusion rules: loaded when learned before for this runtime version, else learned now."""
    if device.backend != "onnxruntime":
        raise BadInput(f"device {device.name!r}: kernel detection needs the onnxruntime backend "
                       f"(it runs {device.backend}); its profiler is what reports kernels")
    version = runtime_version(registry, device, store)
    path = kernel_rules.rules_path(registry.workspace, device.name, device.backend, version)
    if path.is_file():
        return kernel_rules.load_rules(path), path
    log(f"learning {device.name}'s fusion rules from test graphs")

    def work(dev: DeviceConfig, client) -> FusionRules:
        facts = client.facts
        meta = {"device": dev.name, "backend": dev.backend, "runtime_version": (facts.get("runtimes") or {}).get(
            dev.backend), "providers": list(dev.runtime.provider_names), "cpu": facts.get("cpu"),
            "agent": facts.get("agent")}
        return kernel_rules.learn(client, device_settings(dev), meta)

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
    for cfg in configs:
        sig = kernel_sampling.signature(cfg)
        needs.append(sweep.Need(sig, "kernel", SPACE, None, folder / sweep._file_name(sig),
                                lambda path, cfg=cfg: path if path.is_file() else save(kernel_sampling.model(cfg), path)))
    return needs


def measure(registry: Registry, device: DeviceConfig, store: Store, configs: list[dict[str, Any]],
            quiet: bool = False, seed: int = 0) -> tuple[int, float]:
    """Measure what the store lacks of ``configs`` on the device; returns (measured, device seconds)."""
    started = time.monotonic()
    reports = sweep.run(registry, [device], store, kernel_needs(configs, registry.workspace), uuid.uuid4().hex,
                        "kernels", SPACE, sessions=SESSIONS, per_node=True, quiet=quiet, seed=seed)
    report = reports[0]
    if report.error:
        raise DeviceFailure(f"device {device.name}: {report.error}")
    return report.measured, time.monotonic() - started


def initial_configs(seed: int, scale: float = 1.0) -> list[dict[str, Any]]:
    """The first round's configurations: :data:`kernel_sampling.TYPES` samples per type (times ``scale``)."""
    rng = np.random.default_rng(seed)
    configs: list[dict[str, Any]] = []
    for kind, n in kernel_sampling.TYPES.items():
        configs += kernel_sampling.sample(kind, max(3, int(n * scale)), rng)
    return configs


def training_rows(store: Store, device: DeviceConfig, rules: FusionRules) -> tuple[dict[str, list], float]:
    """Per kernel type, (config, kernel, target µs) rows from the stored samples; and the empty model's ms.

    Reorder rows come from the profiled ReorderInput/ReorderOutput nodes of every sample."""
    baseline = store.latest(device.name, device.backend, parse(BASELINE).key())
    if baseline is None:
        raise BadInput(f"device {device.name!r} has no measured empty model; run the sampling step first")
    base_ms = baseline.latency_ms
    rows: dict[str, list] = {}
    for m in store.select(device.name, device.backend, item="kernel", space=SPACE):
        cfg = kernel_sampling.parse_signature(m.signature)
        kernels = split(kernel_sampling.model(cfg), rules, image_input=False)
        main = [k for k in kernels if k.type != "reorder"]
        if len(main) != 1 or m.id is None:
            continue
        nodes = store.node_profile(m.id)
        reorder_us = 0.0
        for node in nodes:
            if node["op_type"] in kernel_rules.REORDERS and node.get("input_shapes"):
                shape = node["input_shapes"][0]
                numel = int(np.prod(shape)) if shape else 0
                reorder = kernel_model.reorder_kernel(numel, shape[1] if len(shape) > 1 else 1,
                                                     node["op_type"] == "ReorderInput")
                rows.setdefault("reorder", []).append((cfg, reorder, float(node["dur_us"])))
                reorder_us += float(node["dur_us"])
        profiled_main = sum(float(n["dur_us"]) for n in nodes if n["op_type"] not in kernel_rules.REORDERS)
        target = (m.latency_ms - base_ms) * 1000.0 - reorder_us
        target = max(target, 0.5 * profiled_main, 0.1)
        rows.setdefault(main[0].type, []).append((cfg, main[0], target))
    return rows, base_ms


def _worst(predictor: kernel_model.KernelPredictor, rows: dict[str, list], top_types: int
           ) -> list[tuple[str, list[dict[str, Any]]]]:
    """The kernel types with the worst validation RMSPE, each with its worst-predicted configurations."""
    sampled = [(t, r) for t, r in predictor.regressors.items() if t in kernel_sampling.TYPES]
    ranked = sorted(sampled, key=lambda kv: -kv[1].cv_["rmspe"])[:top_types]
    out = []
    for kind, reg in ranked:
        y = np.log([t for *_r, t in rows[kind]])
        err = np.abs(reg.oof_ - y)
        out.append((kind, [rows[kind][i][0] for i in np.argsort(err)[-20:]]))
    return out


def mean_rmspe(predictor: kernel_model.KernelPredictor, kinds: list[str] | None = None) -> float:
    """Mean validation RMSPE over kernel types (all, or ``kinds``)."""
    regs = [r for t, r in predictor.regressors.items() if kinds is None or t in kinds]
    return float(np.mean([r.cv_["rmspe"] for r in regs])) if regs else float("nan")


def build(registry: Registry, device: DeviceConfig, store: Store, rounds: int = 3, scale: float = 1.0,
          per_round: int = 60, seed: int = 0, quiet: bool = False,
          log: Callable[[str], None] = lambda _m: None) -> tuple[kernel_model.KernelPredictor, FitReport]:
    """Learn rules, measure the first samples, fit, then refine where validation error is worst; save."""
    from hwnas.predict import predictor_path

    report = FitReport(device.name)
    rules, path = ensure_rules(registry, device, store, log)
    report.rules_path = str(path)
    configs = initial_configs(seed, scale)
    log(f"round 0: {len(configs)} kernel samples from the prior (sessions {SESSIONS}, progress bar shows the ETA)")
    measured, secs = measure(registry, device, store, configs, quiet, seed)
    report.measured += measured
    report.device_seconds += secs
    rows, base_ms = training_rows(store, device, rules)
    predictor = kernel_model.fit(rules, rows, base_ms, device.name, device.backend, seed)
    report.rounds.append({"round": 0, "samples": len(configs), "measured": measured, "device_s": secs,
                          "cv": {t: r.cv_ for t, r in predictor.regressors.items()}})
    log(f"round 0: mean validation RMSPE {mean_rmspe(predictor):.1%} over {len(predictor.regressors)} kernel types")
    rng = np.random.default_rng(seed + 1)
    for r in range(1, rounds + 1):
        worst = _worst(predictor, rows, top_types=4)
        kinds = [k for k, _ in worst]
        before = mean_rmspe(predictor, kinds)
        more = []
        for kind, bad in worst:
            more += kernel_sampling.refine(bad, per_round // 2, rng) + kernel_sampling.sample(kind, per_round // 2, rng)
        configs += more
        log(f"round {r}/{rounds}: {len(more)} more samples of {', '.join(kinds)} (validation RMSPE {before:.1%})")
        measured, secs = measure(registry, device, store, configs, quiet, seed + r)
        report.measured += measured
        report.device_seconds += secs
        rows, base_ms = training_rows(store, device, rules)
        predictor = kernel_model.fit(rules, rows, base_ms, device.name, device.backend, seed)
        after = mean_rmspe(predictor, kinds)
        report.rounds.append({"round": r, "types": kinds, "samples": len(more), "measured": measured, "device_s": secs,
                              "rmspe_before": before, "rmspe_after": after,
                              "cv": {t: g.cv_ for t, g in predictor.regressors.items()}})
        log(f"round {r}/{rounds}: validation RMSPE of those types {before:.1%} -> {after:.1%}")
        if not before - after > MIN_GAIN * before:
            log(f"round {r}: improved by less than {MIN_GAIN:.0%}; stopping")
            break
    predictor.manifest["build"] = {"rounds": len(report.rounds), "kernels_measured_total": sum(len(v) for v in rows.values()),
                                   "device_seconds_this_run": report.device_seconds}
    report.model_path = str(kernel_model.save(predictor, predictor_path(registry.workspace, device.name,
                                                                       device.backend)))
    return predictor, report
