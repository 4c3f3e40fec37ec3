"""Accuracy objectives of the search: one protocol, several sources, one cache that counts.

An :class:`AccuracyObjective` scores a batch of architecture strings (higher is better;
percentages for tables) and describes one architecture's score with :meth:`details`
(extra report fields: the matching test accuracy, whether a value was predicted, which
data a proxy saw). The search wraps its objective in :class:`CachedAccuracy`, which
never evaluates an architecture twice and counts the distinct ones evaluated — the
search budget is counted in accuracy evaluations, as NAS benchmarks report it.

Sources, as ``--accuracy SOURCE`` names them (:func:`parse_accuracy`):

* ``nasbench201:COLUMN`` — NAS-Bench-201's real accuracies, shipped in the package
  (``hwnas/data/nasbench201_accuracy.csv``); search on a ``*_valid`` column, the
  matching ``*_test`` column is reported. A ``*_test`` column is refused: choosing an
  architecture by its test accuracy leaks the test set into the choice.
* ``table:PATH[:COLUMN]`` — a CSV with ``arch`` and an accuracy column; exact lookup, and
  an accuracy predictor fitted on the table's rows for architectures it lacks
  (:mod:`hwnas.search.predictor`, saved as JSON).
* ``proxy:NAME[:PATH]`` — a zero-cost proxy (:mod:`hwnas.search.proxies`): ``synflow``,
  ``naswot``, ``grad_norm``, ``snip``, ``params``, ``flops``; PATH is the user's batch
  (``.npy`` of images, or ``.npz`` with ``x`` and ``y``), default a fixed load_digits batch.
* ``supernet[:PATH]`` — the weight-sharing supernet's held-out accuracy (``hwnas.supernet``).
* ``python:MODULE:FUNCTION`` — a user callable ``arch -> float`` (the API also takes a function).
"""
from __future__ import annotations

import csv
import importlib
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hwnas.errors import BadInput

SOURCE_FORMS = ("nasbench201:COLUMN", "table:PATH[:COLUMN]", "proxy:NAME[:PATH]", "supernet[:PATH]",
                "python:MODULE:FUNCTION")
"""The ``--accuracy`` forms :func:`parse_accuracy` knows (listed in its error message)."""


@runtime_checkable
class AccuracyObjective(Protocol):
    """What the search asks of an accuracy source."""

    name: str
    """The source as the command line names it, e.g. ``nasbench201:cifar10_valid``."""
    has_weights: bool
    """True only for sources that hold trained weights per architecture (the supernet)."""

    def evaluate(self, archs: Sequence[str]) -> np.ndarray:
        """Scores of ``archs`` (float array, higher is better)."""

    def details(self, arch: str) -> dict:
        """Extra report fields for one architecture, e.g. ``{"cifar10_test": 88.2}``."""


def _finite_scores(name: str, archs: Sequence[str], values: Any) -> np.ndarray:
    """``values`` as a float array of ``len(archs)`` finite scores; BadInput names the source and arch."""
    try:
        out = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise BadInput(f"accuracy source {name} returned something that is not a list of numbers "
                       f"({type(values).__name__}).") from None
    if out.shape[0] != len(archs):
        raise BadInput(f"accuracy source {name} returned {out.shape[0]} scores for {len(archs)} architectures.")
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise BadInput(f"accuracy source {name} returned {out[bad[0]]} (not a finite number) "
                       f"for architecture {archs[bad[0]]!r}.")
    return out


class CachedAccuracy:
    """Any :class:`AccuracyObjective`, evaluated at most once per architecture and counted.

    Architectures are canonicalised with ``space.check`` (so two spellings of one network
    share an entry); ``space`` defaults to the objective's ``space`` attribute, if any.
    ``evaluate`` is batched: the distinct architectures not yet cached go to the wrapped
    objective in one call. A lock makes concurrent calls safe (each arch still evaluated once).
    """

    def __init__(self, objective: AccuracyObjective, space: Any = None) -> None:
        self.objective = objective
        self.space = space if space is not None else getattr(objective, "space", None)
        self.name = objective.name
        self.has_weights = bool(getattr(objective, "has_weights", False))
        self.cache: dict[str, float] = {}
        """Canonical arch -> score of everything evaluated, in evaluation order (a resumed search
        may write earlier scores into it: they count as evaluations)."""
        self._lock = threading.Lock()

    @property
    def evaluations(self) -> int:
        """Distinct architectures evaluated so far (including any resumed or :meth:`preload` ed)."""
        return len(self.cache)

    @property
    def archive(self) -> dict[str, float]:
        """Every architecture evaluated, canonical string -> score (a copy, in evaluation order)."""
        with self._lock:
            return dict(self.cache)

    def canonical(self, arch: str) -> str:
        """The canonical form of ``arch`` in the space (BadInput names a malformed one)."""
        if self.space is None or arch in self.cache:
            return arch
        try:
            return self.space.check(arch)
        except ValueError as exc:
            raise BadInput(f"accuracy source {self.name}: {exc}") from None

    def evaluate(self, archs: Sequence[str]) -> np.ndarray:
        """Scores of ``archs``; architectures not yet cached are evaluated once, in one batch."""
        keys = [self.canonical(a) for a in archs]
        with self._lock:
            missing = list(dict.fromkeys(k for k in keys if k not in self.cache))
            if missing:
                scores = _finite_scores(self.name, missing, self.objective.evaluate(missing))
                self.cache.update(zip(missing, scores.tolist()))
            return np.array([self.cache[k] for k in keys], dtype=float)

    def details(self, arch: str) -> dict:
        """The wrapped objective's details of ``arch``."""
        return self.objective.details(self.canonical(arch))

    def preload(self, scores: Mapping[str, float]) -> None:
        """Add scores evaluated earlier (a resumed search's archive); they count as evaluations."""
        with self._lock:
            for arch, score in scores.items():
                self.cache.setdefault(self.canonical(arch), float(score))


class CallableAccuracy:
    """A user function ``arch -> float`` as an objective (``python:MODULE:FUNCTION``, or any callable)."""

    has_weights = False

    def __init__(self, function: Callable[[str], float], name: str | None = None) -> None:
        if not callable(function):
            raise BadInput(f"accuracy function {name or function!r} is not callable.")
        self.function = function
        self.name = name or f"python:{getattr(function, '__module__', '?')}:{getattr(function, '__qualname__', '?')}"

    def evaluate(self, archs: Sequence[str]) -> np.ndarray:
        """The function's value for each arch; an exception or a non-number is BadInput naming it."""
        values = []
        for arch in archs:
            try:
                value = float(self.function(arch))
            except (TypeError, ValueError) as exc:
                raise BadInput(f"accuracy function {self.name} did not return a number for {arch!r}: {exc}") from exc
            except BadInput:
                raise
            except Exception as exc:  # a user's function may raise anything: report it as their error
                raise BadInput(f"accuracy function {self.name} raised {type(exc).__name__} "
                               f"for {arch!r}: {exc}") from exc
            values.append(value)
        return _finite_scores(self.name, archs, values)

    def details(self, arch: str) -> dict:
        """Nothing beyond the score."""
        return {}


def load_callable(target: str) -> CallableAccuracy:
    """The objective of ``MODULE:FUNCTION`` (``FUNCTION`` may be dotted); BadInput names what failed."""
    name = f"python:{target}"
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise BadInput(f"--accuracy {name}: expected python:MODULE:FUNCTION, e.g. python:my_scores:accuracy.")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInput(f"--accuracy {name}: cannot import module {module_name!r} ({exc}; "
                       "is its directory on PYTHONPATH?).") from exc
    except Exception as exc:  # importing user code runs it
        raise BadInput(f"--accuracy {name}: importing module {module_name!r} raised "
                       f"{type(exc).__name__}: {exc}.") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BadInput(f"--accuracy {name}: module {module_name!r} has no attribute {attr!r}.")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BadInput(f"--accuracy {name}: {attr!r} in module {module_name!r} is not callable.")
    return CallableAccuracy(obj, name)


# ------------------------------------------------------------------------ NAS-Bench-201

NASBENCH201_CSV = "data/nasbench201_accuracy.csv"
"""The shipped NAS-Bench-201 table, relative to the ``hwnas`` package."""


def nasbench201_table() -> tuple[list[str], dict[str, np.ndarray]]:
    """The shipped NAS-Bench-201 accuracies: (arch strings, column -> values in row order)."""
    with resources.files("hwnas").joinpath(NASBENCH201_CSV).open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    arch_col = header.index("arch")
    columns = {c: np.array([float(r[i]) for r in rows]) for i, c in enumerate(header)
               if c not in ("arch", "nb201_index")}
    return [r[arch_col] for r in rows], columns


class NasBench201Accuracy:
    """NAS-Bench-201's real accuracy in ``column`` (a ``*_valid`` one); details report the ``*_test`` twin."""

    has_weights = False

    def __init__(self, column: str, space: Any) -> None:
        archs, columns = nasbench201_table()
        valid = sorted(c for c in columns if c.endswith("_valid"))
        if column.endswith("_test") and column in columns:
            raise BadInput(f"--accuracy nasbench201:{column}: searching on a test column leaks the test set "
                           f"into the choice; search on {column[:-5]}_valid (its _test twin is reported).")
        if column not in valid:
            raise BadInput(f"--accuracy nasbench201:{column}: unknown column (known: {', '.join(valid)}).")
        if getattr(space, "name", None) != "nasbench201":
            raise BadInput(f"--accuracy nasbench201:{column} needs --space nasbench201 "
                           f"(got {getattr(space, 'name', space)!r}).")
        self.name = f"nasbench201:{column}"
        self.space = space
        self.column = column
        self.test_column = column[: -len("_valid")] + "_test"
        self._row = {a: i for i, a in enumerate(archs)}
        self._valid = columns[column]
        self._test = columns[self.test_column]

    def _rows(self, archs: Sequence[str]) -> np.ndarray:
        rows = []
        for arch in archs:
            try:
                rows.append(self._row[self.space.check(arch)])
            except ValueError as exc:
                raise BadInput(f"accuracy source {self.name}: {exc}") from None
        return np.array(rows, dtype=np.int64)

    def evaluate(self, archs: Sequence[str]) -> np.ndarray:
        """The ``*_valid`` accuracies (percent) of ``archs``."""
        return self._valid[self._rows(archs)]

    def details(self, arch: str) -> dict:
        """``{"<dataset>_test": percent}`` of ``arch``."""
        return {self.test_column: float(self._test[self._rows([arch])[0]])}


# ---------------------------------------------------------------------------------- table

INDEX_COLUMNS = ("nb201_index",)
"""Numeric columns of an accuracy table that are indices, never the default accuracy column."""


def _read_table(path: Path, column: str | None, space: Any) -> tuple[str, dict[str, float]]:
    """(accuracy column, canonical arch -> value) of an accuracy CSV; BadInput names file and line."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, restval="")
            header = [h.strip() for h in (reader.fieldnames or [])]
            rows = [(reader.line_num, {(k or "").strip(): v for k, v in row.items()}) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"{path}: cannot read the accuracy table ({exc}).") from None
    if "arch" not in header:
        raise BadInput(f"{path}, line 1: no 'arch' column (found: {', '.join(header) or 'none'}).")
    if column is None:
        numeric = [c for c in header if c != "arch" and c not in INDEX_COLUMNS
                   and rows and all(_is_number(r.get(c)) for _, r in rows)]
        if len(numeric) != 1:
            raise BadInput(f"{path}: cannot tell the accuracy column "
                           f"({'several' if numeric else 'no'} numeric columns besides arch: "
                           f"{', '.join(numeric) or 'none'}); name it as table:{path}:COLUMN.")
        column = numeric[0]
    elif column not in header:
        raise BadInput(f"{path}, line 1: no column {column!r} (found: {', '.join(header)}).")
    values: dict[str, float] = {}
    first_line: dict[str, int] = {}
    for line, row in rows:
        cell = (row.get("arch") or "").strip()
        if not cell:
            raise BadInput(f"{path}, line {line}: missing architecture string.")
        try:
            arch = space.check(cell)
        except ValueError as exc:
            raise BadInput(f"{path}, line {line}: {exc}.") from None
        if arch in values:
            raise BadInput(f"{path}, line {line}: duplicate architecture {cell!r} (first on line {first_line[arch]}).")
        text = (row.get(column) or "").strip()
        try:
            value = float(text)
        except ValueError:
            raise BadInput(f"{path}, line {line}: {column} {text!r} is not a number.") from None
        if not math.isfinite(value) or value < 0:
            raise BadInput(f"{path}, line {line}: {column} must be a finite, non-negative accuracy, got {text!r}.")
        values[arch], first_line[arch] = value, line
    if not values:
        raise BadInput(f"{path}: the accuracy table has no rows.")
    return column, values


def _is_number(cell: str | None) -> bool:
    try:
        float((cell or "").strip())
    except ValueError:
        return False
    return True


class TableAccuracy:
    """Accuracies from a CSV (``arch`` + a column): exact lookup, a fitted predictor for the rest.

    The predictor (:class:`hwnas.search.predictor.AccuracyPredictor`) is fitted on first
    need, on every row of the table, and saved as JSON at ``predictor_path`` when given; a
    saved one is reused when its manifest matches this table, column and space.
    """

    has_weights = False

    def __init__(self, path: str | Path, space: Any, column: str | None = None,
                 predictor_path: str | Path | None = None, seed: int = 0) -> None:
        self.path = Path(path)
        self.space = space
        self.column, self._values = _read_table(self.path, column, space)
        self.name = f"table:{self.path}:{self.column}"
        self.predictor_path = Path(predictor_path) if predictor_path is not None else None
        self.seed = seed
        self._predictor = None
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, rest: str, space: Any, work_dir: str | Path | None = None) -> TableAccuracy:
        """The source of ``table:PATH[:COLUMN]`` (``rest`` is what follows ``table:``); the
        predictor is saved in ``work_dir`` as ``accuracy-predictor-<stem>-<column>.json``."""
        path, column = rest, None
        if not Path(rest).is_file() and ":" in rest:
            path, _, column = rest.rpartition(":")
        if not Path(path).is_file():
            raise BadInput(f"--accuracy table:{rest}: no such file {path!r}.")
        table = cls(path, space, column or None)
        if work_dir is not None:
            table.predictor_path = Path(work_dir) / f"accuracy-predictor-{table.path.stem}-{table.column}.json"
        return table

    def manifest(self) -> dict[str, Any]:
        """What a saved predictor must match to be reused for this table."""
        from cost_models.persistence import data_sha256, versions

        return {"space": getattr(self.space, "name", None), "table": str(self.path), "column": self.column,
                "training_sha256": data_sha256(list(self._values.items())), "n_train": len(self._values),
                "versions": versions()}

    def predictor(self):
        """The fitted accuracy predictor (loaded from ``predictor_path`` when it matches, else fitted)."""
        with self._lock:
            if self._predictor is None:
                manifest = self.manifest()
                self._predictor = self._saved_predictor(manifest) or self._fit_predictor(manifest)
            return self._predictor

    def _saved_predictor(self, manifest: dict[str, Any]):
        """The predictor saved at ``predictor_path`` if it was fitted on this table, column and space."""
        from hwnas.search import predictor as pred

        if self.predictor_path is None or not self.predictor_path.is_file():
            return None
        try:
            model, saved = pred.load(self.predictor_path)
        except pred.PredictorFileError as exc:
            raise BadInput(str(exc)) from None
        same = all(saved.get(k) == manifest[k] for k in ("space", "column", "training_sha256"))
        return model if same else None

    def _fit_predictor(self, manifest: dict[str, Any]):
        """A predictor fitted on every row of the table, saved at ``predictor_path`` when set."""
        from hwnas.search import predictor as pred

        if len(self._values) < 2:
            raise BadInput(f"{self.path}: one row is too few to fit an accuracy predictor "
                           "for the architectures the table lacks.")
        archs = list(self._values)
        model = pred.AccuracyPredictor(seed=self.seed).fit(self.space.to_choices(archs),
                                                            np.array([self._values[a] for a in archs]))
        if self.predictor_path is not None:
            try:
                pred.save(self.predictor_path, model, manifest)
            except OSError as exc:
                raise BadInput(f"{self.predictor_path}: cannot save the accuracy predictor ({exc}).") from None
        return model

    def evaluate(self, archs: Sequence[str]) -> np.ndarray:
        """Table values where the table has the arch, the predictor's elsewhere (one batch)."""
        keys = [self._key(a) for a in archs]
        out = np.array([self._values.get(k, math.nan) for k in keys], dtype=float)
        missing = np.flatnonzero(np.isnan(out))
        if missing.size:
            out[missing] = self.predictor().predict(self.space.to_choices([keys[i] for i in missing]))
        return out

    def details(self, arch: str) -> dict:
        """``{"predicted": bool}`` (and the predictor kind when predicted)."""
        if self._key(arch) in self._values:
            return {"predicted": False}
        return {"predicted": True, "predictor": self.predictor().kind_}

    def _key(self, arch: str) -> str:
        try:
            return self.space.check(arch)
        except ValueError as exc:
            raise BadInput(f"accuracy source {self.name}: {exc}") from None


# ------------------------------------------------------------------------------ supernet

def is_bare_supernet(spec: Any) -> bool:
    """True for ``supernet`` without a checkpoint path: the source that uses (and may train) a workspace's
    supernet, so the caller must say which workspace."""
    return isinstance(spec, str) and spec.strip() in ("supernet", "supernet:")


def supernet_accuracy(path: str | None, space: Any, workspace: str | Path = ".hwnas") -> AccuracyObjective:
    """The weight-sharing supernet's accuracy source (``hwnas.supernet``, imported lazily); without
    ``path``, the supernet of ``workspace`` (trained there first when it has none)."""
    try:
        module = importlib.import_module("hwnas.supernet.accuracy")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("hwnas.supernet"):
            raise BadInput("the supernet accuracy source needs the hwnas.supernet package "
                           "(the weight-sharing supernet, issue 13), which this installation lacks.") from exc
        raise BadInput(f"the supernet accuracy source needs the Python package {exc.name!r} "
                       "(install hwnas[torch]).") from exc
    return module.SupernetAccuracy(path, space, workspace=workspace)


# ------------------------------------------------------------------------------- parsing

def parse_accuracy(spec: str | Callable[[str], float] | AccuracyObjective, space: Any, *,
                   work_dir: str | Path | None = None, workspace: str | Path = ".hwnas") -> AccuracyObjective:
    """The accuracy objective ``spec`` names (one of :data:`SOURCE_FORMS`), for ``space``.

    ``spec`` may also be an objective (returned as is) or a plain function ``arch -> float``.
    ``work_dir`` is where a table's fitted accuracy predictor is saved as JSON (the search's
    state directory or the workspace); without it the predictor is kept in memory only. A bare
    ``supernet`` is the supernet of ``workspace`` (the registry's workspace in the CLI).
    Unknown or malformed sources raise BadInput listing the known forms.
    """
    if isinstance(spec, AccuracyObjective):
        return spec
    if callable(spec):
        return CallableAccuracy(spec)
    if not isinstance(spec, str):
        raise BadInput(f"an accuracy source is a string or a function, got {type(spec).__name__}.")
    kind, _, rest = spec.strip().partition(":")
    if kind == "nasbench201" and rest:
        return NasBench201Accuracy(rest, space)
    if kind == "python":
        return load_callable(rest)
    if kind == "supernet":
        return supernet_accuracy(rest or None, space, workspace)
    if kind == "table" and rest:
        return TableAccuracy.from_spec(rest, space, work_dir=work_dir)
    if kind == "proxy" and rest:
        from hwnas.search.proxies import ProxyAccuracy

        proxy, _, data = rest.partition(":")
        return ProxyAccuracy(proxy, space, data=data or None)
    raise BadInput(f"unknown accuracy source {spec!r} (known: {', '.join(SOURCE_FORMS)}).")
