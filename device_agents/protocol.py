"""The hwnas agent wire protocol: the one definition both ends import.

Framing: newline-delimited JSON, UTF-8, one object per line, at most
``MAX_LINE`` bytes per line. The host writes requests to the agent's stdin;
the agent writes replies on its own protocol stream (the stdout it inherited,
moved to a private descriptor at start-up so that whatever a runtime prints goes
to stderr and cannot corrupt a frame).

Every request carries ``id`` (int) and ``op`` (one of ``REQUESTS``). Every reply
carries the same ``id`` and either ``ok: true, result: {...}`` or
``ok: false, error: {type, message}``. A line that cannot be parsed gets a reply
with ``id: null`` and error type ``protocol``.

Requests (fields beyond ``id``/``op``; ``?`` marks optional ones):

    op        fields                                   result
    --------  ---------------------------------------  ---------------------------------
    hello     protocol:int                             facts: cpu, cores, governor, memory,
                                                       python, runtimes, providers, agent
    ping      -                                        {} (round-trip probe)
    load      sha256:str, format:str, data_b64?:str    {sha256, cached:bool, bytes:int}
    measure   model:str, backend?:str, settings?:obj   stats (see ``device_agents.timing``) and the
                                                       runner's facts (``device_agents.runners``)
              inputs?:list, reference?:str             (tvm: input specs [{name, shape, dtype}]; sha256
                                                       of the loaded ONNX model outputs are checked against)
    profile   model:str, runs?:int, settings?:obj      {nodes: [{name, op_type, provider, dur_us, runs,
                                                       index, input_shapes, output_shapes}], providers}
              inputs?:list                             (the kernels the runtime ran, see ``validate_profile``;
                                                       tvm: input specs as for measure)
    bye       -                                        {} then the agent exits

``settings.input_shapes`` (``{input name: [dim, ...]}``, positive ints) fixes the
shape of inputs with dynamic dimensions; without it a dynamic dimension is fed as 1
and the result carries a warning (and ``valid: false``). Every ONNX result reports
the ``input_shapes`` it was measured with.

``hello`` must come first: the agent refuses other requests before it, and a
``protocol`` mismatch is refused with a message naming both versions.
Error types: ``protocol`` (malformed frame or fields), ``version`` (handshake
mismatch), ``missing_model`` (load without bytes for an uncached hash),
``bad_model`` (the runtime rejected the model), ``runtime`` (anything the runtime
raised while measuring), ``unsupported`` (backend not available on this device).
"""
from __future__ import annotations

import json
from typing import Any

from device_agents import runners

PROTOCOL_VERSION = 1
MAX_LINE = 256 * 1024 * 1024  # base64 model bytes travel inside `load`

FORMATS = ("onnx", "tvm")
BACKENDS = runners.names()  # one runner module per backend (device_agents/runners/)
ERROR_TYPES = ("protocol", "version", "missing_model", "bad_model", "runtime", "unsupported")

# op -> {field: (type, required)}
REQUESTS: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "hello": {"protocol": (int, True)},
    "ping": {},
    "load": {"sha256": (str, True), "format": (str, True), "data_b64": (str, False)},
    "measure": {"model": (str, True), "backend": (str, False), "settings": (dict, False),
                "inputs": (list, False), "reference": (str, False)},
    "profile": {"model": (str, True), "runs": (int, False), "settings": (dict, False), "inputs": (list, False)},
    "bye": {},
}

# settings keys accepted by measure/profile, with their types
SETTINGS: dict[str, type | tuple[type, ...]] = {
    "threads": int,
    "affinity": list,
    "providers": list,
    "warmup_ms": (int, float),
    "repeat": int,
    "min_repeat_ms": (int, float),
    "cov_threshold": (int, float),
    "max_remeasure": int,
    "drift_threshold": (int, float),
    "reference_baseline_ms": (int, float),
    "probe_model": str,
    "memory_probe_model": str,    # time this cached ONNX model before and after too (memory_probe_ms)
    "reference_rounds": bool,     # time the reference kernel after every round (speed normalisation)
    "check_outputs": bool,
    "seed": int,
    "input_shapes": dict,
    "require_all_nodes": bool,   # onnxruntime: a node off the first provider makes the result invalid
    "tvm_device": str,           # tvm: the device the target runs on (cpu, opencl, vulkan, cuda, ...)
    "accelerator": dict,         # simulator: the accelerator configuration (see runners/simulator.py)
}
MAX_RANK = 16
MAX_DIM = 1 << 24


def check_input_shapes(value: Any, where: str = "settings.input_shapes") -> dict[str, list[int]]:
    """Validate ``{input name: [dim, ...]}`` (non-empty names, 1..MAX_RANK positive dims); returns it.

    Used by both ends: the host on the user's ``--input-shape``, the agent on every request."""
    if not isinstance(value, dict):
        raise ProtocolError(f"{where} must be an object of input name -> list of dimensions")
    for name, dims in value.items():
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"{where}: input names must be non-empty strings")
        if not isinstance(dims, list) or not 1 <= len(dims) <= MAX_RANK:
            raise ProtocolError(f"{where}.{name} must be a list of 1 to {MAX_RANK} dimensions")
        for dim in dims:
            if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_DIM:
                raise ProtocolError(f"{where}.{name}: dimensions must be integers from 1 to {MAX_DIM}, got {dim!r}")
    return value


class ProtocolError(ValueError):
    """A frame or its fields do not follow the protocol."""


def encode(message: dict[str, Any]) -> bytes:
    """Encode one message as a newline-terminated JSON frame."""
    line = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if len(line) >= MAX_LINE:
        raise ProtocolError(f"frame of {len(line)} bytes exceeds the {MAX_LINE}-byte limit")
    return line + b"\n"


def decode(line: bytes | str) -> dict[str, Any]:
    """Decode one frame; raises ProtocolError if it is not a JSON object within limits."""
    if isinstance(line, str):
        line = line.encode("utf-8")
    if len(line) > MAX_LINE:
        raise ProtocolError(f"frame of {len(line)} bytes exceeds the {MAX_LINE}-byte limit")
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not a JSON frame: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a frame must be a JSON object")
    return message


def _check_type(where: str, value: Any, expected: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) and expected in (int, (int, float)):
        raise ProtocolError(f"{where} must be a number, not a boolean")
    if not isinstance(value, expected):
        names = expected.__name__ if isinstance(expected, type) else "/".join(t.__name__ for t in expected)
        raise ProtocolError(f"{where} must be {names}, got {type(value).__name__}")


def validate_request(message: dict[str, Any]) -> dict[str, Any]:
    """Check a decoded request against ``REQUESTS``; returns it or raises ProtocolError."""
    rid = message.get("id")
    if not isinstance(rid, int) or isinstance(rid, bool):
        raise ProtocolError("request needs an integer 'id'")
    op = message.get("op")
    if op not in REQUESTS:
        raise ProtocolError(f"unknown op {op!r}; expected one of {', '.join(REQUESTS)}")
    fields = REQUESTS[op]
    for name in message:
        if name not in ("id", "op") and name not in fields:
            raise ProtocolError(f"{op}: unknown field {name!r}")
    for name, (kind, required) in fields.items():
        if name not in message:
            if required:
                raise ProtocolError(f"{op}: missing field {name!r}")
            continue
        _check_type(f"{op}.{name}", message[name], kind)
    if op == "load" and message["format"] not in FORMATS:
        raise ProtocolError(f"load.format must be one of {FORMATS}")
    if op == "measure" and message.get("backend", "onnxruntime") not in BACKENDS:
        raise ProtocolError(f"measure.backend must be one of {BACKENDS}")
    for name, value in (message.get("settings") or {}).items():
        if name not in SETTINGS:
            raise ProtocolError(f"{op}.settings: unknown key {name!r}")
        _check_type(f"{op}.settings.{name}", value, SETTINGS[name])
        if name == "input_shapes":
            check_input_shapes(value, f"{op}.settings.input_shapes")
    return message


def validate_reply(message: dict[str, Any]) -> dict[str, Any]:
    """Check a decoded reply's envelope; returns it or raises ProtocolError."""
    if "id" not in message or not isinstance(message.get("ok"), bool):
        raise ProtocolError("reply needs 'id' and boolean 'ok'")
    if message["ok"]:
        if not isinstance(message.get("result"), dict):
            raise ProtocolError("successful reply needs an object 'result'")
    else:
        error = message.get("error")
        if not isinstance(error, dict) or error.get("type") not in ERROR_TYPES:
            raise ProtocolError("failed reply needs 'error' with a known 'type'")
    return message


PROFILE_NODE: dict[str, type | tuple[type, ...]] = {
    "name": str, "op_type": str, "provider": str, "dur_us": (int, float), "runs": int, "index": int,
    "input_shapes": list, "output_shapes": list,
}
"""Fields of one node of a ``profile`` result, with their types."""


def validate_profile(result: dict[str, Any]) -> dict[str, Any]:
    """Check a ``profile`` result (both ends call it); returns it or raises ProtocolError."""
    nodes = result.get("nodes")
    if not isinstance(nodes, list):
        raise ProtocolError("profile result needs a list 'nodes'")
    for i, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise ProtocolError(f"profile.nodes[{i}] must be an object")
        for name, kind in PROFILE_NODE.items():
            if name not in node:
                raise ProtocolError(f"profile.nodes[{i}]: missing field {name!r}")
            _check_type(f"profile.nodes[{i}].{name}", node[name], kind)
        for key in ("input_shapes", "output_shapes"):
            for shape in node[key]:
                if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                                          for d in shape):
                    raise ProtocolError(f"profile.nodes[{i}].{key} must be lists of integers")
    return result


def ok(rid: int | None, result: dict[str, Any]) -> dict[str, Any]:
    """Build a success reply."""
    return {"id": rid, "ok": True, "result": result}


def error(rid: int | None, kind: str, message: str) -> dict[str, Any]:
    """Build an error reply of one of ``ERROR_TYPES``."""
    assert kind in ERROR_TYPES, kind
    return {"id": rid, "ok": False, "error": {"type": kind, "message": message}}
