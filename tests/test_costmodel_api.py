"""The query API for search code: load_cost_model, input forms, uncertainty, thread safety."""
import threading

import numpy as np
import pytest

from cost_models.features import FeatureMap
from hwnas import costmodel_api as api
from hwnas import load_cost_model, spaces
from hwnas.errors import BadInput
from lut import nasbench201 as codec
from tests.helpers import local_config
from tests.test_costmodel_model import synthetic_table


@pytest.fixture
def saved(tmp_path):
    """A nasbench201 model of device 'local' fitted on synthetic data, saved in a tmp workspace."""
    cfg = local_config(tmp_path)
    space = spaces.get("nasbench201")
    table = synthetic_table(space)
    fmap = FeatureMap(space.layout(), table)
    archs = space.sample(80, np.random.default_rng(1))
    y = fmap.lut_sum(space.encode(archs)) * 1.2 + 0.3
    cm = api.fit(space, fmap, archs, y)
    api.save(cm, api.model_path(tmp_path / "ws", "local", "onnxruntime", "nasbench201"), table, archs, y,
             device="local", backend="onnxruntime")
    return cfg, cm


def test_input_forms_agree(saved):
    cfg, fitted = saved
    cm = load_cost_model(device="local", space="nasbench201", config=cfg)
    archs = spaces.get("nasbench201").sample(40, np.random.default_rng(2))
    ops = codec.encode(archs)
    expected = fitted.predict(archs)
    for form in (archs, [codec.parse_arch(a) for a in archs], ops, ops.astype(np.int64), cm.encode(archs)):
        assert np.array_equal(cm.predict(form), expected)
    pred, std = cm.predict(ops, return_std=True)
    assert np.array_equal(pred, expected) and std.shape == (40,) and (std >= 0).all()
    assert cm.manifest["device"] == "local" and cm.manifest["n_train"] == 80


def test_bad_inputs_are_bad_input(saved):
    cfg, _ = saved
    cm = load_cost_model(device="local", space="nasbench201", config=cfg)
    with pytest.raises(BadInput, match="unknown operation"):
        cm.predict(["|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
    with pytest.raises(BadInput, match=r"\(n, 4\) int array or \(n, 6\) op codes"):
        cm.predict(np.zeros((3, 5), dtype=np.int64))
    with pytest.raises(BadInput, match="0..4"):
        cm.predict(np.full((2, 6), 7, dtype=np.int8))
    with pytest.raises(BadInput, match="hwnas costmodel fit --device local --space mbv3"):
        load_cost_model(device="local", space="mbv3", config=cfg)


def test_concurrent_predict_matches_serial(saved):
    cfg, _ = saved
    cm = load_cost_model(device="local", space="nasbench201", config=cfg)
    rng = np.random.default_rng(5)
    batches = [rng.integers(0, 5, (int(n), 6)) for n in rng.integers(1, 5000, 16)]
    serial = [cm.predict(b, return_std=True) for b in batches]
    results: dict[int, list] = {}
    barrier = threading.Barrier(8)

    def worker(t: int) -> None:
        barrier.wait()
        results[t] = [cm.predict(b, return_std=True) for b in batches[t::2] * 3]

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for t in range(8):
        expected = serial[t::2] * 3
        assert all(np.array_equal(p, e[0]) and np.array_equal(s, e[1]) for (p, s), e in zip(results[t], expected))


@pytest.mark.parametrize("text", [
    "[" * 100_000 + "]" * 100_000,
    '{"format": "hwnas-costmodel", "version": 1, "model": ' + '{"a": ' * 50_000 + "1" + "}" * 50_001,
], ids=["deep-array", "deep-model-section"])
def test_deeply_nested_json_is_bad_input_not_recursion_error(tmp_path, text):
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(BadInput, match=f"{path}: JSON nested too deeply"):
        load_cost_model(space="nasbench201", path=path)
