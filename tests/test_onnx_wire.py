"""Reading an ONNX graph without its weights (cost_models.onnx_wire) gives the splitter the same model."""
import onnx
import pytest

from cost_models.onnx_kernels import SMALL_INITIALIZER, light
from cost_models.onnx_wire import WireError, load_without_weights
from hwnas.spaces.digits import LARGEST, DigitsSpace


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("wire") / "largest.onnx"
    onnx.save(DigitsSpace().onnx_model(str(LARGEST)), str(path))
    return path


def test_the_light_model_equals_the_one_from_the_fully_parsed_file(model_file):
    full = onnx.load(str(model_file))
    stripped = load_without_weights(model_file, 8 * SMALL_INITIALIZER)
    assert stripped.ByteSize() < full.ByteSize() / 10
    for as_inputs in (False, True):
        assert (light(stripped, as_inputs).SerializeToString()
                == light(full, as_inputs).SerializeToString())


def test_small_initializers_keep_their_values_and_large_ones_keep_type_and_dims(model_file):
    full = {t.name: t for t in onnx.load(str(model_file)).graph.initializer}
    for t in load_without_weights(model_file, 64).graph.initializer:
        assert (t.data_type, list(t.dims)) == (full[t.name].data_type, list(full[t.name].dims))
        assert t.raw_data == (full[t.name].raw_data if len(full[t.name].raw_data) <= 64 else b"")


def test_a_truncated_file_is_a_wire_error(model_file, tmp_path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(model_file.read_bytes()[:-1000])
    with pytest.raises(WireError):
        load_without_weights(cut, 64)
