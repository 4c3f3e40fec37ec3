"""Shared bench plumbing: tiny model sets, a throwaway workspace config, result files."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.operators import conv_relu as conv_model
from lut.atomic import write_text_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def small_models(out_dir: Path, n: int) -> list[Path]:
    """``n`` distinct small conv models (8..64 channels, 8..32 pixels)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        c = int(rng.choice([8, 16, 32, 64]))
        size = int(rng.choice([8, 16, 32]))
        paths.append(conv_model(out_dir / f"m{i:03d}.onnx", c, c, size, seed=i))
    return paths


def local_config(tmp: Path, measurement: str = "") -> Path:
    """A hardware.yaml with the local device and a workspace inside ``tmp``."""
    path = tmp / "hardware.yaml"
    extra = f"    measurement: {measurement}\n" if measurement else ""
    path.write_text(f"workspace: {tmp / 'ws'}\ndevices:\n  - name: local\n    kind: x86_cpu\n"
                    "    transport: {type: local}\n"
                    "    runtime: {backend: onnxruntime, providers: [CPUExecutionProvider], threads: 1}\n" + extra)
    return path


def hwnas(*args: str) -> tuple[float, Any]:
    """Run the hwnas CLI with --json; returns (wall seconds, parsed stdout)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hwnas.cli", *args, "--json"], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"hwnas {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return wall, json.loads(proc.stdout)


def machine() -> dict[str, Any]:
    """Where a figure was taken (the CPU too: the same bench differs between an AVX2 and an AVX-512 host)."""
    from device_agents.facts import cpu_model, vector_isa

    return {"host": platform.node(), "cpu": cpu_model(), "vector_isa": vector_isa(), "cpus": os.cpu_count(),
            "loadavg_before": os.getloadavg(),
            "python": platform.python_version()}


def run(main: Any) -> None:
    """Run a bench's ``main()`` as a command and exit with its code; an hwnas error exits with its code as
    the CLI does (bad input such as a refused registry: 2; a device failure: 1) and a missing file with 2,
    each with one sentence on stderr and no traceback."""
    from hwnas.errors import HwnasError

    name = f"python -m bench.{Path(sys.argv[0]).stem}"
    try:
        code = main()
    except HwnasError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except FileNotFoundError as exc:
        print(f"{name}: error: {exc.filename}: no such file", file=sys.stderr)
        code = 2
    sys.exit(code)


def stored_at(created_utc: str) -> datetime:
    """A stored measurement's ``created_utc`` (ISO 8601, ``Z``) as an aware datetime."""
    return datetime.fromisoformat(created_utc.replace("Z", "+00:00"))


def write(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (atomically)."""
    return write_text_atomic(RESULTS / f"{name}.json", json.dumps(data, indent=2, default=str) + "\n")


def throughput(fn, arg, repeats: int = 5) -> float:
    """Median items per second of ``fn(arg)`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - start)
    return len(arg) / float(np.median(times))


def pin_one_core() -> None:
    """Run the calling process on a single CPU (one-core throughput figures)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def work_split(stored) -> tuple[float, dict[str, float], float]:
    """From stored measurements: seconds of timed rounds, on-device seconds per phase, their sum."""
    timed = sum(n * sum(rounds) for m in stored for n, rounds in zip(m.stats["numbers"], m.raw)) / 1e3
    phases: dict[str, float] = {}
    for m in stored:
        for p in m.stats["phase_ms"]:
            for key, value in p.items():
                phases[key] = phases.get(key, 0.0) + value / 1e3
    return timed, phases, sum(phases.values())
