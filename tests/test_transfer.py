"""Few-shot latency transfer: the model on real data, the CSV contract and ``hwnas costmodel transfer``."""
import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from cost_models.metrics import spearman_rho
from cost_models.transfer import FEATURES, TransferInputError, TransferRegressor, arch_features, transfer_csv
from hwnas.cli import main
from lut.nasbench201 import all_archs, format_arch, is_degenerate

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared/data/nasbench201_latency/latency_ms.csv"
DEGENERATE = "|none~0|+|skip_connect~0|none~1|+|none~0|nor_conv_3x3~1|none~2|"
BAD_ROWS = {  # TARGET row 3 (line 4 of the file) replaced by each fault
    "duplicate": ("{first},12.0", "duplicate architecture"),
    "malformed": ("|nor_conv_3x3~0|+|skip_connect~0|,12.0", "malformed"),
    "unknown_op": ("|conv_7x7~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|,12.0",
                   "unknown operation 'conv_7x7'"),
    "non_positive": ("{other},-3", "positive latency"),
}


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def synthetic_space(seed: int = 0, n: int = 400):
    """Non-degenerate arch strings and a 3-device + target latency table linear in the features."""
    rng = np.random.default_rng(seed)
    space = [a for a in all_archs() if not is_degenerate(a)]
    archs = [format_arch(space[i]) for i in rng.choice(len(space), n, replace=False)]
    weights = np.array([[1.0, -.03, .18, .19, .01, -.03, .18, .19, .01],
                        [1.0, -.02, .13, .35, .03, -.02, .13, .35, .03],
                        [1.0, -.02, .12, .40, .04, -.02, .12, .40, .04],
                        [1.0, -.02, .20, .32, .05, -.02, .20, .32, .05]]) * 10
    latency = arch_features(archs) @ weights.T * rng.uniform(0.98, 1.02, (n, 4))
    return archs, latency


@pytest.fixture
def files(tmp_path):
    """PRIOR (3 source devices), TARGET (8 measurements of a 4th) and ARCHS CSVs."""
    archs, latency = synthetic_space()
    prior = write_csv(tmp_path / "prior.csv", ["nb201_index", "arch", "dev_a", "dev_b", "dev_c"],
                      [[i, a, *map(float, row[:3])] for i, (a, row) in enumerate(zip(archs, latency))])
    target = write_csv(tmp_path / "target.csv", ["arch", "latency_ms"],
                       [[a, float(latency[i, 3])] for i, a in enumerate(archs[:8])])
    predict = write_csv(tmp_path / "archs.csv", ["arch"], [[a] for a in archs[8:]])
    return {"prior": prior, "target": target, "predict": predict, "out": tmp_path / "out.csv",
            "archs": archs, "latency": latency}


def cli_args(f, *extra: str) -> list[str]:
    return ["costmodel", "transfer", "--space", "nasbench201", "--prior", str(f["prior"]),
            "--target", str(f["target"]), "--predict", str(f["predict"]), "--out", str(f["out"]), *extra]


def break_target(f, fault: str) -> Path:
    """Rewrite TARGET with its 3rd data row (line 4) replaced by ``fault``."""
    lines = f["target"].read_text().splitlines()
    row, _ = BAD_ROWS[fault]
    lines[3] = row.format(first=f["archs"][0], other=f["archs"][2])
    f["target"].write_text("\n".join(lines) + "\n")
    return f["target"]


# ----------------------------------------------------------------------------- model

def test_features_match_names_and_count_every_op_once():
    phi = arch_features(all_archs())
    assert phi.shape == (15625, len(FEATURES)) and (phi[:, 0] == 1).all()
    assert (phi[:, 1:].sum(axis=1) <= 6).all()
    dead_end = arch_features(["|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|none~2|"])[0]
    assert dead_end[FEATURES.index("dead_nor_conv_3x3")] == 1 and dead_end[FEATURES.index("live_skip_connect")] == 1


def test_predict_before_fit_raises():
    with pytest.raises(NotFittedError):
        TransferRegressor().predict(["|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"])


def test_fit_recovers_synthetic_device_and_ignores_empty_source():
    archs, latency = synthetic_space()
    prior = np.c_[latency[:, :3], np.full(len(archs), np.nan)]
    model = TransferRegressor().fit(archs[:10], latency[:10, 3], archs, prior)
    assert model.sources_used_ == [0, 1, 2] and model.n_samples_ == 10
    assert spearman_rho(latency[10:, 3], model.predict(archs[10:])) > 0.95


@pytest.mark.skipif(not DATA.exists(), reason=f"shared NAS-Bench-201 latency data not found at {DATA}")
def test_real_data_held_out_device_k10_spearman_above_0_9(caplog):
    from cost_models.transfer import read_prior

    archs, devices, latency = read_prior(DATA)
    target = devices.index("samsung_a50")
    sources = np.delete(latency, target, axis=1)
    train = np.random.default_rng(0).choice(len(archs), 10, replace=False)
    model = TransferRegressor().fit([archs[i] for i in train], latency[train, target], archs, sources)
    test = np.setdiff1d(np.arange(len(archs)), train)
    assert spearman_rho(latency[test, target], model.predict([archs[i] for i in test])) > 0.9


# ------------------------------------------------------------------------ CSV and CLI

def test_cli_json_writes_predictions(files, capsys):
    assert main(cli_args(files, "--json")) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["k"] == 8 and info["n_predicted"] == 392 and info["sources"] == ["dev_a", "dev_b", "dev_c"]
    with open(files["out"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["arch"] for r in rows] == files["archs"][8:]
    pred = np.array([float(r["latency_ms"]) for r in rows])
    assert spearman_rho(files["latency"][8:, 3], pred) > 0.95
    assert not list(files["out"].parent.glob("*.tmp"))


def test_cli_human_line_on_stderr(files, capsys):
    assert main(cli_args(files)) == 0
    out, err = capsys.readouterr()
    assert out == "" and "predicted 392 architecture(s) from k=8" in err


@pytest.mark.parametrize("fault", sorted(BAD_ROWS))
def test_bad_target_row_exits_2_naming_file_and_line(files, capsys, fault):
    path = break_target(files, fault)
    assert main(cli_args(files)) == 2
    err = capsys.readouterr().err
    assert f"{path}, line 4:" in err and BAD_ROWS[fault][1] in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not files["out"].exists()


@pytest.mark.parametrize("fault", sorted(BAD_ROWS))
def test_bad_target_row_subprocess(files, fault):
    path = break_target(files, fault)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "hwnas.cli", *cli_args(files)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert f"{path}, line 4:" in proc.stderr and BAD_ROWS[fault][1] in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_archs_row_exits_2(files, capsys):
    lines = files["predict"].read_text().splitlines()
    lines[5] = "|skip_connect~0|+|bogus|"
    files["predict"].write_text("\n".join(lines) + "\n")
    assert main(cli_args(files)) == 2
    assert f"{files['predict']}, line 6:" in capsys.readouterr().err


def test_missing_input_file_exits_2(files, capsys):
    files["prior"] = files["prior"].with_name("nope.csv")
    assert main(cli_args(files)) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_out_into_missing_folder_exits_2_naming_the_out_path(files, capsys):
    files["out"] = files["out"].parent / "no_such_dir" / "out.csv"
    assert main(cli_args(files)) == 2
    err = capsys.readouterr().err
    assert f"cannot use {files['out']}: No such file or directory" in err and ".tmp" not in err


def test_degenerate_archs_skipped_with_one_warning_per_file(files, caplog):
    with open(files["target"], "a", newline="") as fh:
        csv.writer(fh).writerows([[DEGENERATE, 0.01]])
    with open(files["prior"], "a", newline="") as fh:
        csv.writer(fh).writerows([[99999, DEGENERATE, 0.0, 0.0, 0.0],
                                  [99998, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "", "", ""]])
    with caplog.at_level(logging.WARNING, logger="hwnas"):
        info = transfer_csv(files["prior"], files["target"], files["predict"], files["out"])
    assert info["k"] == 8
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum(str(files["target"]) in w and "degenerate" in w for w in warnings) == 1
    assert sum(str(files["prior"]) in w and "skipped 2 degenerate" in w for w in warnings) == 1


def test_prior_with_missing_values_uses_what_is_present(files, caplog):
    text = files["prior"].read_text().splitlines()
    rows = [line.split(",") for line in text]
    for i, row in enumerate(rows[1:], start=1):
        if i % 3 == 0:
            row[3] = ""          # dev_b: a third of its cells empty
        row[4] = "" if i > 5 else row[4]  # dev_c: only 5 values, too few to fit
    files["prior"].write_text("\n".join(",".join(r) for r in rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="hwnas"):
        info = transfer_csv(files["prior"], files["target"], files["predict"], files["out"])
    assert info["sources"] == ["dev_a", "dev_b"] and info["sources_skipped"] == ["dev_c"]
    assert any("dev_c" in r.getMessage() for r in caplog.records)


def test_prior_non_numeric_cell_names_line(files):
    lines = files["prior"].read_text().splitlines()
    lines[7] = lines[7].rsplit(",", 1)[0] + ",fast"
    files["prior"].write_text("\n".join(lines) + "\n")
    with pytest.raises(TransferInputError, match=rf"{files['prior']}, line 8: dev_c 'fast' is not a number"):
        transfer_csv(files["prior"], files["target"], files["predict"], files["out"])
