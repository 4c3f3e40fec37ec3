"""Search spaces: enumeration, sampling, block lists (OFA keys), ONNX export in ORT, PyTorch modules."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from hwnas import spaces
from hwnas.errors import BadInput
from lut.table import LatencyTable

MBV3_ARCH = "w1.0-r224-d22222-k3573573573-e3463463463"
MBV3_KEYS = [  # written by hand from the OFA MobileNetV3 definition
    "Conv-input:224x224x3-output:112x112x16",
    "expanded_conv-input:112x112x16-output:112x112x16-expand:16-kernel:3-stride:1-idskip:1-se:0-hs:0",
    "expanded_conv-input:112x112x16-output:56x56x24-expand:48-kernel:3-stride:2-idskip:0-se:0-hs:0",
    "expanded_conv-input:56x56x24-output:56x56x24-expand:96-kernel:5-stride:1-idskip:1-se:0-hs:0",
    "expanded_conv-input:56x56x24-output:28x28x40-expand:144-kernel:7-stride:2-idskip:0-se:1-hs:0",
    "expanded_conv-input:28x28x40-output:28x28x40-expand:120-kernel:3-stride:1-idskip:1-se:1-hs:0",
    "expanded_conv-input:28x28x40-output:14x14x80-expand:160-kernel:5-stride:2-idskip:0-se:0-hs:1",
    "expanded_conv-input:14x14x80-output:14x14x80-expand:480-kernel:7-stride:1-idskip:1-se:0-hs:1",
    "expanded_conv-input:14x14x80-output:14x14x112-expand:240-kernel:3-stride:1-idskip:0-se:1-hs:1",
    "expanded_conv-input:14x14x112-output:14x14x112-expand:448-kernel:5-stride:1-idskip:1-se:1-hs:1",
    "expanded_conv-input:14x14x112-output:7x7x160-expand:672-kernel:7-stride:2-idskip:0-se:1-hs:1",
    "expanded_conv-input:7x7x160-output:7x7x160-expand:480-kernel:3-stride:1-idskip:1-se:1-hs:1",
    "Conv_1-input:7x7x160-output:7x7x960",
    "AvgPool2D-input:7x7x960-output:1x1x960",
    "Conv_2-input:1x1x960-output:1x1x1280",
    "Logits-input:1x1x1280-output:1000",
]


def test_mbv3_keys_match_ofa_form():
    assert [b.key() for b in spaces.get("mbv3").blocks(MBV3_ARCH)] == MBV3_KEYS


def test_mbv3_counts_and_width_1_2():
    space = spaces.get("mbv3")
    assert len(space.all_blocks([224], [1.0])) == 96 and len(space.all_blocks()) == 192
    keys = [b.key() for b in space.blocks("w1.2-r160-d22222-k3573573573-e3463463463")]
    assert keys[0] == "Conv-input:160x160x3-output:80x80x24" and keys[-1] == "Logits-input:1x1x1536-output:1000"
    with pytest.raises(ValueError):
        space.blocks("w1.0-r226-d22222-k3573573573-e3463463463")
    with pytest.raises(ValueError):
        space.blocks("w1.0-r224-d22222-k357-e346")


def test_nasbench201_enumerates_15625_and_lists_blocks():
    space = spaces.get("nasbench201")
    archs = space.enumerate()
    assert len(archs) == len(set(archs)) == 15625
    assert len(space.all_blocks()) == 19
    arch = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|"
    keys = [b.key() for b in space.blocks(arch)]
    assert keys[0] == "nb201_stem-input:32x32x3-output:32x32x16" and keys[-1] == "nb201_head-input:8x8x64-output:10"
    # per cell: 5 live ops, Adds = (2-1) at node 2 + (2-1) at node 3; 15 cells, 2 reductions
    assert len(keys) == 2 + 2 + 15 * (5 + 2)
    assert keys.count("Add-input:16x16x32-output:16x16x32") == 10


@pytest.mark.parametrize("name", ["nasbench201", "mbv3"])
def test_sampling_is_seeded(name):
    space = spaces.get(name)
    assert space.sample(5, np.random.default_rng(3)) == space.sample(5, np.random.default_rng(3))
    assert all(space.check(a) == a for a in space.sample(5, np.random.default_rng(4)))


@pytest.mark.parametrize("name,arch", [
    ("nasbench201", "|nor_conv_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|"),
    ("mbv3", "w1.2-r128-d23423-k35735735735735-e34634634634634"),
])
def test_onnx_export_runs_and_torch_module_agrees_on_shape(tmp_path, name, arch):
    space = spaces.get(name)
    path = space.export_onnx(arch, tmp_path / "net.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        ref = space.build_torch(arch)(torch.from_numpy(x))
    assert out.shape == tuple(ref.shape) and np.isfinite(out).all()
    assert path.read_bytes() == space.onnx_model(arch).SerializeToString(deterministic=True)


@pytest.mark.parametrize("name", ["nasbench201", "mbv3"])
def test_lut_prediction_equals_sum_over_listed_blocks(name):
    """The vectorised encoding + layout give exactly the sum over ``blocks(arch)``."""
    space = spaces.get(name)
    rng = np.random.default_rng(1)
    keys = {b.key() for b in space.all_blocks(space.resolutions)}
    table = LatencyTable.from_records([(k, float(v), 0.0, 1) for k, v in zip(sorted(keys), rng.random(len(keys)))])
    archs = space.sample(50, rng)
    predicted = table.predictor(space.layout()).predict(space.encode(archs))
    expected = [table.lookup(b.key() for b in space.blocks(a)) for a in archs]
    np.testing.assert_allclose(predicted, expected, rtol=1e-12)


def test_unknown_space_is_bad_input():
    with pytest.raises(BadInput, match="unknown search space"):
        spaces.get("resnet")
