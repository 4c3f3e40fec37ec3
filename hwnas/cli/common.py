"""Helpers shared by command modules: loading the registry and store from arguments."""
from __future__ import annotations

import argparse
import uuid

from hwnas import config
from hwnas.config import DeviceConfig, Registry
from hwnas.store import Store


def registry(args: argparse.Namespace) -> Registry:
    """The hardware.yaml named by ``--config`` (BadInput with file:line on errors)."""
    return config.load(args.config)


def store(reg: Registry) -> Store:
    """The measurement store of the registry's workspace."""
    return Store(reg.workspace)


def devices(reg: Registry, names: list[str] | None) -> list[DeviceConfig]:
    """The named devices (all when ``names`` is empty), validated against the registry."""
    return [reg.device(n) for n in names] if names else reg.devices


def run_id() -> str:
    """A fresh identifier for one command run (idempotency keys of its requests)."""
    return uuid.uuid4().hex
