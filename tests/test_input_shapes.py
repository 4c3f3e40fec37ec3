"""Models with dynamic input dimensions (warned, shapes recorded, ``--input-shape``) and runtime load errors
that name the user's file; real agent on the local device, real store."""
import json

import onnx
import pytest
from onnx import TensorProto, helper

from device_agents import protocol
from hwnas.cli import main
from hwnas.store import Store
from tests.helpers import local_config


def dynamic_model(path):
    """Relu on x[batch, 3, h, w]: three dynamic dimensions."""
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "dyn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, "h", "w"])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def measure(tmp_path, capsys, model, *extra, caplog=None):
    """``hwnas measure --json``: exit code, rows, and stderr (with the log lines a device's failure goes to)."""
    code = main(["measure", "--config", str(local_config(tmp_path)), "--device", "local",
                 "--onnx", str(model), "--json", *extra])
    captured = capsys.readouterr()
    return code, json.loads(captured.out or "[]"), captured.err + (caplog.text if caplog else "")


def test_dynamic_dims_default_to_1_with_a_warning_and_recorded_shapes(tmp_path, capsys):
    code, rows, err = measure(tmp_path, capsys, dynamic_model(tmp_path / "dyn.onnx"))
    assert code == 0, err
    row = rows[0]
    assert row["input_shapes"] == {"x": [1, 3, 1, 1]}
    assert not row["valid"] and any("dynamic input dimensions set to 1" in w and "--input-shape" in w
                                    for w in row["warnings"])
    stored = Store(tmp_path / "ws").latest("local", "onnxruntime", f"onnx:{row['sha256']}")
    assert stored.stats["input_shapes"] == {"x": [1, 3, 1, 1]} and not stored.valid


def test_input_shape_sets_the_dynamic_dims_and_is_stored(tmp_path, capsys):
    code, rows, err = measure(tmp_path, capsys, dynamic_model(tmp_path / "dyn.onnx"), "--input-shape", "x=2,3,8,8")
    assert code == 0, err
    assert rows[0]["input_shapes"] == {"x": [2, 3, 8, 8]}
    assert not any("dynamic input" in w for w in rows[0]["warnings"])
    stored = Store(tmp_path / "ws").latest("local", "onnxruntime", f"onnx:{rows[0]['sha256']}")
    assert stored.stats["input_shapes"] == {"x": [2, 3, 8, 8]}


@pytest.mark.parametrize("spec, fragment", [
    ("x", "expected NAME=D1,D2,..."),
    ("x=1,3,a,4", "integers from 1 to"),
    ("x=0,3,8,8", "integers from 1 to"),
    ("y=1,3,8,8", "no model has an input named 'y' (inputs: x)"),
])
def test_bad_input_shape_exits_2_before_any_device_work(tmp_path, capsys, spec, fragment):
    code, rows, err = measure(tmp_path, capsys, dynamic_model(tmp_path / "dyn.onnx"), "--input-shape", spec)
    assert code == 2 and rows == []
    assert f"--input-shape {spec.split('=')[0]}" in err and fragment in err and "Traceback" not in err
    assert not (tmp_path / "ws" / "agents").exists()


@pytest.mark.parametrize("spec, fragment", [
    ("x=2,4,8,8", "dimension 1 is fixed at 3 by the model, not 4"),
    ("x=1,3", "has 4 dimensions"),
])
def test_shape_the_model_contradicts_exits_2_naming_the_file(tmp_path, capsys, caplog, spec, fragment):
    model = dynamic_model(tmp_path / "dyn.onnx")
    code, rows, err = measure(tmp_path, capsys, model, "--input-shape", spec, caplog=caplog)
    assert code == 2 and rows == []
    assert f"{model}: local:" in err and fragment in err and "Traceback" not in err


def test_model_the_runtime_rejects_names_the_users_file_not_the_agent_cache(tmp_path, capsys, caplog):
    """Valid ONNX (the checker passes) with an op ONNX Runtime does not have: the agent's load fails."""
    graph = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")], "custom",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = tmp_path / "custom.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("com.example", 1)]), str(model))
    code, rows, err = measure(tmp_path, capsys, model, caplog=caplog)
    assert code == 2 and rows == []
    assert f"{model}: local: onnxruntime cannot load the model" in err and "Frobnicate" in err
    assert "agents/local/models" not in err and "Traceback" not in err


@pytest.mark.parametrize("shapes, fragment", [
    ([1, 3], "must be dict"),
    ({"x": []}, "1 to 16 dimensions"),
    ({"x": [1, True]}, "integers from 1"),
    ({"x": [1, -3]}, "integers from 1"),
    ({"": [1]}, "non-empty"),
])
def test_protocol_refuses_bad_input_shapes(shapes, fragment):
    request = {"id": 1, "op": "measure", "model": "a", "settings": {"input_shapes": shapes}}
    with pytest.raises(protocol.ProtocolError, match=fragment):
        protocol.validate_request(request)
