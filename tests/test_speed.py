"""Speed normalisation: the reference kernel after every round, relative latencies, and the device's
reference speed fixed once in the store (real agent, real ONNX Runtime, real SQLite store)."""
import json
import statistics

import numpy as np
import onnx
import pytest

from device_agents import timing
from hwnas import config, speed
from hwnas.cli import main
from hwnas.store import Store
from tests.helpers import conv_model, local_config

MEASUREMENT = "{warmup_ms: 5, repeat: 4, min_repeat_ms: 2, sessions: 2, timeout_s: 60, drift_threshold: 1000}"


def _matmul():
    a = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    return lambda: a @ a


@pytest.mark.parametrize("on", [True, False])
def test_the_reference_kernel_is_timed_after_every_round_when_asked(on):
    settings = {"warmup_ms": 1, "repeat": 5, "min_repeat_ms": 1, "max_remeasure": 0, "reference_rounds": on}
    result = timing.measure(_matmul(), settings, timing.ReferenceKernel())
    assert len(result["rounds_ms"]) == 5
    assert len(result["reference_rounds_ms"]) == (5 if on else 0)
    assert all(p > 0 for p in result["reference_rounds_ms"])
    assert result["phase_ms"]["rounds"] > 0 and result["phase_ms"]["reference"] > 0


def test_the_memory_probe_is_timed_before_and_after_beside_the_reference_kernel():
    settings = {"warmup_ms": 1, "repeat": 3, "min_repeat_ms": 1, "max_remeasure": 0}
    memory = timing.ReferenceKernel(_matmul(), "memory", calls=1)
    result = timing.measure(_matmul(), settings, timing.ReferenceKernel(), memory)
    assert len(result["memory_probe_ms"]) == 2 and min(result["memory_probe_ms"]) > 0
    assert result["memory_probe_kernel"] == "memory" and len(result["reference_ms"]) == 2
    bare = timing.measure(_matmul(), settings, None, memory)  # a source that cannot drift: no probe at all
    assert bare["memory_probe_ms"] == [] and bare["memory_probe_kernel"] is None


def test_a_session_s_relative_time_is_the_median_of_round_over_probe():
    # a codec-level check of the arithmetic: the second half of the rounds ran on a machine twice as slow
    slow_half = {"rounds_ms": [1.0, 1.0, 2.0, 2.0, 2.0], "reference_rounds_ms": [0.5, 0.5, 1.0, 1.0, 1.0]}
    assert speed.relative_median(slow_half) == pytest.approx(2.0)
    assert speed.relative_median({"rounds_ms": [1.0], "reference_rounds_ms": []}) is None
    stats = speed.session_stats([slow_half, {"rounds_ms": [3.0], "reference_rounds_ms": [1.0]}])
    assert stats["relative_medians"] == [pytest.approx(2.0), pytest.approx(3.0)]
    assert stats["relative_latency"] == pytest.approx(2.5)
    assert stats["reference_rounds_median_ms"] == pytest.approx(1.0)
    assert stats["memory_probe_median_ms"] is None and stats["memory_probe_ms"] == [[], []]
    probed = speed.session_stats([{**slow_half, "memory_probe_ms": [2.0, 3.0]}, {"memory_probe_ms": [5.0, 4.0]}])
    assert probed["memory_probe_ms"] == [[2.0, 3.0], [5.0, 4.0]] and probed["memory_probe_median_ms"] == 3.5


def _measure(cfg, models, capsys):
    code = main(["measure", "--config", str(cfg), "--device", "local", "--json", "--onnx", *map(str, models)])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


def test_normalised_latency_uses_one_memory_speed_fixed_in_the_store(tmp_path, capsys):
    cfg = local_config(tmp_path, measurement=MEASUREMENT)
    models = [conv_model(tmp_path / f"m{i}.onnx", seed=i) for i in range(speed.SPEED_MEASUREMENTS + 1)]
    first = _measure(cfg, models[:speed.SPEED_MEASUREMENTS - 1], capsys)
    assert all(r["normalised_ms"] is None for r in first)  # too few measurements for a reference speed yet
    store = Store(tmp_path / "ws")
    [m] = store.select("local", newest_only=False)[:1]
    assert m.stats["reference_kernel"].startswith("onnxruntime:")  # the probe conv, in the device's runtime
    assert [len(p) for p in m.stats["reference_rounds_ms"]] == [len(r) for r in m.raw]
    assert m.stats["relative_latency"] == pytest.approx(statistics.median(m.stats["relative_medians"]))

    second = _measure(cfg, models[speed.SPEED_MEASUREMENTS - 1:], capsys)
    normaliser = speed.Normaliser(Store(tmp_path / "ws"))
    memory = normaliser.reference_speed("local", m.stats["memory_probe_kernel"], memory=True)
    everything = Store(tmp_path / "ws").select("local", newest_only=False)
    oldest = [x.stats["memory_probe_median_ms"] for x in everything[:speed.SPEED_MEASUREMENTS]]
    assert memory == pytest.approx(statistics.median(oldest))
    for row, stored in zip(second, everything[speed.SPEED_MEASUREMENTS - 1:]):  # raw × memory speed ÷ its probe
        probe = stored.stats["memory_probe_median_ms"]
        assert row["normalised_ms"] == pytest.approx(stored.latency_ms * memory / probe)
        assert row["latency_ms"] == stored.latency_ms  # the raw median is kept as it was

    # a measurement stored before the memory probe existed falls back to its round probes
    ref = normaliser.reference_speed("local", m.stats["reference_kernel"])
    assert ref == pytest.approx(statistics.median(x.stats["reference_rounds_median_ms"]
                                                  for x in everything[:speed.SPEED_MEASUREMENTS]))
    with Store(tmp_path / "ws")._transaction() as db:
        db.execute("UPDATE measurements SET stats=json_remove(stats, '$.memory_probe_median_ms') WHERE id=?",
                   (everything[-1].id,))
    [old] = [x for x in Store(tmp_path / "ws").select("local") if x.id == everything[-1].id]
    assert normaliser.normalised_ms(old) == pytest.approx(old.stats["relative_latency"] * ref)

    # later measurements do not move the constants, even if their probes run at another speed
    with Store(tmp_path / "ws")._transaction() as db:
        db.execute("UPDATE measurements SET stats=json_set(stats, '$.reference_rounds_median_ms', 99.0, "
                   "'$.memory_probe_median_ms', 99.0)")
    again = speed.Normaliser(Store(tmp_path / "ws"))
    assert again.reference_speed("local", m.stats["reference_kernel"]) == ref
    assert again.reference_speed("local", m.stats["memory_probe_kernel"], memory=True) == memory


def test_every_session_stores_the_memory_probe_of_a_model_bigger_than_a_core_s_cache(tmp_path, capsys):
    from hwnas.measure import probe_file

    cfg = local_config(tmp_path, measurement=MEASUREMENT)
    _measure(cfg, [conv_model(tmp_path / "m.onnx")], capsys)
    [m] = Store(tmp_path / "ws").select("local")
    probes = m.stats["memory_probe_ms"]
    assert [len(p) for p in probes] == [2, 2] and min(min(p) for p in probes) > 0  # before and after, per session
    assert m.stats["memory_probe_median_ms"] == pytest.approx(statistics.median([p for s in probes for p in s]))
    kernel = m.stats["memory_probe_kernel"]
    assert kernel.startswith("onnxruntime:") and kernel != m.stats["reference_kernel"]
    weights = onnx.load(str(probe_file(tmp_path / "ws", memory=True))).graph.initializer
    assert sum(np.prod(w.dims) for w in weights) * 4 >= 8e6  # 8 MB: more than any core's L2 here


def test_profiles_carry_the_reference_kernel_around_them(tmp_path):
    from hwnas import fleet
    from hwnas.measure import Item, file_sha256, measure_items

    reg = config.load(local_config(tmp_path, measurement=MEASUREMENT))
    device = reg.device("local")
    model = conv_model(tmp_path / "m.onnx")
    sha = file_sha256(model)
    store = Store(reg.workspace)

    def work(dev, client):
        return measure_items(dev, client, store, [Item(model, sha, f"onnx:{sha}", source=str(model))], "r1",
                             per_node=True)

    [m] = fleet.run(reg, [device], work, store=store)[0].value
    probes = m.stats["profile_reference_ms"]
    assert len(probes) == 2 and min(probes) > 0
    assert store.node_profile(m.id)  # the per-node times the probes put at the reference speed


def test_normalise_false_takes_no_round_probes(tmp_path, capsys):
    cfg = local_config(tmp_path, measurement=MEASUREMENT.replace("}", ", normalise: false}"))
    [row] = _measure(cfg, [conv_model(tmp_path / "m.onnx")], capsys)
    [m] = Store(tmp_path / "ws").select("local")
    assert row["normalised_ms"] is None
    assert m.stats["relative_latency"] is None and m.stats["reference_rounds_ms"] == [[], []]


def _probed(store, sig, raw_ms, round_probe, memory_probe):
    """Store a measurement of ``sig`` taken while the probes ran at the given times (reference speeds 1 ms)."""
    from tests.test_store import measurement

    m = measurement(raw_ms, signature=f"onnx:{sig}")
    m.stats.update(relative_latency=raw_ms / round_probe, reference_kernel="ref",
                   reference_rounds_median_ms=round_probe, memory_probe_kernel="mem",
                   memory_probe_median_ms=memory_probe)
    store.add(m)
    return store.history("pi", "onnxruntime", f"onnx:{sig}")[-1]


def test_the_speed_check_fixes_the_normalisation_under_which_re_measurements_agree(tmp_path):
    """Between two measurements of each model the device slowed ×1.3 and its round probe with it, while
    the memory probe wandered on its own: round probes put the pairs back together, so the check picks
    rounds-v1, fixes it once for the device, and every latency (and profile) follows it."""
    store = Store(tmp_path)
    for key in ("rounds-v1:pi:ref", "memory-v1:pi:mem"):
        store.set_meta_once(f"reference_speed:{key}", json.dumps({"ms": 1.0, "measurements": 20}))
    rng = np.random.default_rng(0)
    pairs = []
    for i in range(speed.MIN_CHECK_PAIRS + 2):
        ms = float(rng.uniform(0.5, 5.0))
        pairs.append((_probed(store, i, ms, 1.0, 1.0),
                      _probed(store, i, ms * 1.3, 1.3, float(rng.choice([0.8, 1.6])))))
    normaliser = speed.Normaliser(store)
    first, second = pairs[0]
    assert normaliser.method("pi") is None  # before a check: memory probes where there are some
    assert normaliser.latency_ms(second) == pytest.approx(second.latency_ms / second.stats["memory_probe_median_ms"])

    check = speed.compare(pairs, normaliser)
    assert check["pairs"] == len(pairs) and check["method"] == speed.METHOD
    assert check["scores"][speed.METHOD] == {"within_10": 1.0, "rmspe": pytest.approx(0.0, abs=1e-12)}
    assert check["scores"][speed.RAW]["within_10"] == 0.0 and check["scores"][speed.RAW]["rmspe"] == pytest.approx(0.3)
    assert check["scores"][speed.MEMORY_METHOD]["within_10"] == 0.0
    assert normaliser.fix_method("pi", check) == check
    again = speed.Normaliser(store)  # fixed in the store: a new reader, even a later check, keeps it
    assert again.fix_method("pi", {**check, "method": speed.RAW})["method"] == speed.METHOD
    assert again.method("pi") == speed.METHOD and again.method("other") is None
    assert again.latency_ms(second) == pytest.approx(first.latency_ms)
    second.stats["profile_reference_ms"] = [1.3]
    assert again.profile_scale(second) == pytest.approx(1 / 1.3)
    assert again.latency_ms(second, speed.RAW) == second.latency_ms

    raw = speed.Normaliser(Store(tmp_path / "raw"))
    raw.store.set_meta_once("normaliser:pi", json.dumps({**check, "method": speed.RAW}))
    assert raw.latency_ms(second) == second.latency_ms and raw.profile_scale(second) == 1.0
    assert raw.reply_scale("pi", {"reference_kernel": "ref", "reference_ms": [2.0]}) == 1.0

    few = speed.compare(pairs[:speed.MIN_CHECK_PAIRS - 1], normaliser)
    assert few["method"] is None and few["pairs"] == speed.MIN_CHECK_PAIRS - 1
    with pytest.raises(ValueError, match="without a method"):
        normaliser.fix_method("pi2", few)
