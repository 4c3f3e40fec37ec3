"""``hwnas search`` against measured latency tables: JSON shape, unmet budgets, resume after SIGKILL,
and every bad input exiting 2 with one sentence and nothing written."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hwnas.cli import main
from tests.helpers import local_config

REPO = Path(__file__).resolve().parents[1]
DATA = next((p / "shared/data/nasbench201_latency/latency_ms.csv" for p in REPO.parents
             if (p / "shared/data/nasbench201_latency/latency_ms.csv").is_file()),
            REPO.parent / "shared/data/nasbench201_latency/latency_ms.csv")  # ../shared (a worktree: ../../shared)
ARCH = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|"
OTHER = "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|"


def pixel3_table(path: Path) -> Path:
    """The measured pixel3 latencies of NAS-Bench-201 (HW-NAS-Bench) as a CSV arch,latency_ms."""
    with open(DATA, newline="") as src, open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["arch", "latency_ms"])
        for row in csv.DictReader(src):
            if float(row["pixel3"]) > 0:
                writer.writerow([row["arch"], row["pixel3"]])
    return path


def search_args(table: Path, *extra: str) -> list[str]:
    return ["search", "--space", "nasbench201", "--latency-table", str(table), "--accuracy",
            "nasbench201:cifar10_valid", "--evaluations", "80", "--seed", "3", *extra]


def run_json(args: list[str], capsys) -> dict:
    code = main([*args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    if not DATA.is_file():
        pytest.skip(f"{DATA} is not here")
    return pixel3_table(tmp_path_factory.mktemp("tables") / "pixel3.csv")


def test_search_against_a_table(table, tmp_path, capsys):
    out = run_json(search_args(table, "--latency-ms", "5,10,0.0001", "--out", str(tmp_path / "run")), capsys)
    assert out["evaluations"] <= 80 and out["accuracy_source"] == "nasbench201:cifar10_valid"
    (dev,) = out["devices"]
    assert dev["device"] == "pixel3" and dev["front"]
    assert all({"arch", "accuracy", "latency_ms", "measured_ms", "accuracy_source", "cifar10_test"} <= set(c)
               for c in dev["front"])
    assert [b["budget_ms"] for b in dev["best"]] == [5.0, 10.0, 0.0001]
    for best in dev["best"][:2]:
        assert best["arch"] is not None and best["latency_ms"] <= best["budget_ms"] and best["measured_ms"] is None
    unmet = dev["best"][2]
    assert unmet["arch"] is None and unmet["fastest"]["latency_ms"] > 0.0001
    assert out["rounds"] == []  # a table is not measured
    assert json.loads((tmp_path / "run" / "result.json").read_text()) == out

    assert main(search_args(table, "--latency-ms", "5", "--evaluations", "30")) == 0  # the human tables
    printed = capsys.readouterr().out
    assert "pixel3: best per budget" in printed and "accuracy-latency front" in printed


def test_resume_after_sigkill_gives_the_uninterrupted_result(table, tmp_path, capsys):
    args = search_args(table, "--evaluations", "150", "--latency-ms", "5,10")
    state = tmp_path / "killed" / "search-state.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "hwnas.cli", *args, "--out", str(state.parent), "--json"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not state.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the search finished before it could be interrupted"
    partial = json.loads(state.read_text())
    assert 0 < len(partial["archive"]) < 150
    assert not (state.parent / "result.json").exists()

    resumed = run_json([*args, "--out", str(state.parent)], capsys)
    whole = run_json([*args, "--out", str(tmp_path / "whole")], capsys)
    assert resumed == whole and resumed["evaluations"] == 150


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


LATENCY_FAULTS = {  # file text -> what the message must say
    "unparseable arch": (f"arch,latency_ms\n{ARCH},1.5\n|nor_conv_3x3~0|+|bad,2.0\n", "line 3"),
    "missing column": (f"arch,ms\n{ARCH},1.5\n", "missing column"),
    "NaN": (f"arch,latency_ms\n{ARCH},1.5\n{OTHER},nan\n", "line 3"),
    "negative": (f"arch,latency_ms\n{ARCH},-1.5\n", "line 2"),
}
ACCURACY_FAULTS = {
    "unparseable arch": (f"arch,acc\n{ARCH},91.5\n|nor_conv_3x3~0|+|bad,90.0\n", "line 3"),
    "missing column": (f"arch\n{ARCH}\n", "column"),
    "NaN": (f"arch,acc\n{ARCH},91.5\n{OTHER},nan\n", "line 3"),
    "negative": (f"arch,acc\n{ARCH},91.5\n{OTHER},-4\n", "line 3"),
}


def bad_cases(tmp: Path, table: Path) -> list[tuple[str, list[str], str]]:
    good = lambda *extra: search_args(table, *extra)  # noqa: E731
    cases = [
        ("unknown space", ["search", "--space", "resnet", "--latency-table", str(table), "--accuracy",
                           "nasbench201:cifar10_valid"], "unknown search space"),
        ("unknown algorithm", good("--algorithm", "annealing"), "unknown search algorithm"),
        ("unknown accuracy source", ["search", "--space", "nasbench201", "--latency-table", str(table),
                                     "--accuracy", "oracle:best"], "unknown accuracy source"),
        ("budget abc", good("--latency-ms", "abc"), "'abc' is not a positive number"),
        ("budget 0", good("--latency-ms", "5,0"), "'0' is not a positive number"),
        ("budget -1", good("--latency-ms", "-1"), "'-1' is not a positive number"),
        ("budget nan", good("--latency-ms", "nan"), "'nan' is not a positive number"),
        ("evaluations 0", good("--evaluations", "0"), "--evaluations must be at least 1"),
    ]
    for name, (text, expect) in LATENCY_FAULTS.items():
        path = _csv(tmp / f"lat-{name.replace(' ', '_')}.csv", text)
        cases.append((f"latency table: {name}", search_args(path), f"{path.name}"))
        cases.append((f"latency table: {name} (where)", search_args(path), expect))
    for name, (text, expect) in ACCURACY_FAULTS.items():
        path = _csv(tmp / f"acc-{name.replace(' ', '_')}.csv", text)
        args = search_args(table)
        args[args.index("nasbench201:cifar10_valid")] = f"table:{path}:acc"
        cases.append((f"accuracy table: {name}", args, f"{path.name}"))
        cases.append((f"accuracy table: {name} (where)", args, expect))
    return cases


def test_bad_inputs_exit_2_with_one_sentence_and_nothing_written(table, tmp_path, capsys):
    for name, args, expect in bad_cases(tmp_path, table):
        out = tmp_path / "out" / name.replace(" ", "_").replace(":", "")
        code = main([*args, "--out", str(out), "--json"])
        captured = capsys.readouterr()
        assert code == 2, (name, captured.err)
        assert "Traceback" not in captured.err and captured.out == "", name
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("hwnas: error: "), (name, captured.err)
        assert expect.lower() in lines[0].lower(), (name, lines[0])
        assert not out.exists(), f"{name}: {out} was written"


def test_no_cost_model_names_the_fit_command(tmp_path, capsys):
    cfg = local_config(tmp_path)
    out = tmp_path / "out"
    code = main(["search", "--space", "nasbench201", "--device", "local", "--accuracy", "nasbench201:cifar10_valid",
                 "--config", str(cfg), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "hwnas costmodel fit --device local --space nasbench201" in err
    assert not out.exists()


def test_other_settings_in_the_state_dir_are_refused(table, tmp_path, capsys):
    run_json(search_args(table, "--evaluations", "60", "--out", str(tmp_path / "run")), capsys)
    code = main(search_args(table, "--evaluations", "60", "--seed", "4", "--out", str(tmp_path / "run")))
    err = capsys.readouterr().err
    assert code == 2 and "other settings (seed)" in err and "Traceback" not in err


def test_bad_budget_in_a_subprocess(table, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hwnas.cli", *search_args(table, "--latency-ms", "abc")],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "hwnas: error: --latency-ms: 'abc' is not a positive number of milliseconds"
