"""Whole-network cost model units: features, estimator conventions, safe JSON persistence.

Pure units: a synthetic block LUT over the real NAS-Bench-201 layout, synthetic targets.
"""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from cost_models import persistence
from cost_models.features import FeatureMap, block_cost, layout_sha256
from cost_models.network_model import NetworkCostModel, cross_val_predict
from hwnas import spaces
from lut.signature import parse
from lut.table import BASELINE, LatencyTable


def synthetic_table(space, seed=0, drop=()):
    rng = np.random.default_rng(seed)
    keys = sorted(space.layout().keys() - set(drop))
    records = [(k, float(0.05 + rng.random()), 0.01, 10) for k in keys] + [(BASELINE, 0.02, 0.001, 10)]
    return LatencyTable.from_records(records, device="synthetic", backend="onnxruntime")


def synthetic_data(n=120, seed=0):
    space = spaces.get("nasbench201")
    fmap = FeatureMap(space.layout(), synthetic_table(space))
    archs = space.sample(n, np.random.default_rng(seed))
    X = fmap.transform(space.encode(archs))
    conv3 = X[:, [i for i, name in enumerate(fmap.schema) if name.startswith("share:nor_conv_3x3")]].sum(axis=1)
    noise = np.random.default_rng(seed + 1).normal(0, 0.01, n)
    y = (1.3 * X[:, 0] + 0.2) * (1 + 0.6 * conv3) * np.exp(noise)
    return space, fmap, archs, X, y


def test_lut_sum_matches_the_lut_predictor():
    space = spaces.get("nasbench201")
    table = synthetic_table(space)
    fmap = FeatureMap(space.layout(), table)
    codes = space.encode(space.sample(50, np.random.default_rng(3)))
    assert np.allclose(fmap.lut_sum(codes), table.predictor(space.layout()).raw(codes))
    assert fmap.transform(codes).shape == (50, len(fmap.schema)) and fmap.schema[0] == "lut_sum"


def test_block_cost_of_a_conv():
    macs, params, acts = block_cost(parse("nor_conv_3x3-input:32x32x16-output:32x32x16"))
    assert macs == pytest.approx(32 * 32 * 16 * 16 * 9 / 1e6)
    assert params == pytest.approx((16 * 16 * 9 + 16) / 1e6) and acts == pytest.approx(2 * 32 * 32 * 16 / 1e6)


def test_missing_lut_entry_is_named_and_masked():
    space = spaces.get("nasbench201")
    missing = "nor_conv_3x3-input:8x8x64-output:8x8x64"
    fmap = FeatureMap(space.layout(), synthetic_table(space, drop=[missing]))
    codes = space.encode(["|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
                          "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"])
    assert fmap.covered(codes).tolist() == [False, True]
    with pytest.raises(ValueError, match="nor_conv_3x3-input:8x8x64"):
        fmap.transform(codes)
    with pytest.raises(ValueError, match=r"\(n, 4\) int"):
        fmap.transform(codes.astype(float))


def test_estimator_conventions():
    _, fmap, _, X, y = synthetic_data()
    model = NetworkCostModel(feature_names=fmap.schema, n_bootstrap=4)
    assert model.get_params()["n_bootstrap"] == 4 and not any(k.endswith("_") for k in vars(model))
    with pytest.raises(NotFittedError):
        model.predict(X)
    assert model.fit(X[:90], y[:90]) is model
    assert clone(model).get_params() == model.get_params() and not hasattr(clone(model), "coef_")
    pred, std = model.predict(X[90:], return_std=True)
    assert pred.shape == std.shape == (30,) and (std >= 0).all() and std.max() > 0
    assert model.score(X[90:], y[90:]) >= 0.95
    with pytest.raises(ValueError, match="feature schema"):
        model.predict(X[:, :-1])
    with pytest.raises(ValueError, match="column 0"):
        model.check_schema(["other", *fmap.schema[1:]])
    with pytest.raises(ValueError, match="positive"):
        NetworkCostModel().fit(X[:10], -y[:10])


def test_residual_model_beats_the_calibrated_lut():
    _, _, _, X, y = synthetic_data(200)
    calibrated, model = cross_val_predict(X, y, folds=5)
    err = lambda p: np.sqrt(np.mean(((p - y) / y) ** 2))  # noqa: E731
    assert err(model) < 0.5 * err(calibrated)


def _save(tmp_path, model, fmap, **extra):
    table = synthetic_table(spaces.get("nasbench201"))
    manifest = {"device": "synthetic", "backend": "onnxruntime", "space": "nasbench201",
                "layout_sha256": layout_sha256(fmap.layout), "training_sha256": "0" * 64, **extra}
    return persistence.save(tmp_path / "m.json", model, table, manifest, keys=sorted(fmap.layout.keys()))


def test_save_load_round_trip_is_exact(tmp_path):
    _, fmap, _, X, y = synthetic_data()
    model = NetworkCostModel(feature_names=fmap.schema).fit(X, y)
    path = _save(tmp_path, model, fmap)
    loaded, table, _, manifest = persistence.load(path)
    persistence.check_manifest(path, manifest, loaded, fmap.schema, {"space": "nasbench201"})
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert all(np.array_equal(a, b) for a, b in zip(loaded.predict(X, True), model.predict(X, True)))
    assert manifest["feature_schema"] == list(fmap.schema) and manifest["sklearn"] and manifest["numpy"]
    assert len(table) == len(fmap.layout.keys())
    assert json.loads(path.read_text())["format"] == "hwnas-costmodel"  # plain JSON, nothing to execute


def test_tampered_unknown_version_and_mismatched_files_are_refused(tmp_path):
    _, fmap, _, X, y = synthetic_data()
    path = _save(tmp_path, NetworkCostModel(feature_names=fmap.schema, n_bootstrap=2).fit(X, y), fmap)
    doc = json.loads(path.read_text())
    doc["model"]["learned"]["intercept_"] += 1.0
    path.write_text(json.dumps(doc))
    with pytest.raises(persistence.ModelFileError, match="checksum mismatch"):
        persistence.load(path)
    doc["version"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(persistence.ModelFileError, match="version 99"):
        persistence.load(path)
    path.write_bytes(b"\x80\x04\x95 not json: a pickle would look like this")
    with pytest.raises(persistence.ModelFileError, match="not a JSON cost model"):
        persistence.load(path)
    path = _save(tmp_path, NetworkCostModel(feature_names=fmap.schema, n_bootstrap=2).fit(X, y), fmap)
    model, _, _, manifest = persistence.load(path)
    with pytest.raises(persistence.ModelFileError, match="feature schema mismatch at column 1"):
        persistence.check_manifest(path, manifest, model, ["lut_sum", "share:new_op@16", *fmap.schema[2:]], {})
    with pytest.raises(persistence.ModelFileError, match="manifest space"):
        persistence.check_manifest(path, manifest, model, fmap.schema, {"space": "mbv3"})


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), n_bootstrap=st.integers(0, 3))
def test_round_trip_property(tmp_path_factory, seed, n_bootstrap):
    _, fmap, _, X, y = synthetic_data(40, seed)
    model = NetworkCostModel(feature_names=fmap.schema, n_bootstrap=n_bootstrap, random_state=seed).fit(X, y)
    loaded, _, _, _ = persistence.load(_save(tmp_path_factory.mktemp("rt"), model, fmap))
    assert loaded.get_params() == model.get_params()
    assert np.array_equal(loaded.predict(X, return_std=True)[1], model.predict(X, return_std=True)[1])


def test_kernel_base_never_predicts_a_free_network():
    """Signed per-kernel costs extrapolate below zero; such rows (and models fitted on fewer networks
    than kernel coefficients) fall back to the calibrated LUT sum instead of a ~0 ms prediction."""
    rng = np.random.default_rng(0)
    names = ["lut_sum", "kernel_a", "kernel_b"]
    lut = rng.uniform(1.0, 2.0, 40)
    a_count = rng.integers(0, 4, 40)
    X = np.column_stack([lut, a_count, rng.integers(0, 3, 40)]).astype(float)
    y = lut * (1.5 - 0.3 * a_count / 3)                    # kernel_a "saves" time: a negative cost
    model = NetworkCostModel(feature_names=names).fit(X, y)
    assert model.base_coef_[1] < 0
    far = np.array([[1.5, 40.0, 0.0]])                     # far outside the training counts
    assert (far[:, [0, 1, 2]] @ model.base_coef_ + model.base_intercept_)[0] <= 0
    assert model.predict(far)[0] > 0.1 * model.calibrated_lut(far)[0]
    few = NetworkCostModel(feature_names=names).fit(X[:3], y[:3])
    assert few.additive_ == [0] and (few.predict(X) > 0.1).all()
