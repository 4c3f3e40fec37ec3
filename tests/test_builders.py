"""ONNX builders: every block of both spaces passes the checker, runs, and is byte-deterministic."""
import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from hwnas import spaces
from lut import builders
from lut.signature import parse
from lut.table import BASELINE


def _run(model):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: np.random.default_rng(0).standard_normal(i.shape).astype(np.float32) for i in session.get_inputs()}
    return session.run(None, feeds)[0]


@pytest.mark.parametrize("name", ["nasbench201", "mbv3"])
def test_every_block_checks_and_has_its_output_shape(name):
    space = spaces.get(name)
    blocks = space.all_blocks()
    for sig in blocks:
        onnx.checker.check_model(builders.block_model(sig), full_check=True)
    # run a spread of them (all for nb201) and check the declared output shape
    for sig in blocks[:: 1 if name == "nasbench201" else 12]:
        out = _run(builders.block_model(sig))
        expected = (1, sig.output[2], sig.output[0], sig.output[1]) if len(sig.output) == 3 else (1, sig.output[0])
        assert out.shape == expected and np.isfinite(out).all(), sig.key()


def test_same_signature_same_bytes_and_sha(tmp_path):
    sig = parse("expanded_conv-input:56x56x24-output:28x28x40-expand:144-kernel:5-stride:2-idskip:0-se:1-hs:0")
    a = builders.write_block(sig, tmp_path / "a.onnx").read_bytes()
    b = builders.block_model(sig).SerializeToString(deterministic=True)
    assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest()
    other = parse("expanded_conv-input:56x56x24-output:28x28x40-expand:144-kernel:3-stride:2-idskip:0-se:1-hs:0")
    assert builders.block_model(other).SerializeToString(deterministic=True) != a


def test_baseline_and_unknown_op():
    assert _run(builders.block_model(parse(BASELINE))).shape == (1, 1)
    with pytest.raises(ValueError, match="no ONNX builder"):
        builders.block_model(parse("Mystery-input:1-output:1"))


def test_make_divisible_matches_mobilenet_rule():
    assert [builders.make_divisible(v) for v in (16, 19.2, 28.8, 134.4, 1152, 72)] == [16, 24, 32, 136, 1152, 72]
