"""Running work on several devices at once: one worker thread per device, failures kept as data.

Never two measurements at once on the same device (they would disturb each
other): each device gets exactly one worker, which owns its agent session.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Generic, TypeVar

from hwnas.agent_client import AgentClient
from hwnas.config import DeviceConfig, Registry
from hwnas.errors import HwnasError
from hwnas.session import agent_session

log = logging.getLogger("hwnas")
T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    """What one device's worker produced: a value, or the error that stopped it."""

    device: str
    value: T | None = None
    error: HwnasError | None = None


def run(registry: Registry, devices: list[DeviceConfig],
        work: Callable[[DeviceConfig, AgentClient], T]) -> list[Outcome[T]]:
    """Run ``work(device, client)`` on every device concurrently; outcomes in device order."""
    outcomes = [Outcome[Any](device=d.name) for d in devices]

    def worker(device: DeviceConfig, outcome: Outcome[Any]) -> None:
        try:
            with agent_session(registry, device) as client:
                outcome.value = work(device, client)
        except HwnasError as exc:
            log.error("hwnas: %s", exc)
            outcome.error = exc

    threads = [threading.Thread(target=worker, args=(d, o), name=f"device-{d.name}", daemon=True)
               for d, o in zip(devices, outcomes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
