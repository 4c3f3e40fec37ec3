"""Latency objectives: one protocol over cost models, LUTs, the transfer model and measured tables."""
import csv

import numpy as np
import pytest

from cost_models.features import FeatureMap
from cost_models.transfer import transfer_csv
from hwnas import costmodel_api as api
from hwnas import spaces
from hwnas.errors import BadInput
from hwnas.search.latency import CostModelLatency, LatencyObjective, LutLatency, TableLatency, TransferLatency
from lut import nasbench201 as codec
from lut.table import fit_overhead
from tests.helpers import local_config
from tests.test_costmodel_model import synthetic_table

NB201 = spaces.get("nasbench201")
ARCHS = NB201.sample(40, np.random.default_rng(0))


def write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_every_objective_keeps_to_the_protocol(tmp_path):
    table = synthetic_table(NB201)
    fmap = FeatureMap(NB201.layout(), table)
    cm = api.fit(NB201, fmap, ARCHS, fmap.lut_sum(NB201.encode(ARCHS)) * 1.1 + 0.2)
    objectives = [CostModelLatency(cm, "cm"), LutLatency(table, NB201, "lut", relative_std=0.1),
                  TableLatency({a: 1.0 + i for i, a in enumerate(ARCHS)}, NB201, "table")]
    for obj in objectives:
        assert isinstance(obj, LatencyObjective)
        ms, std = obj.predict(ARCHS[:5], return_std=True)
        assert ms.dtype == std.dtype == np.float64 and ms.shape == std.shape == (5,) and (std >= 0).all()
        assert np.array_equal(obj.predict(ARCHS[:5]), ms)
        assert np.array_equal(obj.predict(NB201.to_choices(ARCHS[:5])), ms)   # accepts_choices


def test_lut_latency_applies_the_calibrated_overhead():
    table = synthetic_table(NB201)
    raw = LutLatency(table, NB201, "lut").predict(ARCHS)
    table.overheads[NB201.name] = fit_overhead(raw, 2 * raw + 1.0, "affine")
    assert np.allclose(LutLatency(table, NB201, "lut").predict(ARCHS), 2 * raw + 1.0)


def test_cost_model_latency_loads_a_saved_model_or_names_the_fit_command(tmp_path):
    cfg = local_config(tmp_path)
    with pytest.raises(BadInput, match="hwnas costmodel fit --device local --space nasbench201"):
        CostModelLatency.load("local", "nasbench201", config=cfg)
    table = synthetic_table(NB201)
    fmap = FeatureMap(NB201.layout(), table)
    y = fmap.lut_sum(NB201.encode(ARCHS)) * 1.1 + 0.2
    cm = api.fit(NB201, fmap, ARCHS, y)
    api.save(cm, api.model_path(tmp_path / "ws", "local", "onnxruntime", "nasbench201"), table, ARCHS, y,
             device="local", backend="onnxruntime")
    loaded = CostModelLatency.load("local", "nasbench201", config=cfg)
    assert loaded.name == "local" and np.array_equal(loaded.predict(ARCHS), cm.predict(ARCHS))


def test_transfer_latency_is_the_model_of_costmodel_transfer(tmp_path):
    rng = np.random.default_rng(1)
    live = [a for a in NB201.enumerate() if not codec.is_degenerate(a)]
    prior_archs = [live[i] for i in rng.choice(len(live), 300, replace=False)]
    feats = codec.encode(prior_archs).astype(float)
    weights = rng.uniform(0.5, 2.0, (3, 5))
    prior = np.stack([1.0 + np.take(w, feats.astype(int)).sum(axis=1) for w in weights], axis=1)
    target_ms = 0.5 + np.take(weights.mean(axis=0) * 1.3, feats[:10].astype(int)).sum(axis=1)
    prior_csv = write_csv(tmp_path / "prior.csv", ["arch", "a", "b", "c"],
                          [[a, *row] for a, row in zip(prior_archs, prior)])
    target_csv = write_csv(tmp_path / "target.csv", ["arch", "latency_ms"], zip(prior_archs[:10], target_ms))
    archs_csv = write_csv(tmp_path / "archs.csv", ["arch"], [[a] for a in ARCHS])
    transfer_csv(prior_csv, target_csv, archs_csv, tmp_path / "out.csv")
    with open(tmp_path / "out.csv", newline="") as fh:
        via_cli = np.array([float(r["latency_ms"]) for r in csv.DictReader(fh)])
    obj = TransferLatency.from_csv(prior_csv, target_csv)
    ms, std = obj.predict(ARCHS, return_std=True)
    assert obj.name == "target" and np.allclose(ms, via_cli, rtol=1e-5) and (std > 0).all()
    fitted = TransferLatency.fit(prior_archs[:10], target_ms, prior_archs, prior, "new")
    assert np.array_equal(fitted.predict(ARCHS), ms)


@pytest.mark.parametrize("rows, message", [
    ([["|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|", "1.0"]], "line 2: unknown operation 'bogus'"),
    ([[ARCHS[0], "1.0"], [ARCHS[1], "nan"]], "line 3: latency_ms must be a positive latency"),
    ([[ARCHS[0], "-2"]], "line 2: latency_ms must be a positive latency"),
    ([[ARCHS[0], "fast"]], "line 2: latency_ms 'fast' is not a number"),
    ([[ARCHS[0], "1"], [ARCHS[0], "2"]], "line 3: duplicate architecture"),
    ([["", "1"]], "line 2: missing architecture"),
])
def test_table_latency_names_file_and_line_of_bad_rows(tmp_path, rows, message):
    path = write_csv(tmp_path / "dev.csv", ["arch", "latency_ms"], rows)
    with pytest.raises(BadInput, match=f"dev.csv, {message}"):
        TableLatency.from_csv(path, NB201)


def test_table_latency_missing_column_and_missing_arch(tmp_path):
    with pytest.raises(BadInput, match=r"dev.csv, line 1: missing column\(s\) latency_ms"):
        TableLatency.from_csv(write_csv(tmp_path / "dev.csv", ["arch", "ms"], [[ARCHS[0], "1"]]), NB201)
    with pytest.raises(BadInput, match="cannot read"):
        TableLatency.from_csv(tmp_path / "absent.csv", NB201)
    table = TableLatency.from_csv(write_csv(tmp_path / "rpi.csv", ["arch", "latency_ms"],
                                            [[a, 1.0 + i] for i, a in enumerate(ARCHS[:3])]), NB201)
    ms = table.predict([ARCHS[0], ARCHS[5], ARCHS[2]])
    assert table.name == "rpi" and ms[0] == 1.0 and np.isnan(ms[1]) and ms[2] == 3.0
    assert table.support == ARCHS[:3]
