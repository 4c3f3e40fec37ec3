"""hwnas predict and the kernel predictor: real agent, real onnxruntime, kernels measured on this machine.

One module-scoped predictor is built for real but small: the fusion rules are learned by
profiling the test graphs on the local agent, a few kernel samples of five types are
measured with short rounds, and regressors are fitted on them (types without samples —
softmax, resize, ... — have no predictor, which the fallback tests rely on).
"""
from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from cost_models import kernel_model
from cost_models.onnx_kernels import split
from hwnas import config, kernel_fit, kernel_sampling
from hwnas.cli import main
from hwnas.kernel_graphs import GraphBuilder, save
from hwnas.predict import predictor_path
from hwnas.store import Store
from tests.helpers import local_config

TYPES = {"conv": 8, "dwconv": 6, "pool": 5, "globalpool": 4, "gemm": 4, "act": 5, "eltwise": 4, "concat": 4}


def _configs():
    """The kernel samples of the module's predictor: a few of each of :data:`TYPES`, kept small (the tests
    are about the machinery, not the figures)."""
    rng = np.random.default_rng(0)
    configs = [c for kind, n in TYPES.items() for c in kernel_sampling.sample(kind, n, rng)]
    for c in configs:
        c["h"] = min(c.get("h", 1), 14)
    return configs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(config path, predictor path) of a small predictor measured on the local device."""
    tmp = tmp_path_factory.mktemp("predict")
    cfg = local_config(tmp)
    reg = config.load(cfg)
    device = reg.device("local")
    store = Store(reg.workspace)
    rules, _ = kernel_fit.ensure_rules(reg, device, store)
    kernel_fit.measure(reg, device, store, _configs(), quiet=True)
    rows, calibration = kernel_fit.training_rows(store, device, rules)
    predictor = kernel_model.fit(rules, rows, calibration, device.name, device.backend)
    path = kernel_model.save(predictor, predictor_path(reg.workspace, device.name, device.backend))
    store.close()
    return cfg, path, tmp


def _corpus_model(family: str, seed: int, path):
    """A model of a corpus family at 64×64, exported with torch to ``path``."""
    from bench.corpus_models import export, sample

    conf = sample(family, np.random.default_rng(seed))
    conf["resolution"] = 64
    export(family, conf, str(path))
    return path


def _conv_then(op: str, tmp, name: str):
    g = GraphBuilder((1, 16, 8, 8))
    y = g.conv("x", 16)
    z = g.op(op, [y], g.shapes[y])
    return save(g.model([g.conv(z, 16)]), tmp / name)


def test_op_without_predictor_warns_and_gets_finite_estimate(built, capsys, caplog):
    cfg, _, tmp = built
    path = _conv_then("Erf", tmp, "erf.onnx")
    assert main(["predict", "--device", "local", "--onnx", str(path), "--json", "--config", str(cfg),
                 "--per-kernel"]) == 0
    out = capsys.readouterr()
    [row] = json.loads(out.out)
    assert row["contains_unpredicted"] and row["unpredicted_ops"] == ["Erf"]
    assert np.isfinite(row["latency_ms"]) and row["latency_ms"] > row["base_ms"]
    erf = [k for k in row["per_kernel"] if k["op"] == "Erf"]
    assert len(erf) == 1 and erf[0]["predicted_us"] > 0 and not erf[0]["predicted"]
    warned = out.err + caplog.text  # the CLI logs warnings to stderr (pytest captures the log)
    assert "no kernel predictor for op 'Erf'" in warned and str(path) in warned


def test_saved_predictor_loads_from_another_directory_and_from_json(built, tmp_path):
    cfg, path, tmp = built
    model = onnx.load(str(_conv_then("Relu", tmp, "relu.onnx")))
    original, _ = kernel_model.load(path)
    moved = tmp_path / "elsewhere" / "p.json"
    moved.parent.mkdir()
    shutil.copy(path, moved)
    again, warnings = kernel_model.load(moved)
    from_text, _ = kernel_model.loads(moved.read_text())
    want = original.predict(model).latency_ms
    assert again.predict(model).latency_ms == pytest.approx(want)
    assert from_text.predict(model).latency_ms == pytest.approx(want)
    assert warnings == []
    assert main(["predict", "--device", "local", "--onnx", str(tmp / "relu.onnx"), "--predictor", str(moved),
                 "--config", str(cfg), "--json"]) == 0


def test_predictor_version_mismatch_is_reported_and_tampering_refused(built, tmp_path):
    _, path, _ = built
    doc = json.loads(path.read_text())
    doc["manifest"]["sklearn"] = "0.0.1"
    body = {k: v for k, v in doc.items() if k != "sha256"}
    import hashlib
    doc["sha256"] = hashlib.sha256(kernel_model._canonical(body)).hexdigest()
    _, warnings = kernel_model.loads(json.dumps(doc))
    assert len(warnings) == 1 and "sklearn 0.0.1" in warnings[0]
    doc["base_ms"] += 1.0
    with pytest.raises(kernel_model.PredictorFileError, match="checksum"):
        kernel_model.loads(json.dumps(doc))
    doc = json.loads(path.read_text())
    doc["version"] = 99
    with pytest.raises(kernel_model.PredictorFileError, match="version"):
        kernel_model.loads(json.dumps(doc))


@pytest.mark.parametrize("family", ["googlenet", "densenet", "squeezenet", "shufflenet_v2"])
def test_hard_families_predict(built, family, capsys):
    cfg, _, tmp = built
    path = _corpus_model(family, 1, tmp / f"{family}.onnx")
    assert main(["predict", "--device", "local", "--onnx", str(path), "--json", "--config", str(cfg)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert np.isfinite(row["latency_ms"]) and row["latency_ms"] > 0 and row["kernels"] > 10


def test_kernel_targets_share_out_the_measured_latency(built):
    """A sample's training target is its measured latency less one call's fixed cost (the empty model's
    latency outside its node), shared out by its profile: not the profiler's own node times."""
    from hwnas import kernel_rules
    from hwnas.speed import Normaliser

    cfg, _, _ = built
    reg = config.load(cfg)
    device = reg.device("local")
    store = Store(reg.workspace)
    rules, _ = kernel_fit.ensure_rules(reg, device, store)
    rows, calibration = kernel_fit.training_rows(store, device, rules)
    normaliser = Normaliser(store)
    measured = store.select("local", "onnxruntime", space=kernel_fit.SPACE)
    [empty] = [m for m in measured if m.item != "kernel"]
    inside = sum(n["dur_us"] for n in store.node_profile(empty.id)) * normaliser.profile_scale(empty) / 1000
    call_ms = normaliser.latency_ms(empty) - inside
    targets = {kernel_sampling.signature(c): us for kind, rs in rows.items() if kind != "reorder" for c, _k, us in rs}
    checked = 0
    for m in measured:
        if m.item != "kernel" or m.signature not in targets:
            continue
        nodes = store.node_profile(m.id)
        share = sum(n["dur_us"] for n in nodes if n["op_type"] not in kernel_rules.REORDERS) / sum(
            n["dur_us"] for n in nodes)
        expected = max((normaliser.latency_ms(m) - call_ms) * 1000 * share, kernel_fit.FLOOR_US)
        assert targets[m.signature] == pytest.approx(expected)
        checked += 1
    store.close()
    assert checked == len(targets) > 30
    assert calibration["n"] == checked  # the samples calibrate; the empty model is the call cost itself


def test_network_weight_term_counts_convolution_weights_only(built):
    """The whole-network calibration charges cold weights for convolutions, not for fully connected layers
    (whose samples already stream their weights)."""
    _, path, _ = built
    predictor, _ = kernel_model.load(path)
    g = GraphBuilder((1, 16, 8, 8))
    pooled = g.op("GlobalAveragePool", [g.conv("x", 32)], (1, 32, 1, 1))
    flat = g.op("Flatten", [pooled], (1, 32))
    fc = g.op("Gemm", [flat, g.weight(np.ones((100, 32))), g.weight(np.zeros(100))], (1, 100), transB=1)
    kernels = predictor.kernels(g.model([fc]))
    assert {k.type for k in kernels} >= {"conv", "gemm"}
    assert kernel_model.conv_weights(kernels) == 16 * 32 * 9
    calibrated = predictor.manifest["network_calibration"] = {"scale": 1.0, "per_mweight_ms": 2.0, "per_kernel_ms": 0.0,
                                                               "base_ms": 0.0, "rmspe": 0.0, "n": 8}
    raw = sum(k["predicted_us"] for k in predictor.predict_kernels(kernels).kernels) / 1000
    total = predictor.predict_kernels(kernels).latency_ms
    assert total == pytest.approx(raw + calibrated["per_mweight_ms"] * 16 * 32 * 9 / 1e6)


def test_channel_split_keeps_the_shapes_after_it(built):
    """ShuffleNetV2's channel split is a Slice whose bounds the exporter computes from the tensor's shape;
    the splitter evaluates that arithmetic, so the kernels after it have the shapes the runtime sees."""
    import onnxruntime as ort

    _, path, tmp = built
    predictor, _ = kernel_model.load(path)
    model = onnx.load(str(_corpus_model("shufflenet_v2", 1, tmp / "shufflenet-shapes.onnx")))
    convs = {k.nodes[0]: k for k in predictor.kernels(model) if k.type in ("conv", "dwconv")}
    # the runtime's own shapes: every conv input made a graph output of an unoptimised session
    wanted = [n for n in model.graph.node if n.name in convs]
    model.graph.output.extend(helper.make_tensor_value_info(n.input[0], TensorProto.FLOAT, None) for n in wanted)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    values = session.run([n.input[0] for n in wanted], {"input": np.zeros((1, 3, 64, 64), np.float32)})
    assert len(wanted) > 10
    for node, value in zip(wanted, values):
        assert convs[node.name].features["hin"] == value.shape[2], node.name


def test_malformed_or_non_cnn_onnx_exits_2_naming_it(built, capsys):
    cfg, _, tmp = built
    garbage = tmp / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    assert main(["predict", "--device", "local", "--onnx", str(garbage), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert str(garbage) in err and "Traceback" not in err
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])
    mlp = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "mlp", [x], [y]),
                            opset_imports=[helper.make_opsetid("", 17)])
    mlp.ir_version = 8
    path = tmp / "mlp.onnx"
    onnx.save(mlp, str(path))
    assert main(["predict", "--device", "local", "--onnx", str(path), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "CNN" in err


def test_splitter_matches_the_runtime_kernel_count(built):
    """The host-side split with the learned rules finds the compute kernels the runtime's profiler ran."""
    import onnxruntime as ort

    _, path, tmp = built
    predictor, _ = kernel_model.load(path)
    model_path = _corpus_model("resnet", 3, tmp / "resnet.onnx")
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(tmp / "prof")
    session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    session.run(None, {"input": np.zeros((1, 3, 64, 64), np.float32)})
    with open(session.end_profiling()) as trace:
        events = json.load(trace)
    ran = [e["args"]["op_name"] for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    compute = [op for op in ran if not op.startswith("Reorder")]
    mine = [k for k in split(onnx.load(str(model_path)), predictor.rules) if k.type != "reorder"]
    assert len(mine) == len(compute)


def test_store_migration_adds_node_shapes(tmp_path):
    """A version-2 store (node profiles without shapes) is migrated forward on open."""
    from hwnas.store import SCHEMA_VERSION

    ws = tmp_path / "ws"
    Store(ws).close()
    db = sqlite3.connect(ws / "measurements.sqlite")
    for column in ("position", "input_shapes", "output_shapes"):
        db.execute(f"ALTER TABLE node_profiles DROP COLUMN {column}")
    db.execute("PRAGMA user_version=2")
    db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    db.commit()
    db.close()
    Store(ws).close()
    db = sqlite3.connect(ws / "measurements.sqlite")
    columns = {row[1] for row in db.execute("PRAGMA table_info(node_profiles)")}
    assert {"position", "input_shapes", "output_shapes"} <= columns
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3


def test_kernel_regressors_fit_the_residual_of_a_flops_traffic_roofline():
    # a codec-level check of the regression: latencies that are exactly a roofline (FLOPs, traffic, a
    # constant, and the weights of kernels run inside a network) are recovered off the sampled grid, far
    # closer than trees alone would (they are piecewise constant in FLOPs), and the cold-weight term
    # carries over to a conv heavier than any trained on
    from cost_models.onnx_kernels import Kernel

    rng = np.random.default_rng(0)

    def conv(cin, cout, h, alone):
        flops = 2.0 * cin * cout * h * h * 9
        return Kernel("conv", "c", [], {"cin": cin, "cout": cout, "k": 3, "stride": 1, "hin": h, "hout": h,
                                        "act": 0, "sum": 0, "nchwc": 1, "alone": alone}, flops)

    def latency(k):
        cold = 0.0 if k.features["alone"] else kernel_model.weight_numel(k)
        return 2e-4 * k.flops + 1e-3 * kernel_model.traffic(k) + 5.0 + 3e-4 * cold

    train = [conv(int(rng.integers(8, 512)), int(rng.integers(8, 512)), int(rng.choice([7, 14, 28, 56])), i % 2)
             for i in range(160)]
    reg = kernel_model.KernelRegressor().fit(np.stack([kernel_model.features(k) for k in train]),
                                             np.array([latency(k) for k in train]))
    assert reg.roofline_ == pytest.approx([2e-4, 1e-3, 5.0, 3e-4], rel=1e-3)
    test = [conv(300, 77, 20, 1), conv(33, 480, 10, 0), conv(1024, 1024, 4, 0)]
    got = reg.predict(np.stack([kernel_model.features(k) for k in test]))
    assert got == pytest.approx([latency(k) for k in test], rel=0.02)
    again = kernel_model.KernelRegressor.from_dict(json.loads(json.dumps(reg.to_dict())))
    assert again.predict(np.stack([kernel_model.features(k) for k in test])) == pytest.approx(got)


SMALL_NET = {"resolution": 64, "stem": 16, "stem_k": 3, "stem_pool": 0, "act": "Swish", "bn": 1,
             "head": "pool", "classes": 10, "softmax": 1, "seed": 3,
             "stages": [{"block": b, "depth": 2 if b in ("inverted", "shuffle") else 1, "width": w, "k": 3, "expand": 3,
                         "se": 1} for b, w in (("basic", 16), ("inverted", 24), ("shuffle", 32), ("fire", 32),
                                               ("dense", 32), ("inception", 32), ("bottleneck", 48), ("vgg", 48),
                                               ("plain", 48))]}
"""A small context network with every block kind of :mod:`hwnas.kernel_networks`."""


def test_context_network_kernels_train_as_they_run_in_the_network(built, tmp_path):
    """Every block kind builds a valid model; measured on the device, its profile maps onto its split
    (fused Swish and NCHWc nodes included), and its kernels become rows marked as in a network with that
    network's convolution weights, whose targets share out the measured latency less the call cost."""
    from hwnas import kernel_networks
    from hwnas.kernel_fit import MAX_UNMATCHED, context_needs, kernel_times
    from hwnas.speed import Normaliser

    for cfg in kernel_networks.sample_many(4, seed=1):  # sampled ones stay within the bounds
        stats = kernel_networks.stats(cfg)
        assert stats["macs"] <= kernel_networks.MAX_MACS and stats["weights"] <= kernel_networks.MAX_WEIGHTS
    assert context_needs(tmp_path, 3, seed=1)[0].signature == context_needs(tmp_path, 3, seed=1)[0].signature
    cfg_path, _, tmp = built
    shutil.copytree(tmp / "ws", tmp_path / "ws")
    reg = config.load(local_config(tmp_path))
    device = reg.device("local")
    store = Store(reg.workspace)
    rules, _ = kernel_fit.ensure_rules(reg, device, store)
    model = kernel_networks.model(SMALL_NET)
    onnx.checker.check_model(model, full_check=True)
    need = kernel_fit._model_need(kernel_networks.signature(SMALL_NET), "network", tmp_path / "nets",
                                  lambda: kernel_networks.model(SMALL_NET))
    kernel_fit._measure_needs(reg, device, store, [need], quiet=True, seed=0)
    [net] = store.select("local", "onnxruntime", item="network", space=kernel_fit.SPACE)
    nodes = store.node_profile(net.id)
    kernels = split(model, rules)
    times, reorders, unmatched = kernel_times(model, kernels, nodes)
    total = sum(n["dur_us"] for n in nodes)
    assert unmatched <= MAX_UNMATCHED * total
    assert {kernels[i].type for i in times} >= {"conv", "dwconv", "concat", "split", "shuffle", "pool", "globalpool",
                                                 "gemm", "softmax"} | ({"norm"} if not rules.bn_as_conv else set())
    lone_bn = [i for i, k in enumerate(kernels) if k.nodes[0].startswith("batchnormalization")]
    assert lone_bn and all(i in times for i in lone_bn)  # as a norm, or on AVX2 as a Conv named <bn>_bn_nchwc
    assert any(kernels[i].op == "Swish" for i in times)  # x * sigmoid(x), profiled under its fusion's name
    rows, _ = kernel_fit.training_rows(store, device, rules)
    inside = [(k, us) for rs in rows.values() for c, k, us in rs if c.get("network") == net.model_sha256]
    weights = kernel_model.conv_weights(kernels)
    assert len(inside) == sum(1 for i in times if kernels[i].type != "other")
    assert all(k.features["alone"] == 0 and k.features["net_weights"] == weights for k, _us in inside)
    assert all(k.features["alone"] == 1 for rs in rows.values() for c, k, _us in rs if "type" in c)
    reorder_us = [us for c, k, us in rows["reorder"] if k.features["alone"] == 0]
    assert len(reorder_us) == len(reorders)
    normaliser = Normaliser(store)
    [empty] = store.select("local", "onnxruntime", item="block", space=kernel_fit.SPACE)
    call_ms = normaliser.latency_ms(empty) - sum(
        n["dur_us"] for n in store.node_profile(empty.id)) * normaliser.profile_scale(empty) / 1000
    shared_ms = (sum(us for _k, us in inside) + sum(reorder_us)) / 1000
    expected_ms = (normaliser.latency_ms(net) - call_ms) * (total - unmatched) / total
    assert shared_ms == pytest.approx(expected_ms, rel=0.02)  # floors of tiny kernels aside
    without, _ = kernel_fit.training_rows(store, device, rules, networks=False)
    assert not any("network" in c for rs in without.values() for c, _k, _us in rs)
    _check_calibration_on_context_networks(kernel_model.load(built[1])[0], store, device)
    store.close()


def _check_calibration_on_context_networks(predictor, store, device):
    """A whole-network calibration is adopted only when it predicts the stored context networks no worse
    than the samples' own: the samples' calibration itself passes, one charging 1 ms a kernel does not."""
    from hwnas.kernel_fit import calibration_check
    same = {"base_ms": predictor.base_ms, "scale": predictor.scale, "per_mweight_ms": 0.0, "per_kernel_ms": 0.0}
    check = calibration_check(predictor, same, store, device)
    assert check["networks"] == 1 and check["adopted"]
    assert check["network_rmspe"] == pytest.approx(check["sample_rmspe"])
    worse = calibration_check(predictor, {**same, "per_kernel_ms": 1.0}, store, device)
    assert not worse["adopted"] and worse["network_rmspe"] > worse["sample_rmspe"] + 1.0


def test_every_sampled_kernel_type_can_be_refined():
    """Refinement moves a size feature of any sampled type (softmax's only size is its length), and
    the refined configurations still build."""
    rng = np.random.default_rng(0)
    for kind in kernel_sampling.TYPES:
        near = kernel_sampling.refine(kernel_sampling.sample(kind, 3, rng), 6, rng)
        assert len(near) == 6 and all(c["type"] == kind for c in near)
        onnx.checker.check_model(kernel_sampling.model(near[0]))


def test_the_speed_check_measures_a_spread_of_samples_twice_and_fixes_the_device_s_normalisation(built, tmp_path,
                                                                                                 monkeypatch):
    """The build's speed check re-measures its share of the samples on the device, scores the three
    normalisations on the pairs and fixes the best for the device; run again, it keeps that choice and
    measures nothing."""
    from hwnas import speed

    shutil.copytree(built[2] / "ws", tmp_path / "ws")
    reg = config.load(local_config(tmp_path))
    device = reg.device("local")
    store = Store(reg.workspace)
    monkeypatch.setattr(kernel_fit, "SPEED_CHECK_SAMPLES", speed.MIN_CHECK_PAIRS + 2)
    before = store.count()
    check, measured, secs = kernel_fit.speed_check(reg, device, store, _configs(), 0, quiet=True, seed=0)
    assert measured == speed.MIN_CHECK_PAIRS + 2 and secs > 0
    assert store.count() == before + measured
    twice = [sig for sig, n in store.signature_counts("local", "onnxruntime").items() if n == 2]
    assert len(twice) == measured and all(store.node_profile(store.latest("local", "onnxruntime", sig).id)
                                          for sig in twice)  # re-measured with a profile, as training reads it
    assert check["pairs"] == measured and check["method"] in speed.METHODS
    assert set(check["scores"]) == set(speed.METHODS)
    assert all(0.0 <= s["within_10"] <= 1.0 and s["rmspe"] >= 0.0 for s in check["scores"].values())
    assert speed.Normaliser(store).method("local") == check["method"]
    assert kernel_fit.speed_check(reg, device, store, _configs(), 0, quiet=True, seed=0) == (check, 0, 0.0)
    store.close()
