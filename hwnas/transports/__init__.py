"""Transports start a device agent and give hwnas a line channel to it.

``open_transport(device)`` picks the implementation from the device entry's
``transport.type``; every transport is a drop-in for the others.
"""
from __future__ import annotations

import importlib

from hwnas.transports.base import AgentProcess, Transport

_IMPLEMENTATIONS = {
    "local": "hwnas.transports.local:LocalTransport",
    "ssh": "hwnas.transports.ssh:SshTransport",
    "tvm_rpc": "hwnas.transports.tvm_rpc:TvmRpcTransport",
}


def open_transport(device, workspace) -> Transport:
    """The transport for a configured device (not yet connected)."""
    target = _IMPLEMENTATIONS.get(device.transport.type)
    if target is None:
        from hwnas.errors import BadInput
        raise BadInput(f"device {device.name}: transport {device.transport.type!r} cannot run the agent")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(device, workspace)


__all__ = ["AgentProcess", "Transport", "open_transport"]
