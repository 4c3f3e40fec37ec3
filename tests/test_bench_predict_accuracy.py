"""The predict-accuracy bench: its noise floor split by re-measurement gap and by the reference kernel's move,
and its plot (units on plain rows)."""
from __future__ import annotations

import json

import pytest

from bench.predict_accuracy import BY_REFERENCE_MOVE, _minutes, main, noise_floor, plot


def _row(measured: float, again: float | None, gap: float | None, raw_again: float | None = None) -> dict:
    return {"measured_ms": measured, "again_ms": again, "raw_measured_ms": measured,
            "raw_again_ms": raw_again if raw_again is not None else again, "gap_min": gap,
            "probe_ratio": 0.9 if gap and gap > 60 else 1.0}


def test_noise_floor_is_split_by_gap_and_size():
    soon = [_row(m, m * 1.01, 5.0) for m in (1.0, 2.0, 3.0)]
    # later: the small model moved 20% (outside ±10%), the bigger ones 2%; raw only the biggest moved
    later = [_row(1.0, 1.2, 300.0, raw_again=1.0), _row(2.0, 2.04, 280.0, raw_again=2.0),
             _row(4.0, 4.08, 320.0, raw_again=4.4)]
    out = noise_floor(soon + later + [_row(5.0, None, None)])
    near, far = out["within 60 min"], out["after 60 min"]
    assert near["n"] == 3 and far["n"] == 3
    assert near["normalised"]["within_10"] == 1.0
    assert far["normalised"]["within_10"] == pytest.approx(2 / 3)
    assert far["median_gap_min"] == 300.0 and far["reference_kernel_ratio"] == pytest.approx(0.9)
    assert [t["raw_ratio"] for t in far["by_size_third"]] == pytest.approx([1.0, 1.0, 1.1])
    assert far["corr_log_ratio_log_size"] < 0  # the small one moved most


def test_noise_floor_is_split_by_how_far_the_reference_kernel_moved():
    rows = [{**_row(m, m, 5.0), "probe_ratio": 1.01} for m in (1.0, 2.0, 3.0)]
    rows += [{**_row(m, m * 1.2, 5.0), "probe_ratio": 0.9} for m in (1.0, 2.0, 3.0)]
    rows.append({**_row(4.0, 4.0, 5.0), "probe_ratio": None})  # no probes: in neither group
    still, moved = noise_floor(rows, BY_REFERENCE_MOVE).values()
    assert still["n"] == moved["n"] == 3
    assert still["normalised"]["within_10"] == 1.0 and moved["normalised"]["within_10"] == 0.0
    assert moved["reference_kernel_ratio"] == pytest.approx(0.9)


def test_too_few_re_measurements_give_only_a_count():
    assert noise_floor([_row(1.0, 1.0, 5.0)]) == {"within 60 min": {"n": 1}, "after 60 min": {"n": 0}}


def test_minutes_between_stored_times():
    assert _minutes("2026-12-03T07:38:33.208Z", "2026-12-03T12:08:33.208Z") == pytest.approx(270.0)


def test_plot_is_drawn_from_a_results_file(tmp_path, capsys):
    rows = [{**_row(m, m * 1.02, gap), "family": fam, "predicted_ms": m * 1.05}
            for m, gap, fam in ((0.5, 5.0, "resnet"), (2.0, 300.0, "vgg"), (4.0, None, "vgg"))]
    result = {"device": "local", "rows": rows, "overall": {"kernel_predictor": {"within_10": 1.0, "rmspe": 0.05}}}
    out = plot(result, tmp_path / "r.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and [p.name for p in tmp_path.iterdir()] == ["r.png"]
    (tmp_path / "r.json").write_text(json.dumps(result))
    (tmp_path / "r.png").unlink()
    assert main(["--plot", str(tmp_path / "r.json")]) == 0 and (tmp_path / "r.png").is_file()


def test_plot_of_a_file_that_is_no_results_file_names_it(tmp_path):
    from hwnas.errors import BadInput

    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": 3}')
    with pytest.raises(BadInput, match="bad.json: not a predict-accuracy results file"):
        main(["--plot", str(bad)])
    assert not list(tmp_path.glob("*.png"))
