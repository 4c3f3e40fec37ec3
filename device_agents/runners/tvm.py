"""TVM runner: a compiled library in the Relax VM on the device the target names.

``device_agents.tvm_runner`` loads and checks the library (ELF machine, outputs
against ONNX Runtime); the round source is a :class:`~device_agents.timing.WallClock`
that synchronises the TVM device after every call, so a GPU's asynchronous work is
inside the time. :class:`TimeEvaluator` is the round source for a remote TVM device
(RPC), timed by TVM's own ``time_evaluator`` on the far end.
"""
from __future__ import annotations

from typing import Any

from device_agents import tvm_runner
from device_agents.timing import WallClock

FORMAT = "tvm"
DRIFT_PROBE = True
version = tvm_runner.version
OutputMismatch = tvm_runner.OutputMismatch
profile = tvm_runner.profile


def prepare(path: str, settings: dict[str, Any], inputs: list[dict[str, Any]] | None = None,
            reference: str | None = None) -> tuple[WallClock, dict[str, Any]]:
    """A wall-clock source running ``main`` once per call (device synchronised), and facts."""
    run, sync, facts = tvm_runner.runner(path, settings, inputs, reference)
    return WallClock(run, sync), facts


class TimeEvaluator:
    """Round times from TVM's ``time_evaluator`` on ``device`` (e.g. over RPC): TVM warms up,
    calibrates and synchronises itself on the far end, so ``calibrate`` returns None."""

    def __init__(self, vm: Any, device: Any, args: list[Any]) -> None:
        self._vm, self._device, self._args = vm, device, args
        self._min_repeat_ms = 1

    def warm_up(self, warmup_ms: float) -> None:
        """One remote round of at least ``warmup_ms``."""
        self._vm.time_evaluator("main", self._device, number=1, repeat=1,
                                min_repeat_ms=int(warmup_ms))(*self._args)

    def calibrate(self, min_repeat_ms: float) -> None:
        """Remember the round length; TVM calibrates calls per round itself."""
        self._min_repeat_ms = max(1, int(min_repeat_ms))

    def rounds(self, number: int | None, repeat: int) -> list[float]:
        """``repeat`` remote rounds, ms per call."""
        bench = self._vm.time_evaluator("main", self._device, number=1, repeat=repeat,
                                        min_repeat_ms=self._min_repeat_ms)(*self._args)
        return [float(t) * 1e3 for t in bench.results]
