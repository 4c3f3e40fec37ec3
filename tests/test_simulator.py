"""The FPGA simulator device: a block sweep on SCALE-Sim, LUT entries equal to its cycle counts.

The agent runs in the simulator's own venv (scripts/scalesim_env.sh: numpy < 2.4, scalesim,
onnx), reached through the local transport's ``python``. SCALE-Sim is run for real, by the
agent and, for the check, once more directly (``python -m scalesim.scale``) on the same layers.
"""
from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from device_agents.runners import simulator as sim_runner
from hwnas import config, lut_store, spaces, sweep
from hwnas.cli import main
from hwnas.store import Store
from lut.table import BASELINE

REPO = Path(__file__).resolve().parents[1]
ARRAY, CLOCK_MHZ = (16, 16), 200.0
FAST = "{warmup_ms: 1, repeat: 3, min_repeat_ms: 1, sessions: 2, timeout_s: 300, drift_threshold: 1000}"
# two conv blocks and a pooling block of NAS-Bench-201's last stage (8x8x64): small layers
WANTED = ("nor_conv_1x1-input:8x8x64-output:8x8x64", "nor_conv_3x3-input:8x8x64-output:8x8x64",
          "avg_pool_3x3-input:8x8x64-output:8x8x64")


@pytest.fixture(scope="module")
def sim_python():
    """The simulator venv's python (built once and cached under ~/.cache/hwnas)."""
    out = subprocess.run(["bash", str(REPO / "scripts" / "scalesim_env.sh")], check=False, capture_output=True,
                         text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot build the SCALE-Sim environment: {out.stderr.strip()[-300:]}")
    return out.stdout.strip()


def _config(tmp: Path, python: str) -> Path:
    path = tmp / "hardware.yaml"
    path.write_text(
        f"workspace: {tmp / 'ws'}\n"
        "devices:\n"
        "  - name: sim\n"
        "    kind: fpga_sim\n"
        f"    transport: {{type: local, python: {json.dumps(python)}}}\n"
        f"    runtime: {{backend: simulator, simulator: scalesim, array: [{ARRAY[0]}, {ARRAY[1]}], dataflow: ws,\n"
        f"              ifmap_sram_kb: 32, filter_sram_kb: 32, ofmap_sram_kb: 32, clock_mhz: {CLOCK_MHZ}}}\n"
        f"    measurement: {FAST}\n")
    return path


def _scalesim_directly(python: str, layer: list[int], acc: dict, tmp: Path) -> int:
    """SCALE-Sim's own command line on one layer; its COMPUTE_REPORT's total cycles (incl. prefetch)."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "topo.csv").write_text("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
                                  "Num Filter, Strides,\nL0, " + ", ".join(map(str, layer)) + ",\n")
    (tmp / "layout.csv").write_text("Layer name,\n")
    (tmp / "scale.cfg").write_text(sim_runner._config_text(acc))
    subprocess.run([python, "-m", "scalesim.scale", "-c", str(tmp / "scale.cfg"), "-t", str(tmp / "topo.csv"),
                    "-l", str(tmp / "layout.csv"), "-p", str(tmp / "out"), "-s", "N"],
                   check=True, capture_output=True, cwd=tmp)
    with open(tmp / "out" / "hwnas" / "COMPUTE_REPORT.csv", newline="") as handle:
        return int(float(list(csv.reader(handle))[1][1]))


@pytest.mark.slow
def test_block_sweep_lut_equals_scalesim_cycles(tmp_path, sim_python, capsys):
    cfg = _config(tmp_path, sim_python)
    assert main(["devices", "check", "--config", str(cfg), "--json", "--pings", "1"]) == 0
    report = json.loads(capsys.readouterr().out)[0]
    assert report["runtime_version"] == "3.0.0" and report["reachable"], report  # (fit depends on load)

    reg = config.load(cfg)
    device = reg.device("sim")
    space = spaces.get("nasbench201")
    needs = [n for n in sweep.block_needs(space, None, reg.workspace) if n.signature in (BASELINE, *WANTED)]
    store = Store(reg.workspace)
    reports = sweep.run(reg, [device], store, needs, "run-sim", "blocks", space.name, quiet=True)
    assert reports[0].exit_code == 0 and reports[0].measured == 4, reports[0]

    table = lut_store.table(store, "sim", "simulator")
    acc = sim_runner.accelerator({"accelerator": {"array": list(ARRAY), "clock_mhz": CLOCK_MHZ, "dataflow": "ws",
                                                  "ifmap_sram_kb": 32, "filter_sram_kb": 32, "ofmap_sram_kb": 32}})
    assert table[BASELINE].mean_ms == 0.0  # an Identity costs no cycles
    for signature in WANTED:
        m = store.latest("sim", "simulator", signature)
        assert m.valid and m.stats["simulated"] is True and m.stats["accelerator"]["array"] == list(ARRAY)
        layers = m.stats["layers"]
        assert table[signature].mean_ms == pytest.approx(m.stats["cycles"] / (CLOCK_MHZ * 1e3), rel=1e-12)
        assert m.stats["cycles"] == sum(entry["cycles"] for entry in layers)
        for entry in layers:
            if entry["op_type"] == "Conv":
                direct = _scalesim_directly(sim_python, entry["layer"], acc, tmp_path / signature[:12])
                assert entry["cycles"] == direct, (signature, entry)
        if signature.startswith("avg_pool"):
            assert all(entry["source"] == "vector model" for entry in layers)
    conv3 = store.latest("sim", "simulator", WANTED[1]).stats["layers"]
    assert [e["layer"] for e in conv3 if e["op_type"] == "Conv"] == [[10, 10, 3, 3, 64, 64, 1]]

    # a layer simulated before with the same configuration is read from the device's cache
    src, facts = _agent_prepare_again(sim_python, reg, store, WANTED[1])
    assert facts["layers_simulated"] == 0 and src == pytest.approx(table[WANTED[1]].mean_ms)


def _agent_prepare_again(python: str, reg, store: Store, signature: str) -> tuple[float, dict]:
    """Run the runner once more in the venv, with the agent's cache dir, on the stored block model."""
    m = store.latest("sim", "simulator", signature)
    model = next((reg.workspace / "agents" / "sim" / "models").glob(f"{m.model_sha256}.onnx"))
    settings = {"accelerator": {"array": list(ARRAY), "clock_mhz": CLOCK_MHZ, "dataflow": "ws",
                                "ifmap_sram_kb": 32, "filter_sram_kb": 32, "ofmap_sram_kb": 32}}
    code = ("import json, sys; from device_agents.runners import simulator as s; "
            f"src, facts = s.prepare({str(model)!r}, json.loads(sys.argv[1])); "
            "print(json.dumps([src.ms, facts]))")
    out = subprocess.run([python, "-c", code, json.dumps(settings)], capture_output=True, text=True, check=True,
                         cwd=REPO, env={"XDG_CACHE_HOME": str(reg.workspace / "agents" / "sim" / "cache"),
                                        "PATH": "/usr/bin:/bin"})
    ms, facts = json.loads(out.stdout.strip().splitlines()[-1])
    return ms, facts
