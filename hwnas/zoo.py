"""The per-device model zoo: export (search, pick by measured latency, write models and cards) and load.

``hwnas zoo export`` (:func:`export`) runs or resumes the search with hardware in the
loop (:func:`hwnas.search.loop.search_with_hardware`, state in ``DIR/.search``), then for
each device and latency budget picks the most accurate architecture of the search's
archive whose MEASURED latency on that device is within the budget. Candidates are tried
in order of accuracy among those the device's cost model predicts could fit
(``predicted - std <= budget``); a candidate's latency is read from the measurement
store (the search's finalists are there already), and one the store lacks is measured
with the normal protocol (:func:`hwnas.refine.measure_archs`: fleet, sessions, store) —
the zoo never times anything itself. A budget no candidate meets within
``max_measured`` measurements is "unmet", with the fastest measured candidate. When a
chosen model's prediction misses its measurement by more than 10%, the device's cost model
is refitted on every stored network (the candidates measured here included) and saved, and
the cards report the refitted prediction (hardware in the loop, as the search does).

What was measured is the architecture's network graph (:meth:`Space.onnx_model`, the
graph the network sweep and the cost model know); ``model.onnx`` is the same graph
built by the same builder with the supernet's weights instead of seeded ones, so its
latency is the same (the zoo test re-measures every exported file to show it).

Layout of ``DIR``::

    index.json                 every device x budget: chosen model or unmet (+ fastest candidate)
    README.md                  a model-card table per device
    <device>.png               candidates, front, chosen models, budgets
    <device>/<name>/model.onnx the model (batch 1)
    <device>/<name>/card.json  what it is, how it was measured, how to feed it
    .search/                   the resumable search state

Names follow Once-for-All: ``<device>_lat@<budget>ms_top1@<accuracy>``. Every file is
written atomically and a model folder appears complete or not at all (built under a
``.partial-`` name, then renamed), so an interrupted export leaves no half-written
model and a re-run resumes: the search from its state, measurements from the store,
models whose card names the same architecture are kept.

:func:`load` reads a zoo back (JSON only): :meth:`Zoo.pick` gives the most accurate
model of a device within a budget, with its ONNX path and card.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from hwnas import costmodel_api as api
from hwnas import refine, spaces, sweep
from hwnas.config import DeviceConfig, Registry
from hwnas.errors import BadInput
from hwnas.search.engine import check_budgets
from hwnas.spaces import Space, digits
from hwnas.store import Measurement, Store, utc_now
from lut.atomic import atomic_path, fsync_dir, write_text_atomic

ZOO_FORMAT = 1
KIND = "hwnas-zoo"
INDEX, README, CARD, MODEL, STATE_DIR = "index.json", "README.md", "card.json", "model.onnx", ".search"
ONNX_TOLERANCE = 1e-4
"""Largest absolute difference allowed between ONNX Runtime's and PyTorch's logits."""
MAX_MEASURED = 8
"""Candidates measured per device and budget before the budget is reported unmet."""
MEASURE_BATCH = 3
REFIT_TOLERANCE = 0.10
"""A chosen model's prediction further than this from its measurement refits the cost model."""


# ----------------------------------------------------------------------------------------- checks

def check_out(out: str | Path) -> Path:
    """``out`` as a folder that can be written and holds no zoo of another format (BadInput otherwise)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BadInput(f"--out {out}: cannot be written ({exc.strerror or exc})") from None
    index = out / INDEX
    if index.exists():
        doc = _read_json(index)
        if not isinstance(doc, dict) or doc.get("kind") != KIND or doc.get("format") != ZOO_FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else None
            raise BadInput(f"{index}: a zoo folder of format {found!r} made by an incompatible version "
                           f"(this hwnas writes format {ZOO_FORMAT}); choose a new --out")
    return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: not readable JSON ({exc})") from None


# ----------------------------------------------------------------------------------------- names

def model_name(device: str, budget_ms: float, accuracy: float) -> str:
    """The OFA-style name ``<device>_lat@<budget>ms_top1@<accuracy>``."""
    return f"{device}_lat@{budget_ms:g}ms_top1@{accuracy:.1f}"


# ----------------------------------------------------------------------------------------- weights

class Weights:
    """What a zoo model's weights are: the supernet's (``has_weights``) or seeded random ones."""

    def __init__(self, accuracy: Any, space: Space) -> None:
        self.space = space
        self.checkpoint = getattr(accuracy, "checkpoint", None) if getattr(accuracy, "has_weights", False) else None

    @property
    def trained(self) -> bool:
        """True when the models carry the supernet's trained weights."""
        return self.checkpoint is not None

    def model(self, arch: str) -> tuple[onnx.ModelProto, dict[str, Any]]:
        """The ONNX model of ``arch`` and its check report (ORT vs PyTorch, held-out top-1 by ORT)."""
        if not self.trained:
            return self.space.onnx_model(arch), {"weights": "untrained: seeded random weights (no weights in the "
                                                            "accuracy source)"}
        import torch

        from hwnas.supernet import model as sn
        from hwnas.supernet import train

        ckpt, a = self.checkpoint, digits.parse(arch)
        with torch.no_grad():
            train.prepare(ckpt.net, ckpt.split, a)
            module = sn.extract(ckpt.net, a)
            x = train.inputs(ckpt.split, ckpt.split.held_out, a.resolution)
            reference = module(x).numpy()
            proto = self.space.onnx_model(arch, sn.folded(ckpt.net, a))
        logits = run_onnx(proto.SerializeToString(), x.numpy())
        diff = float(np.abs(logits - reference).max())
        if diff > ONNX_TOLERANCE:
            raise RuntimeError(f"ONNX export of {arch} differs from PyTorch by {diff:.2e} > {ONNX_TOLERANCE}")
        labels = ckpt.split.labels[ckpt.split.held_out]
        return proto, {"weights": "trained: the supernet's weights (BatchNorm recalibrated for this subnet on "
                                  "training digits, then folded into the convolutions)",
                       "onnx_vs_pytorch_max_abs_diff": diff, "tolerance": ONNX_TOLERANCE,
                       "checked_on": f"{len(labels)} held-out digits",
                       "top1_onnxruntime": 100.0 * float((logits.argmax(1) == labels).mean())}


def run_onnx(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """Logits of a batch-1 ONNX model (CPU provider) on each row of ``x``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def count_macs(model: onnx.ModelProto) -> tuple[int, int]:
    """(multiply-accumulates, parameters) of a graph of Conv / Gemm nodes (shapes inferred)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}
    inits = {t.name: tuple(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = inits[node.input[1]]
            macs += int(np.prod(shapes[node.output[0]])) * int(np.prod(w[1:]))
        elif node.op_type == "Gemm":
            macs += int(np.prod(inits[node.input[1]]))
    return macs, int(sum(np.prod(d) for d in inits.values()))


# ----------------------------------------------------------------------------------------- picking

@dataclass
class Pick:
    """The outcome for one device and budget."""

    budget_ms: float
    arch: str | None
    accuracy: float | None = None
    measurement: Measurement | None = None
    predicted_ms: float | None = None
    predicted_std: float | None = None
    tried: list[dict[str, Any]] = field(default_factory=list)   # every candidate measured or read, in order
    fastest: dict[str, Any] | None = None


class DeviceCandidates:
    """The archive on one device: accuracies, the cost model's predictions, stored measurements."""

    def __init__(self, registry: Registry, store: Store, device: DeviceConfig, space: Space,
                 archive: dict[str, float], sessions: int | None, seed: int, quiet: bool) -> None:
        self.registry, self.store, self.device, self.space = registry, store, device, space
        self.sessions, self.seed, self.quiet = sessions, seed, quiet
        self.archs = list(archive)
        self.accuracy = np.array([archive[a] for a in self.archs], dtype=float)
        self.exit_code = 0
        self.refitted = False
        self._load_cost_model()

    def _load_cost_model(self) -> None:
        path = api.model_path(self.registry.workspace, self.device.name, self.device.backend, self.space.name)
        self.cost_model = api.load(path, self.space.name, self.device.name, self.device.backend)
        self.predicted, self.std = self.cost_model.predict(self.archs, return_std=True)

    def refine(self, picks: Sequence[Pick], tolerance: float = REFIT_TOLERANCE) -> None:
        """Hardware in the loop for the picks: when a chosen model's prediction misses its measurement by
        more than ``tolerance``, refit the device's cost model on every stored network (the candidates
        measured here included), save it, and re-predict the picks with it."""
        chosen = [p for p in picks if p.measurement is not None]
        if not any(abs(p.predicted_ms - p.measurement.latency_ms) > tolerance * p.measurement.latency_ms
                   for p in chosen):
            return
        refine.fit_and_save(self.registry, self.device, self.store, self.space, seed=self.seed, quiet=self.quiet)
        self._load_cost_model()
        self.refitted = True
        for p in chosen:
            i = self.archs.index(p.arch)
            p.predicted_ms, p.predicted_std = float(self.predicted[i]), float(self.std[i])

    def stored(self, arch: str) -> Measurement | None:
        """The store's latest measurement of the architecture's network on this device."""
        return self.store.latest(self.device.name, self.device.backend, sweep.network_signature(self.space.name, arch))

    def measure(self, archs: Sequence[str]) -> None:
        """Measure the networks the store lacks (normal protocol, stored)."""
        missing = [a for a in archs if self.stored(a) is None]
        if missing:
            got = refine.measure_archs(self.registry, self.device, self.store, self.space, missing, self.sessions,
                                       self.seed, self.quiet)
            self.exit_code = max(self.exit_code, got.exit_code)

    def pick(self, budget: float, max_measured: int = MAX_MEASURED) -> Pick:
        """The most accurate candidate whose measured latency is within ``budget`` (see the module docstring)."""
        fits = np.flatnonzero(self.predicted - self.std <= budget)
        order = sorted(fits, key=lambda i: (-self.accuracy[i], self.predicted[i]))
        out, measured = Pick(budget, None), 0
        for pos, i in enumerate(order):
            arch = self.archs[i]
            m = self.stored(arch)
            if m is None:
                if measured >= max_measured:
                    break
                batch = [self.archs[j] for j in order[pos:] if self.stored(self.archs[j]) is None]
                batch = batch[:min(MEASURE_BATCH, max_measured - measured)]
                self.measure(batch)
                measured += len(batch)
                m = self.stored(arch)
                if m is None:  # the device failed: nothing more can be measured
                    break
            out.tried.append({"arch": arch, "accuracy": float(self.accuracy[i]), "measured_ms": m.latency_ms,
                              "predicted_ms": float(self.predicted[i])})
            if m.latency_ms <= budget:
                out.arch, out.accuracy, out.measurement = arch, float(self.accuracy[i]), m
                out.predicted_ms, out.predicted_std = float(self.predicted[i]), float(self.std[i])
                return out
        out.fastest = self.fastest_measured()
        return out

    def fastest_measured(self) -> dict[str, Any] | None:
        """The fastest measured architecture of the archive (measuring the predicted fastest if none is)."""
        measured = [(m.latency_ms, a) for a in self.archs if (m := self.stored(a)) is not None]
        if not measured and self.archs:
            self.measure([self.archs[int(np.argmin(self.predicted))]])
            measured = [(m.latency_ms, a) for a in self.archs if (m := self.stored(a)) is not None]
        if not measured:
            return None
        ms, arch = min(measured)
        i = self.archs.index(arch)
        return {"arch": arch, "accuracy": float(self.accuracy[i]), "measured_ms": ms,
                "predicted_ms": float(self.predicted[i])}

    def measured_points(self) -> list[tuple[float, float]]:
        """(measured ms, accuracy) of every archive architecture the store has measured."""
        return [(m.latency_ms, float(self.accuracy[i])) for i, a in enumerate(self.archs)
                if (m := self.stored(a)) is not None]


# ----------------------------------------------------------------------------------------- cards

def feeding(space: Space, arch: str, checkpoint: Any) -> dict[str, Any]:
    """How to feed the model (timm ``pretrained_cfg`` style): input, preprocessing, labels, held-out digits."""
    proto_input = space.blocks(arch)[0].input
    spec: dict[str, Any] = {"input_name": "input_0", "input_shape": [1, proto_input[2], proto_input[0],
                                                                     proto_input[1]],
                            "input_dtype": "float32", "layout": "NCHW", "batch": 1,
                            "output": "logits (1, classes); the class is the argmax"}
    if space.dataset != digits.DigitsSpace.dataset:
        return spec
    from hwnas.supernet import data

    res = proto_input[0]
    d = checkpoint.manifest["data"] if checkpoint is not None else None
    split = None if d else data.split(0)
    spec.update({
        "data": "sklearn.datasets.load_digits() images (8x8, values 0..16)",
        "preprocessing": {"scale": f"x = image / {data.MAX_VALUE:g}",
                          "resize": f"nearest neighbour by the integer factor {res // data.DIGIT_SIZE} "
                                    f"(np.repeat(np.repeat(x, {res // data.DIGIT_SIZE}, 0), "
                                    f"{res // data.DIGIT_SIZE}, 1)) to {res}x{res}",
                          "normalize": "(x - mean) / std",
                          "mean": d["mean"] if d else split.mean, "std": d["std"] if d else split.std},
        "labels": list(range(10)), "label_meaning": "logit i is the digit i",
        "held_out_indices": d["held_out_indices"] if d else split.held_out.tolist(),
        "held_out_note": "indices into load_digits(); training never saw these digits",
    })
    return spec


def _measured(m: Measurement) -> dict[str, Any]:
    stats = m.stats or {}
    return {"median_ms": m.latency_ms, "session_spread": m.session_spread, "sessions": m.sessions,
            "p10_ms": stats.get("p10_ms"), "p90_ms": stats.get("p90_ms"), "cov": stats.get("cov"),
            "runtime": m.backend, "runtime_version": m.runtime_version, "providers": m.providers,
            "threads": m.threads, "affinity": m.affinity, "agent_version": m.agent_version,
            "device_kind": m.kind, "device_facts": m.facts, "store_measurement_id": m.id,
            "store_signature": m.signature, "measured_utc": m.created_utc, "valid": m.valid,
            "warnings": m.warnings,
            "what_was_measured": "the architecture's network graph (Space.onnx_model: same builder and graph as "
                                 "model.onnx, seeded weights), timed on the device by the hwnas agent"}


def card(space: Space, device: DeviceConfig, pick: Pick, name: str, proto: onnx.ModelProto,
         check: dict[str, Any], weights: Weights, accuracy_source: str, details: dict[str, Any],
         cost_model: str, refitted: bool = False) -> dict[str, Any]:
    """The model card of one chosen model."""
    from hwnas.supernet.checkpoint import hwnas_version

    m = pick.measurement
    macs, params = count_macs(proto)
    blocks = space.blocks(pick.arch)
    accuracy = check.get("top1_onnxruntime", pick.accuracy)
    how = (f"top-1 (percent) on the held-out load_digits digits, computed with ONNX Runtime from this model.onnx "
           f"(the supernet's search score was {pick.accuracy:.2f})" if weights.trained else
           "the accuracy source's figure for this architecture; the weights in model.onnx are UNTRAINED "
           "(seeded random) and do not reach it")
    return {
        "zoo_format": ZOO_FORMAT, "name": name, "hwnas_version": hwnas_version(), "created_utc": utc_now(),
        "device": device.name, "budget_ms": pick.budget_ms,
        "architecture": {"space": space.name, "arch": pick.arch, "resolution": blocks[0].input[0],
                         "blocks": len(blocks), "params": params, "macs": macs,
                         "params_note": "parameters of model.onnx (BatchNorm folded)"},
        "weights": check["weights"],
        "latency": {"measured": _measured(m),
                    "predicted": {"ms": pick.predicted_ms, "std_ms": pick.predicted_std,
                                  "error": (pick.predicted_ms - m.latency_ms) / m.latency_ms,
                                  "error_note": "(predicted - measured) / measured", "cost_model": cost_model,
                                  "refitted_with_zoo_measurements": refitted}},
        "accuracy": {"top1": accuracy, "source": accuracy_source, "how": how, "details": details},
        "input": feeding(space, pick.arch, weights.checkpoint),
        "check": {k: v for k, v in check.items() if k != "weights"},
        "files": {"model": MODEL, "onnx_opset": proto.opset_import[0].version},
    }


# ----------------------------------------------------------------------------------------- export

@dataclass
class ExportResult:
    """What an export wrote: the index document and the exit code (1 when a device failed)."""

    index: dict[str, Any]
    out: Path
    exit_code: int = 0


def export(registry: Registry, store: Store, devices: Sequence[DeviceConfig], budgets_ms: Sequence[float],
           out: str | Path, *, space: str = "digits", accuracy: str = "supernet", evaluations: int = 200,
           seed: int = 0, rounds: int = 1, sessions: int | None = None, max_measured: int = MAX_MEASURED,
           train_config: Any = None, quiet: bool = False,
           on_progress: Callable[[int, int], None] | None = None) -> ExportResult:
    """Search (or resume), pick per device and budget by measured latency, write the zoo to ``out``."""
    from hwnas.search.accuracy import CachedAccuracy, parse_accuracy
    from hwnas.search.loop import cost_model_file, search_with_hardware

    budgets = check_budgets(budgets_ms)
    if not budgets:
        raise BadInput("--latency-ms: give at least one latency budget in milliseconds, e.g. 5,10,20")
    out = check_out(out)
    sp = spaces.get(space)
    for device in devices:
        cost_model_file(registry, device, sp)
    objective = _accuracy(accuracy, sp, registry.workspace, out, train_config, quiet, parse_accuracy)
    cached = CachedAccuracy(objective, sp)
    searched = search_with_hardware(sp, cached, registry=registry, store=store, devices=devices,
                                    evaluations=evaluations, budgets_ms=budgets, seed=seed, rounds=rounds,
                                    sessions=sessions, state_dir=out / STATE_DIR, quiet=quiet,
                                    on_progress=on_progress)
    archive = searched.search.archive
    weights = Weights(objective, sp)
    _remove_partials(out)
    entries, exit_code = [], searched.exit_code
    for device in devices:
        cands = DeviceCandidates(registry, store, device, sp, archive, sessions, seed, quiet)
        picks = [cands.pick(b, max_measured) for b in budgets]
        cands.refine(picks)
        exit_code = max(exit_code, cands.exit_code)
        for pick in picks:
            entries.append(_write_pick(out, sp, device, pick, weights, objective, cands))
        _plot(out / f"{device.name}.png", device.name, cands, picks, entries)
    index = {"kind": KIND, "format": ZOO_FORMAT, "space": sp.name, "accuracy_source": objective.name,
             "weights": "trained (supernet)" if weights.trained else "untrained (seeded random)",
             "evaluations": searched.search.evaluations, "seed": seed, "budgets_ms": budgets,
             "devices": [d.name for d in devices], "models": entries}
    write_text_atomic(out / README, readme(index))
    write_text_atomic(out / INDEX, json.dumps(index, indent=1) + "\n")
    return ExportResult(index, out, exit_code)


def _accuracy(spec: str, space: Space, workspace: Path, out: Path, train_config: Any, quiet: bool, parse):
    """The accuracy objective; a bare ``supernet`` is the registry workspace's supernet (trained if absent)."""
    from hwnas.search.accuracy import is_bare_supernet

    if is_bare_supernet(spec):
        from hwnas.supernet.accuracy import SupernetAccuracy

        return SupernetAccuracy(None, space, workspace=workspace, config=train_config, quiet=quiet)
    return parse(spec, space, work_dir=out / STATE_DIR)


def _remove_partials(out: Path) -> None:
    """Drop the half-built model folders an interrupted export left behind."""
    for partial in out.glob("*/.partial-*"):
        shutil.rmtree(partial, ignore_errors=True)


def _write_pick(out: Path, space: Space, device: DeviceConfig, pick: Pick, weights: Weights, objective: Any,
                cands: DeviceCandidates) -> dict[str, Any]:
    """Write the chosen model's folder (atomically; kept when it already holds this architecture); its index entry."""
    entry: dict[str, Any] = {"device": device.name, "budget_ms": pick.budget_ms, "name": None, "path": None,
                             "arch": pick.arch, "accuracy": pick.accuracy, "accuracy_source": objective.name,
                             "measured_ms": None, "predicted_ms": pick.predicted_ms, "met": pick.arch is not None,
                             "candidates_tried": pick.tried}
    if pick.arch is None:
        entry["fastest"] = pick.fastest
        return entry
    prefix = f"{device.name}_lat@{pick.budget_ms:g}ms_top1@"
    existing = [p for p in (out / device.name).glob(prefix + "*") if (p / CARD).is_file()]
    kept = next((p for p in existing if _read_json(p / CARD).get("architecture", {}).get("arch") == pick.arch), None)
    if kept is None:
        proto, check = weights.model(pick.arch)
        accuracy = check.get("top1_onnxruntime", pick.accuracy)
        name = model_name(device.name, pick.budget_ms, accuracy)
        doc = card(space, device, pick, name, proto, check, weights, objective.name, objective.details(pick.arch),
                   str(api.model_path(cands.registry.workspace, device.name, device.backend, space.name)),
                   cands.refitted)
        partial = out / device.name / f".partial-{name}-{os.getpid()}"
        partial.mkdir(parents=True, exist_ok=True)
        from lut import builders

        builders.save(proto, partial / MODEL)
        write_text_atomic(partial / CARD, json.dumps(doc, indent=1) + "\n")
        for old in existing:
            shutil.rmtree(old, ignore_errors=True)
        final = out / device.name / name
        os.replace(partial, final)
        fsync_dir(final.parent)
    else:
        final, doc = kept, _read_json(kept / CARD)
    entry.update({"name": doc["name"], "path": str(final.relative_to(out)), "accuracy": doc["accuracy"]["top1"],
                  "measured_ms": doc["latency"]["measured"]["median_ms"],
                  "session_spread": doc["latency"]["measured"]["session_spread"],
                  "predicted_ms": doc["latency"]["predicted"]["ms"], "params": doc["architecture"]["params"],
                  "macs": doc["architecture"]["macs"], "weights": doc["weights"]})
    return entry


def readme(index: dict[str, Any]) -> str:
    """The zoo's README: a model-card table per device."""
    intro = (f"Accuracy source: `{index['accuracy_source']}`; weights: {index['weights']}. "
             f"Search: {index['evaluations']} accuracy evaluations, seed {index['seed']}. Latency is MEASURED on "
             "each device (median over sessions; spread = (max - min) / median of the session medians).")
    lines = [f"# hwnas model zoo ({index['space']})", "", intro, ""]
    for device in index["devices"]:
        lines += [f"## {device}", "", f"![front]({device}.png)", "",
                  "| budget ms | model | measured ms (spread) | predicted ms | top-1 % | params | MACs | arch |",
                  "|---|---|---|---|---|---|---|---|"]
        for e in (e for e in index["models"] if e["device"] == device):
            if e["name"] is None:
                fastest = e.get("fastest") or {}
                lines.append(f"| {e['budget_ms']:g} | unmet (fastest measured: {fastest.get('measured_ms', 0):.3f} ms, "
                             f"`{fastest.get('arch')}`) | | | | | | |")
            else:
                lines.append(f"| {e['budget_ms']:g} | [{e['name']}]({e['path']}/{CARD}) | {e['measured_ms']:.3f} "
                             f"({e['session_spread']:.1%}) | {e['predicted_ms']:.3f} | {e['accuracy']:.1f} | "
                             f"{e['params']:,} | {e['macs']:,} | `{e['arch']}` |")
        lines.append("")
    lines += ["Use: `from hwnas import zoo; m = zoo.load(DIR).pick(DEVICE, BUDGET_MS); m.onnx_path, m.card`.", ""]
    return "\n".join(lines)


def _plot(path: Path, device: str, cands: DeviceCandidates, picks: Sequence[Pick], entries: list[dict]) -> None:
    """One PNG: every evaluated candidate (predicted), the front, measured ones, chosen models, budgets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwnas.search.result import pareto_front

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ax.scatter(cands.predicted, cands.accuracy, s=10, c="0.7", label="evaluated (predicted latency)")
    front = pareto_front(cands.accuracy, cands.predicted) if len(cands.archs) else []
    if len(front):
        ax.step(cands.predicted[front], cands.accuracy[front], where="post", c="tab:blue", lw=1.2,
                label="front (predicted)")
    measured = cands.measured_points()
    if measured:
        ax.scatter(*zip(*measured), s=22, marker="x", c="tab:orange", label="measured")
    chosen = [e for e in entries if e["device"] == device and e["name"]]
    if chosen:
        ax.scatter([e["measured_ms"] for e in chosen], [e["accuracy"] for e in chosen], s=120, marker="*",
                   c="tab:red", zorder=5, label="zoo model (measured)")
    for pick in picks:
        ax.axvline(pick.budget_ms, ls="--", c="tab:green", lw=1)
    ax.set_xlabel(f"latency on {device} (ms)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{device}: candidates, front, zoo models; budgets dashed")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)


# ----------------------------------------------------------------------------------------- using a zoo

@dataclass(frozen=True)
class ZooModel:
    """One exported model: where its ONNX file is and its card."""

    device: str
    budget_ms: float
    name: str
    folder: Path
    card: dict[str, Any]

    @property
    def onnx_path(self) -> Path:
        """The model's ONNX file."""
        return self.folder / MODEL

    @property
    def measured_ms(self) -> float:
        """The measured median latency on its device (ms)."""
        return float(self.card["latency"]["measured"]["median_ms"])

    @property
    def accuracy(self) -> float:
        """The card's top-1 (percent)."""
        return float(self.card["accuracy"]["top1"])


class Zoo:
    """A zoo folder read back (JSON only)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        index = self.folder / INDEX
        if not index.is_file():
            raise BadInput(f"{self.folder}: no {INDEX} (not a zoo folder)")
        self.index = _read_json(index)
        if not isinstance(self.index, dict) or self.index.get("kind") != KIND or self.index.get("format") != ZOO_FORMAT:
            raise BadInput(f"{index}: a zoo folder made by an incompatible version (expected format {ZOO_FORMAT})")
        self.models = [ZooModel(e["device"], float(e["budget_ms"]), e["name"], self.folder / e["path"],
                                _read_json(self.folder / e["path"] / CARD))
                       for e in self.index["models"] if e.get("name")]

    def devices(self) -> list[str]:
        """The devices the zoo was exported for."""
        return list(self.index.get("devices", []))

    def pick(self, device: str, budget_ms: float) -> ZooModel | None:
        """The most accurate model of ``device`` whose measured latency is within ``budget_ms`` (None if none)."""
        if device not in self.devices():
            raise BadInput(f"the zoo at {self.folder} has no device {device!r} (has: {', '.join(self.devices())})")
        fits = [m for m in self.models if m.device == device and m.measured_ms <= budget_ms]
        return max(fits, key=lambda m: (m.accuracy, -m.measured_ms), default=None)


def load(folder: str | Path) -> Zoo:
    """Read the zoo in ``folder``."""
    return Zoo(folder)
