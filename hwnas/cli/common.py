"""Helpers shared by command modules: loading the registry and store from arguments."""
from __future__ import annotations

import argparse
import logging
import uuid

from hwnas import config
from hwnas.config import DeviceConfig, Registry
from hwnas.store import Store

log = logging.getLogger("hwnas")


def registry(args: argparse.Namespace) -> Registry:
    """The hardware.yaml named by ``--config`` (BadInput with file:line on errors)."""
    return config.load(args.config)


def store(reg: Registry) -> Store:
    """The measurement store of the registry's workspace."""
    return Store(reg.workspace, lock_timeout_s=reg.config.store_lock_timeout_s)


def devices(reg: Registry, names: list[str] | None) -> list[DeviceConfig]:
    """The named devices (all when ``names`` is empty), validated against the registry. A name
    given twice is used once, with a note (never two agents on one device)."""
    if not names:
        return reg.devices
    unique = list(dict.fromkeys(names))
    for name in unique:
        if names.count(name) > 1:
            log.warning("note: device %r was given %d times; using it once", name, names.count(name))
    return [reg.device(n) for n in unique]


def sessions(value: int | None) -> int | None:
    """A ``--sessions`` value: None (the device's default) or a count of at least 1 (BadInput otherwise)."""
    from hwnas.measure import check_sessions

    return None if value is None else check_sessions(value)


def run_id() -> str:
    """A fresh identifier for one command run (idempotency keys of its requests)."""
    return uuid.uuid4().hex
