"""LUT tables: JSON/CSV/OFA-YAML round trips (hypothesis), baseline subtraction, overhead fit, missing keys."""
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwnas import spaces
from lut import formats
from lut.table import BASELINE, LatencyTable, Overhead, fit_overhead

META = {"device": "local", "backend": "onnxruntime", "runtime_version": "1.32.0", "unit": "ms"}
keys = st.sampled_from([b.key() for b in spaces.get("mbv3").all_blocks()] + [BASELINE])
finite = st.floats(0, 1e4, allow_nan=False, allow_infinity=False)
tables = st.dictionaries(keys, st.tuples(finite, finite, st.integers(1, 10**6)), min_size=1, max_size=30)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables, st.sampled_from([".json", ".csv", ".yaml"]))
def test_round_trip_every_format(tmp_path, entries, suffix):
    table = LatencyTable.from_records([(k, m, s, c) for k, (m, s, c) in entries.items()], **META)
    loaded = formats.load(formats.save(table, tmp_path / f"lut{suffix}"))
    assert loaded.entries == table.entries
    assert {k: loaded.meta[k] for k in META} == META


def test_yaml_is_ofa_shaped_and_json_keeps_overheads(tmp_path):
    table = LatencyTable.from_records([("Conv-input:224x224x3-output:112x112x16", 1.5, 0.1, 30)], **META)
    table.overheads["mbv3"] = Overhead("affine", 0.9, 0.2, 40)
    doc = yaml.safe_load((formats.save(table, tmp_path / "x.yaml")).read_text())
    assert doc == {"Conv-input:224x224x3-output:112x112x16": {"count": 30, "mean": 1.5, "std": 0.1}}
    loaded = formats.load(formats.save(table, tmp_path / "x.json"))
    assert loaded == table


@pytest.mark.parametrize("name,text", [("x.txt", ""), ("x.json", "{}"), ("x.yaml", "[1, 2]"),
                                       ("x.yaml", "k: {count: 1}"), ("x.csv", "a,b\n1,2\n")])
def test_bad_files_raise_value_error_naming_the_file(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match="x."):
        formats.load(path)


def test_baseline_is_subtracted_and_missing_keys_named():
    space = spaces.get("nasbench201")
    blocks = space.all_blocks()
    table = LatencyTable.from_records([(b.key(), 1.0, 0.0, 1) for b in blocks] + [(BASELINE, 0.25, 0.0, 1)])
    arch = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|"
    got = table.predictor(space.layout()).predict(space.encode([arch]))[0]
    assert got == pytest.approx(0.75 * len(space.blocks(arch)))
    raw = table.predictor(space.layout(), subtract_baseline=False)
    assert raw.predict(space.encode([arch]))[0] == len(space.blocks(arch))
    del table.entries[blocks[0].key()]
    with pytest.raises(ValueError, match="nb201_stem"):
        table.predictor(space.layout()).predict(space.encode([arch]))


def test_fit_overhead_recovers_a_line():
    x = np.linspace(1, 10, 20)
    fit = fit_overhead(x, 0.8 * x + 0.5, "affine")
    assert fit.a == pytest.approx(0.8) and fit.b == pytest.approx(0.5)
    assert fit_overhead(x, x + 0.3, "offset").b == pytest.approx(0.3)
    with pytest.raises(ValueError):
        fit_overhead(x, x, "cubic")
