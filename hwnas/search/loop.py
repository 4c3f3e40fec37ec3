"""Hardware in the loop: measure the search's finalists on the device, refit its cost model, search on.

::

    from hwnas import config, spaces
    from hwnas.search.accuracy import parse_accuracy
    from hwnas.search.loop import search_with_hardware
    from hwnas.store import Store

    reg = config.load("hardware.yaml")
    space = spaces.get("nasbench201")
    out = search_with_hardware(space, parse_accuracy("nasbench201:cifar10_valid", space),
                               registry=reg, store=Store(reg.workspace), devices=[reg.device("local")],
                               evaluations=1000, budgets_ms=(0.5, 1.0), seed=0, rounds=3)
    out.search.devices["local"].best      # Best(budget_ms, arch, ..., latency_ms (predicted), measured_ms)
    out.rounds                            # predicted vs measured for every finalist in every round
    out.to_json()                         # DESIGN.md's `search --json` object plus "rounds"

Each device in ``devices`` is searched through its saved cost model
(:func:`hwnas.costmodel_api.load_cost_model`'s file in the registry's workspace; BadInput
naming ``hwnas costmodel fit`` when it has none). ``latencies`` adds objectives that are
not measured (a measured table, a transfer model). One round:

1. the search (:class:`hwnas.search.Search`) runs to its round's evaluation budget;
2. each measured device's *finalists* — its front (at most ``finalists`` points, spread
   along it) and its best architecture per budget — are measured on the device with the
   normal sweep (fleet, protocol, store: what is stored is not measured again, so each
   finalist is stored once);
3. a finalist *agrees* when ``|measured - predicted| <= max(std, tolerance * predicted)``
   (``std``: the cost model's bootstrap spread). A device with a disagreeing finalist gets
   its cost model refitted on every stored network of the space (the measurements have
   joined its training data by being stored) and saved (:func:`hwnas.refine.fit_and_save`);
4. the search goes on from its population and archive with the refitted models
   (``Search.set_latencies`` + ``extend``): fronts and bests are recomputed with the new
   predictions, and the next round's evaluations explore from there.

It stops when every finalist agrees or after ``rounds`` rounds. The evaluation budget is
shared: every round after the first may spend ``round_evaluations`` (default 10% of
``evaluations``), the first spends the rest, so the total never exceeds ``evaluations``.
The reported result is the last round's search, its finalists' ``measured_ms`` filled in.

With ``state_dir`` everything is resumable: the search state (``search-state.json``,
written after every step), ``loop.json`` (settings and the finished rounds, written after
each round) and a copy of the cost model each round searched with
(``models/round-N/<device>.json``), so a resumed round uses the same predictions as the
interrupted one. Files are written atomically.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas import costmodel_api as api
from hwnas import refine, sweep
from hwnas.config import DeviceConfig, Registry
from hwnas.errors import BadInput
from hwnas.search.accuracy import AccuracyObjective, CachedAccuracy
from hwnas.search.algorithms import ALGORITHMS
from hwnas.search.engine import Search, check_budgets
from hwnas.search.latency import CostModelLatency, LatencyObjective
from hwnas.search.result import SearchResult
from hwnas.spaces import Space
from hwnas.store import Store
from lut.atomic import write_text_atomic

LOOP_FILE = "loop.json"
LOOP_VERSION = 1
ROUND_SHARE = 0.1
"""Default share of the evaluation budget each round after the first may spend."""


@dataclass
class HardwareSearchResult:
    """A search with hardware in the loop: the last round's result and every round's comparison."""

    search: SearchResult
    rounds: list[dict[str, Any]] = field(default_factory=list)
    exit_code: int = 0                       # 1 when a device failed while measuring (the rest went on)

    def to_json(self) -> dict[str, Any]:
        """DESIGN.md's ``search --json`` object, each entry with its ``accuracy_source``, plus ``rounds``."""
        out = self.search.to_json()
        for device in out["devices"]:
            for entry in [*device["front"], *device["best"]]:
                entry.setdefault("accuracy_source", self.search.accuracy_source)
        out["rounds"] = self.rounds
        return out


def round_budgets(evaluations: int, rounds: int, round_evaluations: int | None = None) -> list[int]:
    """Cumulative evaluation budget at the end of each round (the last is ``evaluations``)."""
    rounds = max(rounds, 1)
    step = max(1, round(evaluations * ROUND_SHARE)) if round_evaluations is None else int(round_evaluations)
    first = evaluations - (rounds - 1) * step
    if step < 0 or first < 1:
        raise BadInput(f"{evaluations} evaluations cannot be shared by {rounds} rounds of {step} each; "
                       "give more evaluations or fewer rounds")
    return [first + r * step for r in range(rounds)]


def choose_finalists(search: SearchResult, device: str, limit: int | None = None) -> list[str]:
    """A device's finalists: its front (at most ``limit`` points, evenly spread, both ends kept) and
    its best architecture per budget, each once, front first."""
    dev = search.devices[device]
    front = [c.arch for c in dev.front]
    if limit is not None and len(front) > limit:
        picks = np.unique(np.round(np.linspace(0, len(front) - 1, limit)).astype(int))
        front = [front[i] for i in picks]
    return list(dict.fromkeys([*front, *(b.arch for b in dev.best if b.arch is not None)]))


def agrees(predicted: float, std: float, measured: float, tolerance: float) -> bool:
    """True when a measurement lies within the prediction's uncertainty: ``max(std, tolerance * predicted)``."""
    return abs(measured - predicted) <= max(std, tolerance * predicted)


class _LoopState:
    """``loop.json``: the settings a state directory belongs to and the rounds it has finished."""

    def __init__(self, state_dir: str | Path | None, settings: dict[str, Any]) -> None:
        self.path = Path(state_dir) / LOOP_FILE if state_dir is not None else None
        self.settings = settings
        self.rounds: list[dict[str, Any]] = []
        self.finished = False
        if self.path is not None and self.path.is_file():
            try:
                saved = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise BadInput(f"{self.path}: unreadable search state ({exc})") from None
            if saved.get("version") != LOOP_VERSION or saved.get("settings") != settings:
                diff = sorted(k for k in settings if (saved.get("settings") or {}).get(k) != settings[k])
                raise BadInput(f"{self.path.parent} holds a search with other settings ({', '.join(diff) or 'version'}"
                               "); give the same arguments to resume it, or another --out")
            self.rounds, self.finished = saved["rounds"], bool(saved.get("finished"))

    def save(self) -> None:
        """Write ``loop.json`` atomically (nothing without a state directory)."""
        if self.path is not None:
            write_text_atomic(self.path, json.dumps({"version": LOOP_VERSION, "settings": self.settings,
                                                     "rounds": self.rounds, "finished": self.finished}, indent=1))


def cost_model_file(registry: Registry, device: DeviceConfig, space: Space) -> Path:
    """The saved cost model of a device for ``space``; BadInput naming the command that fits one."""
    path = api.model_path(registry.workspace, device.name, device.backend, space.name)
    if not path.is_file():
        raise BadInput(f"no {space.name} cost model for device {device.name!r} at {path}; run `hwnas costmodel fit "
                       f"--device {device.name} --space {space.name} --config {registry.path}` first")
    return path


def _device_latency(registry: Registry, device: DeviceConfig, space: Space, state_dir: str | Path | None,
                    round_no: int) -> CostModelLatency:
    """The cost model a round searches with: its copy in the state directory when there is one (a
    resumed round), else the workspace's saved model (copied there first)."""
    path = cost_model_file(registry, device, space)
    if state_dir is not None:
        copy = Path(state_dir) / "models" / f"round-{round_no}" / f"{device.name}.json"
        if not copy.is_file():
            write_text_atomic(copy, path.read_text(encoding="utf-8"))
        path = copy
    return CostModelLatency(api.load(path, space.name, device.name, device.backend), device.name)


def _compare(device: DeviceConfig, latency: CostModelLatency, archs: list[str], stored_before: set[str],
             measured: refine.Measured, tolerance: float) -> dict[str, Any]:
    """One device's finalists in one round: predicted vs measured, agreement, and the median error."""
    pred, std = latency.predict(archs, return_std=True)
    rows = []
    for arch, p, s in zip(archs, pred.tolist(), std.tolist()):
        m = measured.latency_ms.get(arch)
        rows.append({"arch": arch, "predicted_ms": p, "std_ms": s, "measured_ms": m,
                     "error_pct": None if m is None else 100.0 * (p - m) / m,
                     "agrees": None if m is None else agrees(p, s, m, tolerance),
                     "measured_before": arch in stored_before})
    errors = [abs(r["error_pct"]) for r in rows if r["error_pct"] is not None]
    return {"device": device.name, "finalists": rows, "newly_measured": measured.newly_measured,
            "median_abs_error_pct": float(np.median(errors)) if errors else None,
            "agree": all(r["agrees"] is not False for r in rows), "error": measured.error, "refit": None}


def _median_error(latency: LatencyObjective, finalists: Sequence[Mapping[str, Any]]) -> float | None:
    """Median |predicted - measured| / measured (percent) of ``latency`` over the measured finalists."""
    done = [f for f in finalists if f["measured_ms"] is not None]
    if not done:
        return None
    pred = latency.predict([f["arch"] for f in done])
    measured = np.array([f["measured_ms"] for f in done])
    return float(100.0 * np.median(np.abs(pred - measured) / measured))


def search_with_hardware(space: Space, accuracy: AccuracyObjective | CachedAccuracy, *,
                         registry: Registry | None = None, store: Store | None = None,
                         devices: Sequence[DeviceConfig] = (), latencies: Mapping[str, LatencyObjective] | None = None,
                         algorithm: str = "nsga2", evaluations: int = 1000, budgets_ms: Sequence[float] = (),
                         seed: int = 0, rounds: int = 3, tolerance: float = 0.05, finalists: int | None = None,
                         round_evaluations: int | None = None, sessions: int | None = None,
                         state_dir: str | Path | None = None, params: Mapping[str, Any] | None = None,
                         quiet: bool = False,
                         on_progress: Callable[[int, int], None] | None = None) -> HardwareSearchResult:
    """Search ``space`` on ``devices`` (their cost models) and ``latencies``, measuring each device's
    finalists and refitting its model for up to ``rounds`` rounds (0: predictions only); see the
    module docstring. ``sessions`` overrides the devices' sessions per measured network."""
    latencies = dict(latencies or {})
    clash = [d.name for d in devices if d.name in latencies]
    if clash:
        raise BadInput(f"{clash[0]!r} is both a measured device and another latency objective")
    if devices and (registry is None or store is None):
        raise ValueError("measuring on devices needs the registry and the store")
    if algorithm not in ALGORITHMS:
        raise BadInput(f"unknown search algorithm {algorithm!r} (known: {', '.join(sorted(ALGORITHMS))})")
    budgets_ms = check_budgets(budgets_ms)
    measuring = rounds > 0 and bool(devices)
    budgets = round_budgets(evaluations, rounds if measuring else 1, round_evaluations)
    settings = {"space": space.name, "accuracy": accuracy.name, "algorithm": algorithm, "evaluations": evaluations,
                "budgets_ms": [float(b) for b in budgets_ms], "seed": seed, "rounds": rounds, "tolerance": tolerance,
                "finalists": finalists, "round_budgets": budgets, "devices": [d.name for d in devices],
                "latencies": sorted(latencies), "params": dict(params or {})}
    state = _LoopState(state_dir, settings)
    done = len(state.rounds)
    current = done + 1 if measuring and not state.finished else max(done, 1)

    def objectives(round_no: int) -> dict[str, LatencyObjective]:
        return {**{d.name: _device_latency(registry, d, space, state_dir, round_no) for d in devices}, **latencies}

    lat = objectives(current)
    search = Search.load(state_dir, space, accuracy, lat) if state_dir is not None else None
    if search is None:
        search = Search(space, accuracy, lat, algorithm=algorithm, evaluations=budgets[0], budgets_ms=budgets_ms,
                        seed=seed, params=params)
        state.save()
    elif search.evaluations < budgets[current - 1]:  # stopped between a round's end and the next one's start
        search.extend(budgets[current - 1] - search.evaluations)
    result = search.run(on_progress=on_progress, state_dir=state_dir)
    exit_code = 0
    while measuring and not state.finished:
        record = {"round": current, "evaluations": result.evaluations, "devices": []}
        for device in devices:
            archs = choose_finalists(result, device.name, finalists)
            before = store.signatures(device.name, device.backend)
            stored = {a for a in archs if sweep.network_signature(space.name, a) in before}
            got = refine.measure_archs(registry, device, store, space, archs, sessions, seed, quiet)
            exit_code = max(exit_code, got.exit_code)
            entry = _compare(device, lat[device.name], archs, stored, got, tolerance)
            if not entry["agree"]:
                fit = refine.fit_and_save(registry, device, store, space, seed=seed, quiet=quiet)
                entry["refit"] = {k: fit[k] for k in ("n_train", "path", "training_sha256")}
                entry["refit"]["median_abs_error_pct"] = _median_error(
                    CostModelLatency(api.load(fit["path"], space.name, device.name, device.backend), device.name),
                    entry["finalists"])
            record["devices"].append(entry)
        record["agree"] = all(d["agree"] for d in record["devices"])
        state.rounds.append(record)
        state.finished = record["agree"] or current >= len(budgets)
        state.save()
        if state.finished:
            break
        current += 1
        lat = objectives(current)
        search.set_latencies(lat)
        search.extend(budgets[current - 1] - search.evaluations)
        result = search.run(on_progress=on_progress, state_dir=state_dir)
    if measuring:
        _fill_measured(result, state.rounds[-1])
    return HardwareSearchResult(result, state.rounds, exit_code)


def _fill_measured(result: SearchResult, record: Mapping[str, Any]) -> None:
    """Set ``measured_ms`` of the result's front and best entries from a round's measurements."""
    for entry in record["devices"]:
        measured = {f["arch"]: f["measured_ms"] for f in entry["finalists"]}
        dev = result.devices[entry["device"]]
        for item in [*dev.front, *dev.best]:
            if item.arch is not None:
                item.measured_ms = measured.get(item.arch)
