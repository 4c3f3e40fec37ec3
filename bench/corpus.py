"""The evaluation corpus of the any-ONNX latency predictor: build it, measure it.

    python -m bench.corpus build   [--per-family 28] [--seed 0] [--out DIR]
    python -m bench.corpus measure [--device local] [--out DIR] [--pass first|again] [--limit N]

``build`` samples ``--per-family`` configurations of each family of
:mod:`bench.corpus_models` (11 families: ResNet, VGG, MobileNetV1/V2/V3, ShuffleNetV2,
SqueezeNet, DenseNet, GoogLeNet, MnasNet/ProxylessNAS, EfficientNet) with a seeded
Generator, keeps a network's compute under :data:`MAX_MACS` by stepping its resolution
down, exports each to ONNX and writes ``DIR/corpus.json`` (family, config, file, sha256).
Re-running it keeps files already built.

``measure`` measures every corpus model on a device into the workspace store (signature
``onnx:<sha256>``, source the file path), resumably: ``--pass first`` measures
what has no measurement yet; ``--pass again`` measures once more what has exactly one (the
fresh re-measurement the noise floor of bench/predict_accuracy.py compares with). The
predictor is never trained on these models.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import run

DEFAULT_OUT = Path(".hwnas/corpus")
MAX_MACS = 400e6
"""Networks above this many multiply-accumulates get a smaller resolution (keeps device time bounded)."""


def macs(family: str, cfg: dict[str, Any]) -> float:
    """Multiply-accumulates of conv and linear layers of ``family(cfg)`` (a forward pass with hooks)."""
    import torch

    from bench.corpus_models import FAMILIES

    model = FAMILIES[family][0](cfg).eval()
    total = [0.0]

    def hook(module, _inp, out):
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total[0] += out.numel() * module.in_channels // module.groups * k
        elif isinstance(module, torch.nn.Linear):
            total[0] += module.in_features * module.out_features

    for m in model.modules():
        m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, cfg["resolution"], cfg["resolution"]))
    return total[0]


def build(out: Path, per_family: int, seed: int) -> list[dict[str, Any]]:
    """Sample, size and export the corpus; returns the entries written to ``out/corpus.json``."""
    import torch

    from bench.corpus_models import FAMILIES, RESOLUTIONS, export, sample
    from lut.formats import write_text_atomic

    torch.set_num_threads(1)  # a shared 2-core machine: more threads only contend
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for family in FAMILIES:
        for i in range(per_family):
            cfg = sample(family, rng)
            smaller = [r for r in RESOLUTIONS if r < cfg["resolution"]]
            size = macs(family, cfg)
            while size > MAX_MACS and smaller:
                cfg["resolution"] = smaller.pop()  # (VGG's first FC is sized from it at build time)
                size = macs(family, cfg)
            name = f"{family}-{i:03d}.onnx"
            path = out / name
            if not path.exists():
                part = path.with_suffix(".part")
                export(family, cfg, str(part))
                part.replace(path)
            entries.append({"family": family, "file": name, "config": cfg, "macs": size,
                            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
            print(f"{name}: {entries[-1]['macs'] / 1e6:.0f} MMACs @ {cfg['resolution']}", file=sys.stderr)
    write_text_atomic(out / "corpus.json", json.dumps({"seed": seed, "models": entries}, indent=1))
    return entries


def load(out: Path) -> list[dict[str, Any]]:
    """The corpus entries of ``out/corpus.json`` (with ``path`` set)."""
    doc = json.loads((out / "corpus.json").read_text())
    return [{**e, "path": out / e["file"]} for e in doc["models"]]


def measure(out: Path, device_name: str, config: str, again: bool, limit: int | None = None) -> int:
    """Measure the corpus on a device (first pass, or once more; at most ``limit`` models, a seeded
    random subset); returns the exit code."""
    from hwnas import config as hw_config
    from hwnas import fleet
    from hwnas.measure import Item, measure_items
    from hwnas.progress import bar
    from hwnas.store import Store

    registry = hw_config.load(config)
    device = registry.device(device_name)
    store = Store(registry.workspace)
    want = 1 if again else 0
    items = []
    for e in load(out):
        sig = f"onnx:{e['sha256']}"
        if len(store.history(device.name, device.backend, sig)) == want:
            items.append(Item(path=e["path"], sha256=e["sha256"], signature=sig,
                              source=str(e["path"])))
    rng = np.random.default_rng(1 if again else 0)
    items = [items[i] for i in rng.permutation(len(items))][:limit]  # families interleaved
    run = f"corpus-{'again' if again else 'first'}-{time.time():.0f}"
    started = time.time()
    with bar(len(items), f"{device.name} corpus", unit="model") as progress:
        def work(dev, client):
            measure_items(dev, client, store, items, run, on_done=lambda item, m: progress.update(1))
        outcomes = fleet.run(registry, [device], work, store=store)
    print(f"measured {len(items)} models in {time.time() - started:.0f} s", file=sys.stderr)
    return 1 if any(o.error for o in outcomes) else 0


def main(argv: list[str] | None = None) -> int:
    """Command line: ``build`` or ``measure``."""
    parser = argparse.ArgumentParser(prog="python -m bench.corpus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--per-family", type=int, default=28)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", type=Path, default=DEFAULT_OUT)
    m = sub.add_parser("measure")
    m.add_argument("--device", default="local")
    m.add_argument("--config", default="hardware.yaml")
    m.add_argument("--out", type=Path, default=DEFAULT_OUT)
    m.add_argument("--pass", dest="which", choices=["first", "again"], default="first")
    m.add_argument("--limit", type=int, default=None, help="measure at most this many (a seeded random subset)")
    args = parser.parse_args(argv)
    if args.cmd == "build":
        build(args.out, args.per_family, args.seed)
        return 0
    return measure(args.out, args.device, args.config, args.which == "again", args.limit)


if __name__ == "__main__":
    run(main)
