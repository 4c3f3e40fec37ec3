"""Latency objectives: one protocol for everything a search can ask "how fast is this on device X?".

Every objective has a ``name`` (the device, or the table file's stem) and a batched
``predict(archs, return_std=False)`` taking architecture strings and returning a float64
numpy array of milliseconds (and, with ``return_std``, the prediction's standard deviation
in ms: 0 where the source is exact). Predictions are cheap; the search does not count them.
The objectives here also take the space's choice codes (an ``(n, genes)`` int array,
:meth:`hwnas.spaces.Space.to_choices`) instead of strings and say so with
``accepts_choices = True``; the search then skips parsing strings.

* :class:`CostModelLatency` — a device's fitted cost model (:func:`hwnas.load_cost_model`);
  std = spread of its bootstrap ensemble.
* :class:`LutLatency` — a block LUT (:meth:`lut.table.LatencyTable.predictor`) with the
  table's calibrated per-network overhead; std = a stated relative error (default 0).
* :class:`TransferLatency` — the few-shot transfer model of ``hwnas costmodel transfer``
  (:class:`cost_models.transfer.TransferRegressor`) as an object; std = its model-averaged
  predictive spread.
* :class:`TableLatency` — measured latencies from a CSV ``arch,latency_ms``. An architecture
  the table lacks has latency NaN: the search treats NaN as *infeasible* (never spends an
  accuracy evaluation on it, never reports it). ``support`` lists the table's architectures so
  a search against tables only starts from them.
"""
from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from cost_models.transfer import TransferInputError, TransferRegressor, read_prior, read_target
from hwnas.errors import BadInput
from hwnas.spaces import Space
from lut.table import LatencyTable


@runtime_checkable
class LatencyObjective(Protocol):
    """Batched latency predictions (ms) for architecture strings, optionally with their std (ms)."""

    name: str

    def predict(self, archs: Sequence[str],
                return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Latency (ms) of each architecture; with ``return_std`` also its standard deviation (ms)."""


def _with_std(ms: np.ndarray, std: np.ndarray | None, return_std: bool):
    ms = np.asarray(ms, dtype=float)
    if not return_std:
        return ms
    return ms, (np.zeros_like(ms) if std is None else np.asarray(std, dtype=float))


class CostModelLatency:
    """A device's fitted cost model (:class:`hwnas.costmodel_api.CostModel`) as a latency objective."""

    accepts_choices = True

    def __init__(self, model, name: str) -> None:
        self.model = model
        self.name = name

    @classmethod
    def load(cls, device: str, space: str, config: str | Path = "hardware.yaml",
             path: str | Path | None = None) -> CostModelLatency:
        """The saved cost model of ``device`` (BadInput naming ``hwnas costmodel fit`` when there is none)."""
        from hwnas.costmodel_api import load_cost_model

        return cls(load_cost_model(device=device, space=space, config=config, path=path), device)

    def predict(self, archs: Sequence[str], return_std: bool = False):
        """Predicted latency (ms) and, with ``return_std``, the bootstrap spread (ms)."""
        out = self.model.predict(archs if isinstance(archs, np.ndarray) else list(archs), return_std=return_std)
        return _with_std(*out, True) if return_std else _with_std(out, None, False)


class LutLatency:
    """A block LUT's prediction: the sum of an architecture's blocks plus the table's calibrated
    overhead for the space (none when the table was never calibrated)."""

    accepts_choices = True

    def __init__(self, table: LatencyTable, space: Space, name: str, relative_std: float = 0.0) -> None:
        self.space = space
        self.name = name
        self.relative_std = relative_std
        self.predictor = table.predictor(space.layout())

    @classmethod
    def from_store(cls, store, device: str, backend: str, space: Space,
                   relative_std: float = 0.0) -> LutLatency:
        """The device's LUT from the store, its overhead calibrated on the stored networks (>= 5)."""
        from hwnas import lut_store

        table = lut_store.table(store, device, backend, space)
        lut_store.calibrate(table, space, lut_store.networks(store, device, backend, space.name))
        return cls(table, space, device, relative_std)

    def predict(self, archs: Sequence[str], return_std: bool = False):
        """Calibrated LUT latency (ms); std = ``relative_std`` times it."""
        try:
            codes = (self.space.encode_choices(archs) if isinstance(archs, np.ndarray)
                     else self.space.encode(list(archs)))
            ms = self.predictor.predict(codes)
        except ValueError as exc:
            raise BadInput(f"{self.name}: {exc}") from None
        return _with_std(ms, self.relative_std * ms, return_std)


class TransferLatency:
    """The few-shot transfer model (:class:`cost_models.transfer.TransferRegressor`, nasbench201):
    a new device's latency from ``k`` of its measurements and other devices' latencies as a prior."""

    accepts_choices = True  # the (n, 6) op codes

    def __init__(self, model: TransferRegressor, name: str) -> None:
        self.model = model
        self.name = name

    @classmethod
    def fit(cls, target_archs: Sequence, target_ms: Sequence[float], prior_archs: Sequence,
            prior_ms: np.ndarray, name: str) -> TransferLatency:
        """Fit on the target's measurements and the ``(len(prior_archs), sources)`` prior latencies
        (``nan`` where a source lacks one). Architectures: strings, op tuples or op codes."""
        try:
            return cls(TransferRegressor().fit(target_archs, target_ms, prior_archs, prior_ms), name)
        except ValueError as exc:
            raise BadInput(f"{name}: cannot fit the transfer model: {exc}") from None

    @classmethod
    def from_csv(cls, prior: str | os.PathLike, target: str | os.PathLike,
                 name: str | None = None) -> TransferLatency:
        """Fit from the PRIOR and TARGET CSVs of ``hwnas costmodel transfer`` (same reading, same model)."""
        try:
            prior_archs, _, prior_ms = read_prior(prior)
            target_archs, target_ms = read_target(target)
        except TransferInputError as exc:
            raise BadInput(str(exc)) from None
        return cls.fit(target_archs, target_ms, prior_archs, prior_ms, name or Path(target).stem)

    def predict(self, archs: Sequence[str], return_std: bool = False):
        """Transferred latency (ms) and, with ``return_std``, its predictive std (ms)."""
        try:
            out = self.model.predict(archs if isinstance(archs, np.ndarray) else list(archs), return_std=return_std)
        except ValueError as exc:
            raise BadInput(f"{self.name}: {exc}") from None
        return _with_std(*out, True) if return_std else _with_std(out, None, False)


class TableLatency:
    """Measured latencies of listed architectures; an unlisted one is NaN (infeasible to the search)."""

    accepts_choices = True

    def __init__(self, latency_ms: dict[str, float], space: Space, name: str) -> None:
        self.space = space
        self.name = name
        self.latency_ms = dict(latency_ms)

    @property
    def support(self) -> list[str]:
        """The table's architectures (canonical strings), in file order."""
        return list(self.latency_ms)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, space: Space, column: str = "latency_ms",
                 name: str | None = None) -> TableLatency:
        """Read a CSV with columns ``arch`` and ``column``; BadInput names the file and line of an
        unparseable or duplicate architecture, a missing column, or a NaN/non-positive/non-numeric value."""
        path = Path(path)
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                header = [h.strip() for h in reader.fieldnames or []]
                missing = [c for c in ("arch", column) if c not in header]
                if missing:
                    raise BadInput(f"{path}, line 1: missing column(s) {', '.join(missing)} "
                                   f"(found: {', '.join(header) or 'none'}).")
                values: dict[str, float] = {}
                lines: dict[str, int] = {}
                for row in reader:
                    row = {(k or "").strip(): v for k, v in row.items()}
                    line = reader.line_num
                    arch = cls._arch(path, line, space, row.get("arch"))
                    if arch in lines:
                        raise BadInput(f"{path}, line {line}: duplicate architecture {arch!r} "
                                       f"(first on line {lines[arch]}).")
                    values[arch], lines[arch] = cls._value(path, line, column, row.get(column)), line
        except OSError as exc:
            raise BadInput(f"{path}: cannot read the latency table ({exc.strerror or exc}).") from None
        except UnicodeDecodeError:
            raise BadInput(f"{path}: not a UTF-8 text CSV file.") from None
        if not values:
            raise BadInput(f"{path}: no architectures in the latency table.")
        return cls(values, space, name or path.stem)

    @staticmethod
    def _arch(path: Path, line: int, space: Space, cell: str | None) -> str:
        if cell is None or not cell.strip():
            raise BadInput(f"{path}, line {line}: missing architecture string.")
        try:
            return space.check(cell.strip())
        except ValueError as exc:
            raise BadInput(f"{path}, line {line}: {exc}.") from None

    @staticmethod
    def _value(path: Path, line: int, column: str, cell: str | None) -> float:
        try:
            value = float((cell or "").strip())
        except ValueError:
            raise BadInput(f"{path}, line {line}: {column} {cell!r} is not a number.") from None
        if not (math.isfinite(value) and value > 0):
            raise BadInput(f"{path}, line {line}: {column} must be a positive latency in ms, got {cell!r}.")
        return value

    def predict(self, archs: Sequence[str], return_std: bool = False):
        """The table's latency (ms) of each architecture, NaN where the table has none; std 0."""
        if isinstance(archs, np.ndarray):
            archs = self.space.from_choices(archs)
        out = np.empty(len(archs))
        for i, arch in enumerate(archs):
            value = self.latency_ms.get(arch)
            if value is None:
                try:
                    value = self.latency_ms.get(self.space.check(arch), math.nan)
                except ValueError:
                    value = math.nan
            out[i] = value
        return _with_std(out, None, return_std)
