"""The agent's runtime registry: one runner module per backend, named after it.

``device_agents/runners/<backend>.py`` is the whole of a backend on the device. A
runner module defines:

    FORMAT       the artifact format it runs ("onnx" or "tvm"; see protocol.FORMATS)
    DRIFT_PROBE  whether the reference kernel is timed around its measurements
                 (False for a source that cannot drift, such as simulated cycles)
    version()    the runtime's version, or None when it is not installed here
    prepare(path, settings, inputs=None, reference=None) -> (RoundSource, facts)
                 a fresh session on the artifact at ``path``: the source of round times
                 that ``device_agents.timing.measure`` drives, and facts the result
                 carries (``warnings`` in the facts make the result invalid)

and may define ``profile(path, settings, runs, inputs=None) -> {nodes, providers}`` (the
kernels the runtime ran, timed one by one, with their shapes: the agent's ``profile``
request), ``OutputMismatch`` (outputs differ from a reference run: a runtime
failure, not a bad model) and ``providers()`` (what the device offers, for ``hello``).
``Unavailable`` is raised by a runner when the device lacks what the request needs
(an execution provider, a simulator): the agent answers ``unsupported``.

Adding a backend is adding one module here; nothing else on the device changes.
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType


class Unavailable(RuntimeError):
    """The device lacks something the request needs (a provider, a runtime, a simulator)."""


def names() -> tuple[str, ...]:
    """Every backend with a runner module here, sorted."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                        if not m.name.startswith("_")))


def load(backend: str) -> ModuleType:
    """The runner module of ``backend``; KeyError for an unknown name (the runtime itself is
    imported lazily by the runner, so this never fails for a missing runtime)."""
    if backend not in names():
        raise KeyError(backend)
    return importlib.import_module(f"{__name__}.{backend}")


def for_format(fmt: str) -> str:
    """The backend that runs artifacts of format ``fmt`` when a request names none."""
    return "onnxruntime" if fmt == "onnx" else next(n for n in names() if load(n).FORMAT == fmt)
