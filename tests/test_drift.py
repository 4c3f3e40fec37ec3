"""Drift: sessions whose reference probe moved against the device's stored baseline are
re-measured and left out (real agent, real store)."""
import json
import sqlite3

from hwnas.cli import main
from hwnas.measure import Item, _passes, combine
from hwnas.store import Store
from tests.helpers import conv_model, local_config

MEASUREMENT = "{warmup_ms: 5, repeat: 3, min_repeat_ms: 2, sessions: 2, drift_retries: 2, drift_threshold: 0.10}"


def _measure(cfg, model, capsys):
    code = main(["measure", "--config", str(cfg), "--device", "local", "--onnx", str(model), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)[0]


def test_a_run_slow_against_the_stored_baseline_is_remeasured_and_flagged(tmp_path, capsys):
    cfg = local_config(tmp_path, measurement=MEASUREMENT)
    model = conv_model(tmp_path / "m.onnx")
    _measure(cfg, model, capsys)
    # The device's history says the reference kernel used to run 1000x faster: every probe
    # of the next run is far off that baseline, as on a device that is busy the whole run.
    db = sqlite3.connect(tmp_path / "ws" / "measurements.sqlite")
    with db:
        for rid, stats in db.execute("SELECT id, stats FROM measurements").fetchall():
            stats = json.loads(stats)
            fast = [[v / 1000 for v in pair] for pair in stats["reference_ms"]]
            stats["reference_ms"] = fast * 10  # enough probes for a baseline
            db.execute("UPDATE measurements SET stats=? WHERE id=?", (json.dumps(stats), rid))
    db.close()
    _measure(cfg, model, capsys)
    [_, second] = Store(tmp_path / "ws").select("local", newest_only=False)
    # 2 sessions + 2 retries, every one under drift: all kept, all used, flagged invalid
    assert len(second.raw) == 4 and second.sessions == 4
    assert second.stats["drift"] is True and second.valid is False
    assert second.stats["reference_kernel"].startswith("onnxruntime:")  # the probe conv, in the device's runtime
    assert second.stats["reference_baseline_ms"] < min(min(p) for p in second.stats["reference_ms"]) / 100
    assert any("reference kernel moved" in w for w in second.warnings)


def _result(median, drift):
    return {"median_ms": median, "rounds_ms": [median] * 3, "drift": drift, "valid": not drift,
            "warnings": ["reference kernel moved 30.0%"] if drift else [], "cov": 0.01, "number": 10,
            "attempts": 1, "reference_ms": [1.0, 1.3 if drift else 1.0], "reference_baseline_ms": 1.0,
            "providers": ["CPUExecutionProvider"]}


class _Client:
    facts = {"agent": "test", "runtimes": {"onnxruntime": "x"}}


def test_combine_uses_only_sessions_without_drift(tmp_path):
    from hwnas import config
    device = config.load(local_config(tmp_path, measurement=MEASUREMENT)).device("local")
    item = Item(path=tmp_path / "m.onnx", sha256="0" * 64, signature="onnx:0")
    m = combine(device, _Client(), item, [_result(1.0, False), _result(1.5, True), _result(1.1, False)], None)
    assert m.latency_ms == 1.05 and m.sessions == 2 and m.valid and m.warnings == []
    assert m.stats["drifted_session_medians_ms"] == [1.5] and len(m.raw) == 3


def test_session_passes_hold_each_item_once_per_pass():
    import random
    a, b = (Item(path=None, sha256=c * 64, signature=c) for c in "ab")
    passes = _passes([a, b, a, b, a], random.Random(0))
    assert [sorted(i.signature for i in p) for p in passes] == [["a", "b"], ["a", "b"], ["a"]]
