"""The hwnas device agent: runs ON the device, times models there, speaks device_agents.protocol.

This package imports nothing from hwnas (it must run on a bare device with only
the standard library, numpy and the runtime it drives). hwnas uploads this tree
as-is, keyed by ``tree_hash()``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

__version__ = "0.1.0"


def tree_hash(root: str | Path | None = None) -> str:
    """sha256 over the agent's source files (relative path + bytes), in sorted order."""
    root = Path(root) if root is not None else Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def agent_version() -> str:
    """Version string reported in ``hello``: release plus the first 12 hex digits of the tree hash."""
    return f"{__version__}+{tree_hash()[:12]}"
