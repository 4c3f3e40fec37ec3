"""Reading an ONNX file's graph without its weights, at the protobuf wire level.

Splitting a model into kernels needs its nodes and the shapes of its tensors, not the
megabytes of weights a 50-layer CNN carries: parsing those into a ``ModelProto`` is
most of the time of a prediction. :func:`load_without_weights` walks the file's wire
format (memory-mapped), copies every field of the model and its graph as bytes, and
drops only the ``raw_data`` of initializers larger than ``min_bytes`` (their name,
type and dims stay), then parses what is left. Field numbers come from onnx's own
message descriptors.
"""
from __future__ import annotations

import mmap
from pathlib import Path

import onnx

_GRAPH = onnx.ModelProto.DESCRIPTOR.fields_by_name["graph"].number
_INITIALIZER = onnx.GraphProto.DESCRIPTOR.fields_by_name["initializer"].number
_RAW_DATA = onnx.TensorProto.DESCRIPTOR.fields_by_name["raw_data"].number
_LENGTH_DELIMITED, _VARINT, _FIXED64, _FIXED32 = 2, 0, 1, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf: bytes | mmap.mmap, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise WireError(f"truncated or overlong varint at byte {pos}")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(buf: bytes | mmap.mmap, start: int, end: int):
    """(field number, wire type, start of the field's tag, start of its payload, end of the field)."""
    pos = start
    while pos < end:
        tag_start = pos
        tag, pos = _varint(buf, pos, end)
        field, wire = tag >> 3, tag & 7
        if wire == _VARINT:
            _, stop = _varint(buf, pos, end)
        elif wire == _FIXED64:
            stop = pos + 8
        elif wire == _FIXED32:
            stop = pos + 4
        elif wire == _LENGTH_DELIMITED:
            length, pos = _varint(buf, pos, end)
            stop = pos + length
        else:
            raise WireError(f"unsupported wire type {wire} at byte {tag_start}")
        if stop > end:
            raise WireError(f"field {field} at byte {tag_start} runs past the end of its message")
        yield field, wire, tag_start, pos, stop
        pos = stop


def _rewrite(buf: bytes | mmap.mmap, start: int, end: int, child: int, inner) -> bytes:
    """The message ``buf[start:end]`` with each length-delimited field ``child`` replaced by ``inner(s, e)``."""
    parts = []
    for field, wire, tag_start, payload, stop in _fields(buf, start, end):
        if field == child and wire == _LENGTH_DELIMITED:
            body = inner(payload, stop)
            parts += [buf[tag_start:_varint(buf, tag_start, end)[1]], _encode_varint(len(body)), body]
        else:
            parts.append(buf[tag_start:stop])
    return b"".join(parts)


def strip_weights(buf: bytes | mmap.mmap, min_bytes: int) -> bytes:
    """A serialized ModelProto without the ``raw_data`` of initializers holding more than ``min_bytes``."""
    def tensor(s: int, e: int) -> bytes:
        return b"".join(buf[t:stop] for field, wire, t, payload, stop in _fields(buf, s, e)
                        if not (field == _RAW_DATA and wire == _LENGTH_DELIMITED and stop - payload > min_bytes))

    def graph(s: int, e: int) -> bytes:
        return _rewrite(buf, s, e, _INITIALIZER, tensor)

    return _rewrite(buf, 0, len(buf), _GRAPH, graph)


def load_without_weights(path: str | Path, min_bytes: int) -> onnx.ModelProto:
    """The model of ONNX file ``path`` with large initializers' values left out (see the module
    docstring); WireError or onnx's DecodeError when the file is not a protobuf message."""
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            return onnx.ModelProto()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return onnx.ModelProto.FromString(strip_weights(buf, min_bytes))
