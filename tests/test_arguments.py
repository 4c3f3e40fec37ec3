"""Arguments that used to be taken silently or end in a traceback: session counts, a device given twice."""
import pytest

from hwnas.cli import main
from hwnas.store import Store
from tests.helpers import conv_model, local_config


@pytest.mark.parametrize("command", ["measure", "profile", "refine"])
@pytest.mark.parametrize("value", ["-3", "-1", "0"])
def test_a_session_count_below_1_is_refused_with_one_sentence(tmp_path, capsys, command, value):
    cfg = str(local_config(tmp_path))
    model = str(conv_model(tmp_path / "m.onnx"))
    args = {"measure": ["measure", "--device", "local", "--onnx", model],
            "profile": ["profile", "--device", "local", "--space", "nasbench201"],
            "refine": ["costmodel", "refine", "--device", "local", "--space", "nasbench201", "--budget", "1"]}[command]
    assert main(args + ["--config", cfg, "--sessions", value]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"hwnas: error: --sessions must be a whole number of at least 1, got {value}"
    assert not (tmp_path / "ws" / "measurements.sqlite").exists() or Store(tmp_path / "ws").count() == 0


def test_a_device_given_twice_is_measured_once_with_a_note(tmp_path, capsys, caplog):
    import json

    cfg = str(local_config(tmp_path))
    models = [str(conv_model(tmp_path / f"m{i}.onnx", seed=i)) for i in range(2)]
    code = main(["measure", "--config", cfg, "--device", "local", "--device", "local", "--onnx", *models, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "note: device 'local' was given 2 times; using it once" in caplog.text
    rows = json.loads(captured.out)
    assert [r["model"] for r in rows] == models  # one row per model, not two
    store = Store(tmp_path / "ws")
    assert store.count(device="local") == 2
    assert len(store.session_rows("local")) == 4  # 2 models x 2 sessions, taken once (two agents: 8)


def test_the_fleet_never_starts_two_agents_on_one_device(tmp_path):
    from hwnas import config, fleet

    reg = config.load(local_config(tmp_path))
    with pytest.raises(ValueError, match="never two agents on one device"):
        fleet.run(reg, [reg.device("local")] * 2, lambda device, client: None)


def test_a_closed_stdout_is_not_a_traceback(tmp_path):
    """`hwnas ... --json | head`: the reader goes away before we print; exit 0, nothing on stderr."""
    import os
    import subprocess
    import sys

    cfg = str(local_config(tmp_path))
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to stdout now fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "hwnas.cli", "devices", "list", "--json", "--config", cfg],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
