"""Shared bench plumbing: tiny model sets, a throwaway workspace config, result files."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.operators import conv_relu as conv_model

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
    """Where a figure was taken."""
    return {"host": platform.node(), "cpus": os.cpu_count(), "loadavg_before": os.getloadavg(),
            "python": platform.python_version()}


def write(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
