"""Running work on several devices at once, surviving faults: one worker thread per device.

Never two measurements at once on the same device (they would disturb each
other): each device gets exactly one worker, which owns its transport and agent.

Faults a worker survives (``RETRYABLE``): a request timeout, a dead agent or a
dropped connection, garbage on the stream. After one, the agent is killed, the
connection re-opened with exponential backoff if it was lost, a fresh agent
started, and the work called again — work must be resumable (``measure_items``
skips what its run already stored, and the store dedups by ``request_key``, so a
request in flight when the fault struck is retried but never recorded twice).
A device with ``max_failures`` faults in a row without progress in between is
marked unhealthy in the store and skipped; the other devices go on. Ctrl-C kills
every agent, lets workers finish the row they are writing, and re-raises.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hwnas.agent_client import HELLO_TIMEOUT_S, AgentClient
from hwnas.config import DeviceConfig, Registry
from hwnas.errors import (
    NO_SPACE,
    AgentProtocolError,
    AgentTimeout,
    DeviceFailure,
    DeviceUnreachable,
    HwnasError,
    StoreFull,
)
from hwnas.store import Store
from hwnas.transports import open_transport

log = logging.getLogger("hwnas")
T = TypeVar("T")
R = TypeVar("R")

RETRYABLE = (AgentTimeout, DeviceUnreachable, AgentProtocolError)


@dataclass(frozen=True)
class FaultPolicy:
    """How hard a worker tries: faults in a row before giving up on a device, and backoff delays."""

    max_failures: int = 3
    backoff_s: float = 0.5          # first delay, doubled after each further fault / failed connect
    backoff_max_s: float = 8.0
    reconnect_budget_s: float = 60.0  # how long one reconnect keeps trying before it counts as a fault

    def delay(self, attempt: int) -> float:
        """Backoff before retry number ``attempt`` (1-based)."""
        return min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))


@dataclass
class Outcome(Generic[T]):
    """What one device's worker produced: a value, or the error that stopped it."""

    device: str
    value: T | None = None
    error: HwnasError | None = None


def _report(error: HwnasError) -> None:
    """Print a device's error as the fleet meets it (one line), and mark it printed."""
    log.error("hwnas: %s", error)
    error.reported = True


def hello_timeout(device: DeviceConfig) -> float:
    """Handshake timeout: the request timeout, but at least 10 s (start-up imports the runtime)."""
    return min(HELLO_TIMEOUT_S, max(10.0, device.measurement.timeout_s))


class Worker:
    """Owns one device for a run: its transport, its current agent, its count of faults in a row."""

    def __init__(self, registry: Registry, device: DeviceConfig, store: Store, policy: FaultPolicy,
                 stop: threading.Event) -> None:
        self.device = device
        self.store = store
        self.policy = policy
        self.stop = stop
        self.transport = open_transport(device, registry.workspace)
        self.client: AgentClient | None = None

    def _connect(self) -> None:
        """Open the connection, retrying with exponential backoff within the reconnect budget."""
        deadline = time.monotonic() + self.policy.reconnect_budget_s
        attempt = 0
        while True:
            try:
                self.transport.connect()
                return
            except DeviceUnreachable as exc:
                attempt += 1
                delay = self.policy.delay(attempt)
                if self.stop.is_set() or time.monotonic() + delay > deadline:
                    raise
                log.info("%s; retrying in %.1f s", exc, delay)
                if self.stop.wait(delay):
                    raise

    def run(self, work: Callable[[DeviceConfig, AgentClient], T]) -> Outcome[T]:
        """Call ``work`` until it finishes, a non-retryable error stops it, or the device turns unhealthy."""
        name = self.device.name
        failures = 0
        try:
            while not self.stop.is_set():
                client = None
                try:
                    self._connect()
                    client = AgentClient(self.transport, timeout_s=self.device.measurement.timeout_s,
                                         hello_timeout_s=hello_timeout(self.device))
                    self.client = client
                    client.start()
                    value = work(self.device, client)
                    self.store.record_health(name, True)
                    return Outcome(name, value=value)
                except RETRYABLE as exc:
                    self._discard(client)
                    if self.stop.is_set():
                        break
                    if client is not None and client.measured > 0:  # a measurement since the last fault
                        failures = 0
                        self.store.record_health(name, True)
                    failures += 1
                    self.store.record_health(name, False, str(exc), self.policy.max_failures)
                    if failures >= self.policy.max_failures:
                        log.error("%s: marked unhealthy after %d faults in a row; skipping it", name, failures)
                        return Outcome(name, error=DeviceFailure(
                            f"{name}: marked unhealthy after {failures} faults in a row (last: {exc})"))
                    delay = self.policy.delay(failures)
                    log.warning("%s — fault %d of %d in a row, restarting in %.1f s",
                                exc, failures, self.policy.max_failures, delay)
                    self.stop.wait(delay)
                except HwnasError as exc:
                    self._discard(client)
                    _report(exc)
                    return Outcome(name, error=exc)
                except OSError as exc:
                    if exc.errno not in NO_SPACE:
                        raise
                    self._discard(client)
                    error = StoreFull(f"{name}: no space left on the device for {exc.filename or 'the workspace'}")
                    _report(error)
                    return Outcome(name, error=error)
            return Outcome(name, error=DeviceFailure(f"{name}: interrupted"))
        finally:
            self._close()

    def _discard(self, client: AgentClient | None) -> None:
        """Kill a failed agent (a dead connection is noticed and re-opened by the next attempt)."""
        self.client = None
        if client is not None:
            client.abort()

    def _close(self) -> None:
        client, self.client = self.client, None
        try:
            if client is not None:
                client.close()
        finally:
            self.transport.close()

    def abort(self) -> None:
        """Kill the device's agent now (from another thread, e.g. on Ctrl-C)."""
        client = self.client
        if client is not None:
            client.abort()


def _join_all(threads: list[threading.Thread], on_interrupt: Callable[[], None]) -> None:
    """Wait for every thread; on Ctrl-C call ``on_interrupt``, wait a little more, re-raise."""
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        on_interrupt()
        for thread in threads:
            thread.join(10.0)
        raise


def run(registry: Registry, devices: list[DeviceConfig], work: Callable[[DeviceConfig, AgentClient], T],
        store: Store | None = None, policy: FaultPolicy | None = None) -> list[Outcome[T]]:
    """Run ``work(device, client)`` on every device concurrently, surviving faults; outcomes in device order."""
    names = [d.name for d in devices]
    if len(set(names)) != len(names):  # callers deduplicate (hwnas.cli.common.devices); this is the guarantee
        raise ValueError(f"a device is listed twice in {names}: never two agents on one device")
    store = store or Store(registry.workspace, lock_timeout_s=registry.config.store_lock_timeout_s)
    stop = threading.Event()
    workers = [Worker(registry, d, store, policy or FaultPolicy(), stop) for d in devices]
    outcomes: list[Outcome[Any]] = [Outcome(device=d.name) for d in devices]

    def target(i: int) -> None:
        try:
            outcomes[i] = workers[i].run(work)
        except HwnasError as exc:  # e.g. the store locked or full while a fault was being recorded
            _report(exc)
            outcomes[i] = Outcome(devices[i].name, error=exc)
        except Exception as exc:  # a bug in work: keep it as this device's outcome, with the traceback logged
            log.exception("%s: unexpected error", devices[i].name)
            outcomes[i] = Outcome(devices[i].name, error=DeviceFailure(f"{devices[i].name}: {exc}"))

    threads = [threading.Thread(target=target, args=(i,), name=f"device-{d.name}", daemon=True)
               for i, d in enumerate(devices)]
    for thread in threads:
        thread.start()

    def interrupt() -> None:
        stop.set()
        for worker in workers:
            worker.abort()

    _join_all(threads, interrupt)
    return outcomes


def each(devices: list[DeviceConfig], fn: Callable[[DeviceConfig], R]) -> list[R]:
    """``fn(device)`` for every device, concurrently (one thread each); results in device order."""
    results: list[Any] = [None] * len(devices)

    def target(i: int) -> None:
        results[i] = fn(devices[i])

    threads = [threading.Thread(target=target, args=(i,), name=f"device-{d.name}", daemon=True)
               for i, d in enumerate(devices)]
    for thread in threads:
        thread.start()
    _join_all(threads, lambda: None)
    return results
