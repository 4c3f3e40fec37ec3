"""Hardware in the loop with real measurements on ``local``: ``hwnas search`` measures its finalists,
refits a cost model fitted on deliberately few networks, and its predictions move toward the
measurements; each finalist is measured and stored once."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hwnas import load_cost_model, sweep
from hwnas.cli import main
from hwnas.store import Store
from tests.helpers import local_config

# rounds of >= 20 ms (this VM switches between a fast and a slow mode within tens of ms: shorter rounds
# land in one mode, and the refit then chases that noise; bench/speed_modes.py), 3 sessions, drift retries
# off (see tests/helpers.py)
MEASUREMENT = "{warmup_ms: 5, repeat: 5, min_repeat_ms: 20, sessions: 3, timeout_s: 60, drift_threshold: 1000}"
INITIAL_NETWORKS = 10


def _json(args, capsys):
    code = main([*args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def _rounded(doc):
    """``doc`` with floats to 12 significant digits: a cost model's batched predictions can differ in the
    last bit with the batch they were computed in (a resumed search predicts its archive in one batch)."""
    if isinstance(doc, float):
        return float(f"{doc:.12g}")
    if isinstance(doc, dict):
        return {k: _rounded(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_rounded(v) for v in doc]
    return doc


def _mape(predicted, measured) -> float:
    predicted, measured = np.asarray(predicted), np.asarray(measured)
    return float(100 * np.median(np.abs(predicted - measured) / measured))


@pytest.mark.slow
def test_search_measures_finalists_and_refits_the_cost_model(tmp_path, capsys):
    cfg = str(local_config(tmp_path, measurement=MEASUREMENT))
    dev = ["--config", cfg, "--device", "local"]
    profile = ["profile", *dev, "--space", "nasbench201"]
    _json([*profile, "--what", "blocks"], capsys)
    _json([*profile, "--what", "networks", "--num", str(INITIAL_NETWORKS)], capsys)
    assert _json(["costmodel", "fit", *dev, "--space", "nasbench201"], capsys)[0]["n_train"] == INITIAL_NETWORKS
    st = Store(tmp_path / "ws")
    swept = {m.arch for m in st.select("local", "onnxruntime", item="network", space="nasbench201")}
    st.close()

    search = ["search", "--space", "nasbench201", *dev, "--accuracy", "nasbench201:cifar10_valid",
              "--evaluations", "60", "--latency-ms", "0.3,0.6", "--finalists", "5", "--rounds", "3", "--seed", "0",
              "--out", str(tmp_path / "search")]
    out = _json(search, capsys)
    rounds = out["rounds"]
    assert 1 <= len(rounds) <= 3 and [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
    first = rounds[0]["devices"][0]
    assert first["device"] == "local" and all(f["measured_ms"] > 0 for f in first["finalists"])
    assert not first["agree"], "a cost model of 10 networks agreed with every finalist within 5%"

    # the refits learned from the measurements: every finalist of every round, predicted by the model the
    # search started with (its copy in the state directory) and by the last refitted one
    assert first["refit"]["n_train"] == INITIAL_NETWORKS + first["newly_measured"]
    measured = {f["arch"]: f["measured_ms"] for r in rounds for f in r["devices"][0]["finalists"]}
    initial = load_cost_model(space="nasbench201", path=tmp_path / "search" / "models" / "round-1" / "local.json")
    final = load_cost_model(device="local", space="nasbench201", config=cfg)
    # the newest model is the last refit's (a round whose finalists all agree measures them but does not
    # refit), trained on the first networks and every finalist measured up to that round
    refitted = [i for i, r in enumerate(rounds) if r["devices"][0]["refit"]]
    newest = rounds[refitted[-1]]["devices"][0]["refit"]
    assert final.manifest["n_train"] == newest["n_train"] == INITIAL_NETWORKS + sum(
        r["devices"][0]["newly_measured"] for r in rounds[:refitted[-1] + 1])
    before = _mape(initial.predict(list(measured)), list(measured.values()))
    after = _mape(final.predict(list(measured)), list(measured.values()))
    assert after < before, f"median |error| on {len(measured)} finalists: initial {before:.1f}%, refit {after:.1f}%"

    # each finalist measured and stored once, however many rounds it was a finalist in
    st = Store(tmp_path / "ws")
    finalists = {f["arch"] for r in rounds for f in r["devices"][0]["finalists"]}
    for arch in finalists:
        assert len(st.history("local", "onnxruntime", sweep.network_signature("nasbench201", arch))) == 1, arch
    # a finalist the first sweep had measured already is reused, not measured again
    assert sum(r["devices"][0]["newly_measured"] for r in rounds) == len(finalists - swept)
    assert st.count(item="network") == INITIAL_NETWORKS + len(finalists - swept)

    # the reported result: the last round's finalists carry their measurement
    last = {f["arch"]: f for f in rounds[-1]["devices"][0]["finalists"]}
    (device,) = out["devices"]
    for entry in [*device["front"], *device["best"]]:
        if entry["arch"] in last:
            assert entry["measured_ms"] == last[entry["arch"]]["measured_ms"]
    assert all(b["arch"] is None or b["measured_ms"] is not None for b in device["best"])

    # resuming a finished search gives the same result and measures nothing
    assert _rounded(_json(search, capsys)) == _rounded(out)
    assert st.count(item="network") == INITIAL_NETWORKS + len(finalists - swept)
