"""Predicted latency of any ONNX CNN on a registered device, from its kernel predictor.

:func:`load_predictor` finds the device's predictor (built by ``hwnas costmodel fit
--onnx-kernels``) in ``<workspace>/cost_models/<device>-<backend>.kernels.json``;
:func:`read_cnn` validates a model file (BadInput naming it when it is not a readable ONNX
CNN); :func:`predict_file` returns the result object ``hwnas predict --json`` prints.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import onnx

from cost_models import kernel_model
from cost_models.onnx_kernels import SMALL_INITIALIZER, GraphError, Kernel, light
from cost_models.onnx_wire import load_without_weights
from hwnas.config import Registry
from hwnas.errors import BadInput
from hwnas.measure import check_onnx

log = logging.getLogger("hwnas")
CNN_KERNELS = ("conv", "dwconv", "gconv")
WEIGHT_BYTES = 8 * SMALL_INITIALIZER
"""Initializers with more bytes than this are read without their values (they hold over
``SMALL_INITIALIZER`` elements, so the splitter would drop the values anyway)."""


def predictor_path(workspace: Path, device: str, backend: str) -> Path:
    """Where a device's kernel predictor is saved."""
    return Path(workspace) / "cost_models" / f"{device}-{backend}.kernels.json"


def load_predictor(registry: Registry, device_name: str, path: str | Path | None = None
                   ) -> kernel_model.KernelPredictor:
    """The device's kernel predictor (BadInput when there is none or it cannot be used)."""
    device = registry.device(device_name)
    path = Path(path) if path else predictor_path(registry.workspace, device.name, device.backend)
    if not path.is_file():
        raise BadInput(f"device {device.name!r} has no kernel predictor at {path}; build it with "
                       f"`hwnas costmodel fit --device {device.name} --onnx-kernels`")
    try:
        predictor, warnings = kernel_model.load(path)
    except kernel_model.PredictorFileError as exc:
        raise BadInput(str(exc)) from None
    if predictor.manifest.get("device") != device.name:
        raise BadInput(f"{path}: built for device {predictor.manifest.get('device')!r}, not {device.name!r}")
    for warning in warnings:
        log.warning("hwnas: warning: %s", warning)
    return predictor


def read_graph(path: str | Path) -> onnx.ModelProto:
    """The graph of an ONNX file with its large weights left out unread: what the splitter needs."""
    return light(load_without_weights(path, WEIGHT_BYTES))


def _load(path: str | Path) -> onnx.ModelProto:
    """The model of an ONNX file, checked, with large weights left out unread (BadInput names the file)."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: no such model file")
    try:
        full = load_without_weights(path, WEIGHT_BYTES)
        onnx.checker.check_model(light(full, as_inputs=True))
        model = light(full)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, ...: all mean a bad file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"{path}: not a valid ONNX model ({first})") from None
    if not model.graph.node:
        raise BadInput(f"{path}: the ONNX graph has no nodes")
    return model


def read_cnn(path: str | Path, predictor: kernel_model.KernelPredictor) -> tuple[list[Kernel], int]:
    """The kernels of an ONNX CNN file and its output elements; BadInput names the file when it is
    malformed or not a CNN."""
    model = _load(path)
    try:
        kernels = predictor.kernels(model)
        outputs = kernel_model.output_numel(model)
    except GraphError as exc:
        raise BadInput(f"{path}: not an ONNX CNN hwnas can split into kernels ({exc})") from None
    except Exception as exc:  # a graph onnx accepted but whose attributes/shapes make no sense
        raise BadInput(f"{path}: cannot read the graph ({type(exc).__name__}: {exc})") from None
    if not any(k.type in CNN_KERNELS for k in kernels):
        raise BadInput(f"{path}: not a CNN (no convolution); hwnas predict covers convolutional networks")
    return kernels, outputs


def predict_file(path: str, model: tuple[list[Kernel], int], predictor: kernel_model.KernelPredictor, device: str,
                 per_kernel: bool = False) -> dict[str, Any]:
    """The result object of one model (``model``: what :func:`read_cnn` returned); warns (stderr log)
    about ops without a kernel predictor."""
    p = predictor.predict_kernels(*model)
    for op in p.unpredicted:
        count = sum(1 for k in p.kernels if not k["predicted"] and (k["op"] or k["type"]) == op)
        log.warning("hwnas: warning: %s: no kernel predictor for op %r (%d kernel%s); estimated as one "
                    "element-wise pass over its tensor, with 100%% uncertainty", path, op, count, "s" * (count > 1))
    row: dict[str, Any] = {"model": path, "device": device, "latency_ms": p.latency_ms, "std_ms": p.std_ms,
                           "base_ms": p.base_ms, "kernels": len(p.kernels), "flops": p.flops,
                           "contains_unpredicted": bool(p.unpredicted), "unpredicted_ops": p.unpredicted,
                           "predictor": "kernels", "runtime_version": predictor.manifest.get("runtime_version")}
    if per_kernel:
        row["per_kernel"] = p.kernels
    return row


def evaluate(predictor: kernel_model.KernelPredictor, store: Any, device: Any,
             paths: list[str] | None = None) -> dict[str, Any]:
    """Predicted vs newest measured latency of ONNX models on ``device`` (``paths``, or every measured model
    whose file exists); BadInput when a named file was never measured or nothing is."""
    import numpy as np

    from cost_models.metrics import summary
    from hwnas.speed import Normaliser

    normaliser = Normaliser(store)  # the predictor predicts latency at the device's reference speed
    measured = {m.signature: m for m in store.select(device.name, device.backend, item="model")}
    if paths is None:
        paths = sorted({m.source for m in measured.values() if m.source and Path(m.source).is_file()})
    rows = []
    for path in paths:
        sha = check_onnx(path)
        m = measured.get(f"onnx:{sha}")
        if m is None:
            raise BadInput(f"{path}: not measured on {device.name}; run `hwnas measure --device {device.name} "
                           f"--onnx {path}` first")
        p = predictor.predict_kernels(*read_cnn(path, predictor))
        rows.append({"model": path, "measured_ms": normaliser.latency_ms(m), "raw_measured_ms": m.latency_ms,
                     "predicted_ms": p.latency_ms, "std_ms": p.std_ms,
                     "session_spread": m.session_spread, "unpredicted_ops": p.unpredicted})
    if not rows:
        raise BadInput(f"device {device.name!r} has no measured ONNX models to evaluate on")
    y = np.array([r["measured_ms"] for r in rows])
    pred = np.array([r["predicted_ms"] for r in rows])
    return {"device": device.name, "models": len(rows), "metrics": summary(y, pred),
            "noise_floor_median_session_spread": float(np.median([r["session_spread"] for r in rows])),
            "per_model": rows}
