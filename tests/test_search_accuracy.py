"""Accuracy objectives of the search: the cache, the table and its JSON predictor, the shipped
NAS-Bench-201 data, python:MODULE:FUNCTION, and the zero-cost proxies (real torch)."""
import json
import threading

import numpy as np
import pytest

from hwnas import spaces
from hwnas.errors import BadInput
from hwnas.search import predictor as pred
from hwnas.search.accuracy import (
    SOURCE_FORMS,
    AccuracyObjective,
    CachedAccuracy,
    CallableAccuracy,
    NasBench201Accuracy,
    TableAccuracy,
    nasbench201_table,
    parse_accuracy,
)

DEGENERATE = "|none~0|+|skip_connect~0|none~1|+|none~0|nor_conv_3x3~1|none~2|"


@pytest.fixture(scope="module")
def space():
    return spaces.get("nasbench201")


@pytest.fixture(scope="module")
def shipped():
    """(archs, cifar10_valid) of the shipped table."""
    archs, columns = nasbench201_table()
    return archs, columns["cifar10_valid"]


def _write_table(path, rows, header="arch,top1"):
    path.write_text(header + "\n" + "".join(f"{a},{v}\n" for a, v in rows))
    return path


# --------------------------------------------------------------------------------- cache

def test_cache_evaluates_each_arch_once_and_counts(space, shipped):
    archs = shipped[0][:6]
    calls = []

    def score(arch):
        calls.append(arch)
        return float(len(calls))

    cached = CachedAccuracy(CallableAccuracy(score), space)
    first = cached.evaluate(archs[:4] + archs[:2])
    assert len(calls) == 4 and cached.evaluations == 4
    assert first[4] == first[0] and first[5] == first[1]
    # another spelling of the same network (surrounding spaces) hits the cache
    again = cached.evaluate([f"  {archs[0]} ", archs[4], archs[5], archs[4]])
    assert len(calls) == 6 and cached.evaluations == 6
    assert again[0] == first[0] and again[1] == again[3]
    assert list(cached.archive) == archs[:6]


def test_cache_is_batched_and_safe_across_threads(space, shipped):
    archs = shipped[0][:40]
    batches = []

    class Counting:
        name, has_weights = "counting", False

        def evaluate(self, batch):
            batches.append(list(batch))
            return np.arange(len(batch), dtype=float)

        def details(self, arch):
            return {}

    cached = CachedAccuracy(Counting(), space)
    threads = [threading.Thread(target=cached.evaluate, args=(archs[i::2] + archs,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    evaluated = [a for batch in batches for a in batch]
    assert sorted(evaluated) == sorted(archs) and cached.evaluations == 40
    cached.evaluate(archs)
    assert len(batches) <= 4


def test_cache_preload_counts_and_refuses_non_finite(space, shipped):
    archs = shipped[0][:3]
    cached = CachedAccuracy(CallableAccuracy(lambda a: float("nan"), "python:t:nan"), space)
    cached.preload({archs[0]: 50.0})
    assert cached.evaluations == 1 and cached.evaluate([archs[0]])[0] == 50.0
    with pytest.raises(BadInput, match=r"python:t:nan returned nan .* for architecture"):
        cached.evaluate([archs[1]])
    assert cached.evaluations == 1


# ------------------------------------------------------------------------- NAS-Bench-201

def test_nasbench201_source_reports_the_test_column(space, shipped):
    archs, valid = shipped
    objective = parse_accuracy("nasbench201:cifar10_valid", space)
    assert isinstance(objective, AccuracyObjective) and objective.name == "nasbench201:cifar10_valid"
    assert not objective.has_weights
    np.testing.assert_array_equal(objective.evaluate(archs[:5]), valid[:5])
    assert objective.details(archs[1]) == {"cifar10_test": 88.22}
    assert parse_accuracy("nasbench201:imagenet16_120_valid", space).details(archs[0]) == {
        "imagenet16_120_test": 17.0}


@pytest.mark.parametrize("spec,message", [
    ("nasbench201:cifar10_test", "leaks the test set"),
    ("nasbench201:top1", "unknown column .*known: cifar100_valid, cifar10_valid, imagenet16_120_valid"),
])
def test_nasbench201_source_refuses_test_and_unknown_columns(space, spec, message):
    with pytest.raises(BadInput, match=message):
        parse_accuracy(spec, space)


def test_nasbench201_source_needs_its_space():
    with pytest.raises(BadInput, match="needs --space nasbench201"):
        NasBench201Accuracy("cifar10_valid", spaces.get("mbv3"))


def test_shipped_table_is_the_shared_data(shipped):
    archs, valid = shipped
    assert len(archs) == 15625 == len(set(archs)) and valid.max() == pytest.approx(84.892)


# -------------------------------------------------------------------------------- parsing

def test_unknown_source_lists_the_known_forms(space):
    with pytest.raises(BadInput) as err:
        parse_accuracy("imagenet:top1", space)
    assert all(form in str(err.value) for form in SOURCE_FORMS)


def test_supernet_source_is_a_lazy_hook(space):
    try:
        import hwnas.supernet.accuracy  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(BadInput, match="the supernet accuracy source needs"):
            parse_accuracy("supernet", space)
    else:
        pytest.skip("hwnas.supernet is installed: its own tests cover the source")


def test_python_source_calls_a_user_function(space, shipped, tmp_path, monkeypatch):
    (tmp_path / "user_scores.py").write_text(
        "def ops(arch):\n    return arch.count('conv')\n"
        "def nan(arch):\n    return float('nan')\n"
        "def boom(arch):\n    raise RuntimeError('no scores today')\n"
        "def text(arch):\n    return 'high'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    archs = shipped[0][:3]
    objective = parse_accuracy("python:user_scores:ops", space)
    assert objective.name == "python:user_scores:ops"
    assert objective.evaluate(archs).tolist() == [float(a.count("conv")) for a in archs]
    assert parse_accuracy(lambda a: 1.5, space).evaluate(archs).tolist() == [1.5] * 3
    for function, message in [("nan", "returned nan"), ("boom", "raised RuntimeError .*no scores today"),
                              ("text", "did not return a number")]:
        with pytest.raises(BadInput, match=f"python:user_scores:{function} {message}|{message}"):
            CachedAccuracy(parse_accuracy(f"python:user_scores:{function}", space)).evaluate(archs)


@pytest.mark.parametrize("spec,message", [
    ("python:no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    ("python:json:no_such_function", "has no attribute 'no_such_function'"),
    ("python:json:decoder", "is not callable"),
    ("python:json", "expected python:MODULE:FUNCTION"),
])
def test_python_source_errors_name_the_target(space, spec, message):
    with pytest.raises(BadInput, match=message):
        parse_accuracy(spec, space)


# ---------------------------------------------------------------------------------- table

def test_table_lookup_and_predictor_json_round_trip(space, shipped, tmp_path):
    archs, valid = shipped
    order = np.random.default_rng(0).permutation(len(archs))
    train, unseen = order[:300], [archs[i] for i in order[300:360]]
    csv_path = _write_table(tmp_path / "acc.csv", [(archs[i], valid[i]) for i in train])
    objective = parse_accuracy(f"table:{csv_path}", space, work_dir=tmp_path / "state")
    assert objective.name == f"table:{csv_path}:top1"
    np.testing.assert_allclose(objective.evaluate([archs[i] for i in train[:5]]), valid[train[:5]])
    assert objective.details(archs[train[0]]) == {"predicted": False}
    predicted = objective.evaluate(unseen)
    assert np.isfinite(predicted).all() and np.ptp(predicted) > 0
    details = objective.details(unseen[0])
    assert details["predicted"] is True and details["predictor"] in pred.KINDS
    saved = tmp_path / "state" / "accuracy-predictor-acc-top1.json"
    doc = json.loads(saved.read_text())
    assert doc["format"] == pred.FORMAT and set(doc["model"]["selection"]) == set(pred.KINDS)
    stamp = saved.stat().st_mtime_ns
    fresh = TableAccuracy.from_spec(str(csv_path), space, work_dir=tmp_path / "state")
    np.testing.assert_array_equal(fresh.evaluate(unseen), predicted)
    assert saved.stat().st_mtime_ns == stamp        # loaded, not refitted
    model, manifest = pred.load(saved)
    assert manifest["n_train"] == 300 and manifest["column"] == "top1"
    np.testing.assert_array_equal(model.predict(space.to_choices(unseen)), predicted)


def test_predictor_refuses_an_edited_file(space, shipped, tmp_path):
    archs, valid = shipped
    csv_path = _write_table(tmp_path / "acc.csv", [(archs[i], valid[i]) for i in range(pred.MIN_SELECTION_ROWS - 1)])
    TableAccuracy.from_spec(str(csv_path), space, work_dir=tmp_path).evaluate([archs[100]])
    saved = tmp_path / "accuracy-predictor-acc-top1.json"
    saved.write_text(saved.read_text().replace('"n_train": 19', '"n_train": 20'))
    with pytest.raises(BadInput, match="checksum mismatch"):
        TableAccuracy.from_spec(str(csv_path), space, work_dir=tmp_path).evaluate([archs[100]])


def test_table_column_choice(space, shipped, tmp_path):
    archs, valid = shipped
    rows = [(archs[i], f"{valid[i]},{valid[i] / 2}") for i in range(3)]
    path = _write_table(tmp_path / "two.csv", rows, header="arch,top1,top5")
    with pytest.raises(BadInput, match=r"several numeric columns besides arch: top1, top5\); name it as table:"):
        parse_accuracy(f"table:{path}", space)
    assert parse_accuracy(f"table:{path}:top5", space).evaluate([archs[1]])[0] == pytest.approx(valid[1] / 2)
    with pytest.raises(BadInput, match=r"two.csv, line 1: no column 'top9'"):
        parse_accuracy(f"table:{path}:top9", space)
    with pytest.raises(BadInput, match="no such file"):
        parse_accuracy(f"table:{tmp_path / 'missing.csv'}", space)


@pytest.mark.parametrize("row,message", [
    ("|nor_conv_3x3~0|+|skip_connect~0|,70.0", "malformed NAS-Bench-201 architecture"),
    ("{arch},", "top1 '' is not a number"),
    ("{arch},nan", "top1 must be a finite, non-negative accuracy"),
    ("{arch},-3", "top1 must be a finite, non-negative accuracy"),
    ("{first},71.0", r"duplicate architecture .* \(first on line 2\)"),
    (",71.0", "missing architecture string"),
])
def test_table_bad_rows_name_file_and_line(space, shipped, tmp_path, row, message):
    archs = shipped[0]
    path = tmp_path / "bad.csv"
    path.write_text(f"arch,top1\n{archs[0]},70.0\n{archs[1]},71.0\n"
                    + row.format(arch=archs[2], first=archs[0]) + "\n")
    with pytest.raises(BadInput, match=rf"bad.csv, line 4: {message}"):
        TableAccuracy(path, space, "top1")


# -------------------------------------------------------------------------------- proxies

@pytest.fixture(autouse=True)
def one_torch_thread(request):
    """Proxy tests run torch on one thread: on a shared, loaded machine more threads only contend."""
    if "proxy" not in request.node.name:
        yield
        return
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_batch(tmp_path_factory):
    """A user batch (.npz, 8 labelled images 3x16x16) that keeps the proxy tests fast."""
    path = tmp_path_factory.mktemp("batch") / "batch.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.normal(size=(8, 3, 16, 16)).astype(np.float32), y=rng.integers(0, 10, 8))
    return path


@pytest.mark.parametrize("proxy", ["synflow", "naswot", "grad_norm", "snip", "params", "flops"])
def test_each_proxy_is_deterministic_on_nasbench201(space, shipped, small_batch, proxy):
    pytest.importorskip("torch")
    archs = [shipped[0][1], shipped[0][5]]
    first = parse_accuracy(f"proxy:{proxy}:{small_batch}", space)
    values = first.evaluate(archs)
    again = parse_accuracy(f"proxy:{proxy}:{small_batch}", space).evaluate(archs)
    assert np.isfinite(values).all() and values[0] != values[1]
    np.testing.assert_array_equal(values, again)
    data = first.details(archs[0])["data"]
    assert ("user batch" in data and "batch.npz" in data) or data.startswith("none")


def test_proxies_on_the_default_digits_batch(space, shipped):
    pytest.importorskip("torch")
    from hwnas.search.proxies import SINGULAR_SCORE

    naswot = parse_accuracy("proxy:naswot", space)
    assert naswot.name == "proxy:naswot"
    assert naswot.details(shipped[0][1])["data"].startswith("load_digits default batch (16 images")
    good, degenerate = naswot.evaluate([shipped[0][1], DEGENERATE])
    assert np.isfinite(good) and good > SINGULAR_SCORE and degenerate == SINGULAR_SCORE


def test_proxy_input_errors(space, tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((4, 10), dtype=np.float32))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object))
    np.save(tmp_path / "images.npy", np.zeros((4, 1, 8, 8), dtype=np.float32))
    with pytest.raises(BadInput, match="unknown zero-cost proxy 'zen'.*known: synflow"):
        parse_accuracy("proxy:zen", space)
    with pytest.raises(BadInput, match=r"flat.npy: the proxy batch must be numeric images"):
        parse_accuracy(f"proxy:naswot:{tmp_path / 'flat.npy'}", space)
    with pytest.raises(BadInput, match=r"objects.npy: cannot load the proxy batch"):
        parse_accuracy(f"proxy:naswot:{tmp_path / 'objects.npy'}", space)
    with pytest.raises(BadInput, match="proxy snip needs labels"):
        parse_accuracy(f"proxy:snip:{tmp_path / 'images.npy'}", space)
