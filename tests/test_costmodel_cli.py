"""``hwnas costmodel fit|evaluate|refine`` end to end on the local device (real agent, real store)."""
import json

import numpy as np

from hwnas import load_cost_model
from hwnas.cli import main
from hwnas.store import Store
from tests.helpers import local_config

# drift retries off: see tests/helpers.py
FAST = "{warmup_ms: 0, repeat: 3, min_repeat_ms: 1, sessions: 1, timeout_s: 60, drift_threshold: 1000}"


def _json(args, capsys):
    code = main(args + ["--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.strip() else captured.err


def test_fit_evaluate_refine_on_local(tmp_path, capsys):
    cfg = str(local_config(tmp_path, measurement=FAST))
    dev = ["--config", cfg, "--device", "local"]
    code, err = _json(["costmodel", "fit", *dev], capsys)
    assert code == 2 and "hwnas profile --device local" in err
    profile = ["profile", *dev, "--space", "nasbench201"]
    assert _json([*profile, "--what", "blocks"], capsys)[0] == 0
    code, err = _json(["costmodel", "fit", *dev, "--space", "nasbench201"], capsys)
    assert code == 2 and "--what networks" in err
    assert _json([*profile, "--what", "networks", "--num", "10"], capsys)[0] == 0

    code, fitted = _json(["costmodel", "fit", *dev], capsys)
    assert code == 0 and fitted[0]["space"] == "nasbench201" and fitted[0]["n_train"] == 10
    cm = load_cost_model(device="local", space="nasbench201", config=cfg)
    assert cm.manifest["training_sha256"] == fitted[0]["training_sha256"]
    assert (cm.predict(np.zeros((3, 6), dtype=np.int8)) > 0).all()

    code, scores = _json(["costmodel", "evaluate", *dev, "--space", "nasbench201"], capsys)
    assert code == 0 and scores[0]["networks"] == 10
    assert {"lut_sum", "calibrated_lut", "cost_model"} <= set(scores[0])
    assert {"within_5", "within_10", "rmspe", "kendall_tau", "spearman_rho"} <= set(scores[0]["cost_model"])

    code, refined = _json(["costmodel", "refine", *dev, "--budget", "2", "--pool", "300"], capsys)
    assert code == 0 and refined["measured"] == 2 and refined["refit"]["n_train"] == 12
    assert all(c["std_ms"] > 0 and c["measured_ms"] > 0 for c in refined["chosen"])
    nets = Store(tmp_path / "ws").select("local", item="network", space="nasbench201")
    assert len(nets) == 12 and {c["arch"] for c in refined["chosen"]} <= {m.arch for m in nets}
    assert load_cost_model(device="local", space="nasbench201", config=cfg).manifest["n_train"] == 12


def test_bad_arguments_exit_2(tmp_path, capsys):
    cfg = str(local_config(tmp_path, measurement=FAST))
    dev = ["--config", cfg, "--device", "local"]
    assert main(["costmodel", "fit", *dev, "--space", "resnet"]) == 2
    assert main(["costmodel", "refine", *dev, "--budget", "0", "--space", "nasbench201"]) == 2
    assert main(["costmodel", "refine", *dev, "--budget", "2"]) == 2  # no saved model: which space?
    assert main(["costmodel", "evaluate", *dev, "--folds", "1"]) == 2
    assert main(["costmodel", "fit", "--config", cfg, "--device", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "give --space" in err
    assert main(["costmodel", "transfer", "--help"]) == 0  # the other engineer's sub-command still registered
