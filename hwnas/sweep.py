"""Profiling sweeps: measure every block a space needs, or sampled whole networks, resumably.

A sweep lists what a space needs as (signature, how to build it), drops what each
device already has in the store (``Store.signatures(device, backend)``), builds the
missing ONNX models into the workspace cache ``<workspace>/onnx/<space>/`` (atomic
writes, deterministic bytes: a cached file is reused as is) and measures them on all
devices in parallel with :func:`hwnas.fleet.run`. Each session is stored as it arrives
(session key :data:`hwnas.measure.SWEEP_SESSIONS`) and each result as soon as its window
of interleaved sessions is done, so a re-run of an interrupted sweep measures only the
sessions that are missing and every signature ends up stored once.

Block items carry the signature key; network items the signature
``net:<space>:<arch>`` (with ``item='network'``, ``space`` and ``arch`` set). Every
block sweep also measures :data:`lut.table.BASELINE`, the empty model whose latency is
one inference call's fixed cost (the LUT subtracts it from every block).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwnas import fleet
from hwnas.agent_client import file_sha256
from hwnas.config import DeviceConfig, Registry
from hwnas.errors import BadInput
from hwnas.measure import SWEEP_SESSIONS, Item, measure_items
from hwnas.progress import bar, window_sessions
from hwnas.spaces import Space
from hwnas.store import Store
from lut import builders
from lut.signature import parse
from lut.table import BASELINE


@dataclass(frozen=True)
class Need:
    """One thing a sweep needs measured: its signature and how to write its ONNX file."""

    signature: str
    item: str                       # 'block' | 'network'
    space: str
    arch: str | None
    path: Path
    write: Callable[[Path], Path]

    def to_item(self) -> Item:
        """The measurable Item (writes the ONNX file first if the cache lacks it)."""
        path = self.write(self.path)
        return Item(path=path, sha256=file_sha256(path), signature=self.signature, item=self.item,
                    space=self.space, arch=self.arch, source=str(path))


@dataclass
class SweepReport:
    """What a sweep did on one device."""

    device: str
    backend: str
    space: str
    what: str
    needed: int
    stored_before: int
    measured: int = 0
    error: str | None = None
    exit_code: int = 0
    signatures: list[str] = field(default_factory=list)


def network_signature(space: str, arch: str) -> str:
    """The store signature of a whole network of a space."""
    return f"net:{space}:{arch}"


def _file_name(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24] + ".onnx"


def block_needs(space: Space, resolutions: Sequence[int] | None, workspace: Path) -> list[Need]:
    """The baseline plus every distinct block of ``space`` at ``resolutions``."""
    folder = workspace / "onnx" / space.name / "blocks"
    try:
        sigs = [parse(BASELINE), *space.all_blocks(resolutions)]
    except ValueError as exc:
        raise BadInput(f"--resolution: {exc}") from None
    return [Need(sig.key(), "block", space.name, None, folder / _file_name(sig.key()),
                 lambda path, sig=sig: builders.write_block(sig, path)) for sig in sigs]


def network_needs(space: Space, archs: Sequence[str], workspace: Path) -> list[Need]:
    """Whole networks of ``space`` (architecture strings, canonicalised)."""
    folder = workspace / "onnx" / space.name / "networks"
    needs = []
    for arch in archs:
        try:
            arch = space.check(arch)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        needs.append(Need(network_signature(space.name, arch), "network", space.name, arch,
                          folder / _file_name(arch), lambda path, arch=arch: space.export_onnx(arch, path)))
    return needs


def sample_archs(space: Space, num: int, seed: int, resolutions: Sequence[int] | None) -> list[str]:
    """Up to ``num`` architectures sampled with a seeded Generator (same seed, same list); a
    duplicate draw is dropped, not redrawn."""
    rng = np.random.default_rng(seed)
    return list(dict.fromkeys(space.sample(num, rng, resolutions=list(resolutions or space.default_resolutions))))


def check_backend(registry: Registry, devices: Sequence[DeviceConfig], backend: str | None) -> None:
    """BadInput when ``--backend`` differs from a device's configured runtime."""
    for device in devices:
        if backend and backend != device.backend:
            raise BadInput(f"device {device.name!r} runs {device.backend}, not {backend}; to profile it with "
                           f"{backend}, register an entry with `backend: {backend}` in {registry.path}")


def run(registry: Registry, devices: Sequence[DeviceConfig], store: Store, needs: Sequence[Need],
        run_id: str, what: str, space: str, sessions: int | None = None, per_node: bool = False,
        quiet: bool = False, seed: int = 0, times: int = 1) -> list[SweepReport]:
    """Measure on each device what it lacks of ``needs`` (a need with fewer than ``times`` measurements
    is measured once more); returns one report per device."""
    reports, pending = [], {}
    for device in devices:
        stored = store.signature_counts(device.name, device.backend)
        missing = [n for n in needs if stored.get(n.signature, 0) < times]
        pending[device.name] = missing
        reports.append(SweepReport(device.name, device.backend, space, what, len(needs),
                                   len(needs) - len(missing)))
    wanted = {n.signature: n for name in pending for n in pending[name]}
    items = {}
    with bar(len(wanted), "building ONNX", quiet, unit="model") as progress:
        for sig, need in wanted.items():
            items[sig] = need.to_item()
            progress.update(1)
    order = np.random.default_rng(seed).permutation(len(needs))  # interleave the space's parts
    bars = {d.name: bar(len(pending[d.name]), f"{d.name} {space} {what}", quiet, unit=what[:-1], position=i)
            for i, d in enumerate(devices)}

    def work(device: DeviceConfig, client) -> list[str]:
        mine = {n.signature for n in pending[device.name]}
        todo = [items[needs[i].signature] for i in order if needs[i].signature in mine]
        done = measure_items(device, client, store, todo, run_id, sessions=sessions, seed=seed, per_node=per_node,
                             on_done=lambda item, m: bars[device.name].update(1),
                             on_session=window_sessions(bars[device.name]), session_key=SWEEP_SESSIONS)
        return [m.signature for m in done]

    active = [d for d in devices if pending[d.name]]
    outcomes = {o.device: o for o in fleet.run(registry, active, work, store=store)} if active else {}
    for progress in bars.values():
        progress.close()
    for report in reports:
        outcome = outcomes.get(report.device)
        if outcome is None:
            continue
        report.signatures = outcome.value or []
        counts = store.signature_counts(report.device, report.backend)
        now = {n.signature for n in needs if counts.get(n.signature, 0) >= times}
        report.measured = len(now) - report.stored_before
        if outcome.error:
            report.error, report.exit_code = str(outcome.error), outcome.error.exit_code
    return reports
