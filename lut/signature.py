"""Canonical, hashable signatures of operators and blocks, and their string keys.

A :class:`Signature` names one block of a network by everything that decides its
latency: op type, input and output shape (H, W, C — or just C for a vector),
kernel, stride, groups, expanded channel count, identity skip, squeeze-excite,
activation, dtype and layout. Its string form is the lookup-table key.

For MobileNetV3 blocks the string form is the Once-for-All key form, so tables
interoperate with OFA-style YAML lookup tables::

    Conv-input:224x224x3-output:112x112x16
    expanded_conv-input:56x56x24-output:28x28x40-expand:144-kernel:5-stride:2-idskip:0-se:1-hs:0
    Conv_1-input:7x7x160-output:7x7x960
    AvgPool2D-input:7x7x960-output:1x1x960
    Conv_2-input:1x1x960-output:1x1x1280
    Logits-input:1x1x1280-output:1000

``expand`` is the expanded channel count (not the ratio), ``hs`` is 1 for h-swish
and 0 for ReLU. Other ops write only the fields they set, in a fixed order
(``expand, kernel, stride, groups, idskip, se, act``), and ``dtype``/``layout``
only when they differ from float32/NCHW. :func:`parse` inverts :func:`Signature.key`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_DTYPE = "float32"
DEFAULT_LAYOUT = "NCHW"
OFA_BLOCK = "expanded_conv"
_ACTS_BY_HS = {0: "relu", 1: "h_swish"}
_OPTIONAL = ("expand", "kernel", "stride", "groups", "idskip", "se")
_OP_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_WORD_RE = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True, order=True)
class Signature:
    """One operator/block configuration; immutable and hashable (usable as a dict key)."""

    op: str
    input: tuple[int, ...]
    output: tuple[int, ...]
    expand: int | None = None      # expanded (hidden) channel count of an inverted bottleneck
    kernel: int | None = None
    stride: int | None = None
    groups: int | None = None
    idskip: int | None = None      # 1 when the identity shortcut is used
    se: int | None = None          # 1 with squeeze-and-excite
    act: str | None = None         # 'relu', 'h_swish', ...
    dtype: str = DEFAULT_DTYPE
    layout: str = DEFAULT_LAYOUT

    def __post_init__(self) -> None:
        if not _OP_RE.match(self.op):
            raise ValueError(f"bad op name {self.op!r}: letters, digits and '_' only, starting with a letter")
        for name in ("input", "output"):
            shape = getattr(self, name)
            if not isinstance(shape, tuple) or not shape or not all(isinstance(d, int) and d > 0 for d in shape):
                raise ValueError(f"{self.op}: {name} shape must be a non-empty tuple of positive ints, got {shape!r}")
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{self.op}: {name} must be a non-negative int or None, got {value!r}")
        for name in ("act", "dtype", "layout"):
            value = getattr(self, name)
            if value is not None and not _WORD_RE.match(value):
                raise ValueError(f"{self.op}: {name} must be a word (letters, digits, '_'), got {value!r}")
        if self.op == OFA_BLOCK:
            missing = [n for n in ("expand", "kernel", "stride", "idskip", "se") if getattr(self, n) is None]
            if missing or self.act not in _ACTS_BY_HS.values():
                raise ValueError(f"{OFA_BLOCK} needs expand, kernel, stride, idskip, se and act relu|h_swish "
                                 f"(missing: {', '.join(missing) or 'act'})")

    def key(self) -> str:
        """The canonical string form (OFA key form for MobileNetV3 blocks)."""
        parts = [self.op, f"input:{_shape(self.input)}", f"output:{_shape(self.output)}"]
        if self.op == OFA_BLOCK:
            parts += [f"expand:{self.expand}", f"kernel:{self.kernel}", f"stride:{self.stride}",
                      f"idskip:{self.idskip}", f"se:{self.se}", f"hs:{int(self.act == 'h_swish')}"]
            if self.groups is not None:
                parts.append(f"groups:{self.groups}")
        else:
            parts += [f"{n}:{getattr(self, n)}" for n in _OPTIONAL if getattr(self, n) is not None]
            if self.act is not None:
                parts.append(f"act:{self.act}")
        if self.dtype != DEFAULT_DTYPE:
            parts.append(f"dtype:{self.dtype}")
        if self.layout != DEFAULT_LAYOUT:
            parts.append(f"layout:{self.layout}")
        return "-".join(parts)

    def __str__(self) -> str:
        return self.key()


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def _dims(text: str, key: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in text.split("x"))
    except ValueError:
        raise ValueError(f"bad shape {text!r} in signature {key!r}") from None


def parse(key: str) -> Signature:
    """The Signature of a string key (inverse of :meth:`Signature.key`); ValueError names the problem."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"a signature key must be a non-empty string, got {key!r}")
    op, *fields = key.split("-")
    values: dict[str, str] = {}
    for field in fields:
        name, sep, value = field.partition(":")
        if not sep or not value or name in values:
            raise ValueError(f"bad field {field!r} in signature {key!r}")
        values[name] = value
    if "input" not in values or "output" not in values:
        raise ValueError(f"signature {key!r} needs input: and output: fields")
    kwargs: dict[str, object] = {"input": _dims(values.pop("input"), key),
                                 "output": _dims(values.pop("output"), key)}
    if op == OFA_BLOCK:
        hs = values.pop("hs", None)
        if hs not in ("0", "1"):
            raise ValueError(f"signature {key!r} needs hs:0 or hs:1")
        kwargs["act"] = _ACTS_BY_HS[int(hs)]
    for name in list(values):
        if name in _OPTIONAL:
            try:
                kwargs[name] = int(values.pop(name))
            except ValueError:
                raise ValueError(f"field {name!r} of signature {key!r} must be an integer") from None
        elif name in ("act", "dtype", "layout") and not (name == "act" and op == OFA_BLOCK):
            kwargs[name] = values.pop(name)
    if values:
        raise ValueError(f"unknown field(s) {', '.join(sorted(values))} in signature {key!r}")
    sig = Signature(op, **kwargs)  # type: ignore[arg-type]
    if sig.key() != key:
        raise ValueError(f"signature {key!r} is not in canonical form (expected {sig.key()!r})")
    return sig
