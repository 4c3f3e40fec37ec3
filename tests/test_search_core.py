"""The search core: space interface, determinism, budgets, shared evaluations, state and resume."""
import json

import numpy as np
import pytest

from cost_models.features import FeatureMap
from hwnas import costmodel_api as api
from hwnas import spaces, sweep
from hwnas.errors import BadInput
from hwnas.search import ALGORITHMS, Search, run_search
from hwnas.search.accuracy import CachedAccuracy
from hwnas.search.latency import CostModelLatency, LutLatency
from hwnas.search.result import hypervolume, pareto_front
from lut import nasbench201 as codec
from tests.test_costmodel_model import synthetic_table

NB201 = spaces.get("nasbench201")
WEIGHTS = np.array([0.0, 0.5, 1.5, 2.5, 1.0])


class OpAccuracy:
    """A deterministic accuracy of the edge ops (more convs, more accurate, with interactions);
    counts every architecture it is asked for."""

    name = "test:ops"
    has_weights = False

    def __init__(self):
        self.asked: list[str] = []

    def evaluate(self, archs):
        self.asked += list(archs)
        codes = codec.encode(archs).astype(int)
        return 50 + WEIGHTS[codes].sum(axis=1) + 0.7 * (codes[:, 0] == codes[:, 5]) - 0.3 * (codes[:, 2] == 4)

    def details(self, arch):
        return {"source": "ops"}


@pytest.fixture(scope="module")
def cost_model():
    """A nasbench201 cost model fitted on a synthetic LUT and 80 synthetic networks (std from bootstrap)."""
    table = synthetic_table(NB201)
    fmap = FeatureMap(NB201.layout(), table)
    archs = NB201.sample(80, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    y = fmap.lut_sum(NB201.encode(archs)) * 1.2 * np.exp(rng.normal(0, 0.05, 80)) + 0.3
    return api.fit(NB201, fmap, archs, y), table


@pytest.fixture(scope="module")
def latencies(cost_model):
    cm, table = cost_model
    return {"cm": CostModelLatency(cm, "cm"), "lut": LutLatency(table, NB201, "lut", relative_std=0.05)}


@pytest.mark.parametrize("name", ["nasbench201", "mbv3"])
def test_choice_encoding_round_trips_and_operators_stay_in_space(name):
    space = spaces.get(name)
    rng = np.random.default_rng(0)
    archs = space.sample(50, rng)
    codes = space.to_choices(archs)
    assert codes.shape == (50, len(space.choices())) and space.from_choices(codes) == archs
    mutants = space.mutate_choices(codes, rng)
    assert (mutants != codes).any(axis=1).all()
    assert ((mutants >= 0) & (mutants < np.array(space.choices()))).all()
    kids = space.crossover_choices(codes[:25], codes[25:], rng)
    assert ((kids == codes[:25]) | (kids == codes[25:])).all()
    for arch in (space.mutate(archs[0], rng), space.crossover(archs[0], archs[1], rng)):
        assert space.check(arch) == arch
    with pytest.raises(ValueError, match="must lie in"):
        space.from_choices(np.full((1, len(space.choices())), 9))


def test_sweep_samples_any_space_at_its_resolutions():
    assert all("-r224-" in a for a in sweep.sample_archs(spaces.get("mbv3"), 5, 0, None))
    assert len(sweep.sample_archs(NB201, 5, 0, None)) == 5
    with pytest.raises(ValueError, match="fixed input resolution"):
        NB201.sample(2, np.random.default_rng(0), resolutions=[64])


def test_cost_model_takes_choice_codes_of_any_space(cost_model):
    cm, _ = cost_model
    archs = NB201.sample(20, np.random.default_rng(3))
    assert np.array_equal(cm.predict(NB201.to_choices(archs)), cm.predict(archs))
    assert np.array_equal(cm.predict([codec.parse_arch(a) for a in archs]), cm.predict(archs))


def test_pareto_front_and_hypervolume():
    acc = np.array([1.0, 2.0, 2.0, 3.0, np.nan, 0.5])
    lat = np.array([1.0, 2.0, 3.0, 4.0, 0.1, 5.0])
    assert pareto_front(acc, lat).tolist() == [0, 1, 3]
    # unit box: points (t=0, a=0.5) and (t=0.5, a=1) -> 0.5 * 1 + 0.5 * 0.5
    assert hypervolume(np.array([1.5, 2.0]), np.array([0.0, 1.0]), (1.0, 2.0), (0.0, 2.0)) == pytest.approx(0.75)


def test_latencies_a_few_ulps_apart_tie_on_the_front():
    """Batched predictions differ in the last bits with the batch: the less accurate of two equal
    latencies never joins the front, whichever is a few ulps faster."""
    lat = 0.12084011474
    for faster in (0, 1):
        lats = np.array([lat, lat])
        lats[faster] = np.nextafter(np.nextafter(lat, 0.0), 0.0)
        assert pareto_front(np.array([73.56, 77.9]), lats).tolist() == [1]


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_same_seed_same_result_bit_for_bit(algorithm, latencies):
    runs = [run_search(NB201, OpAccuracy(), latencies, algorithm=algorithm, evaluations=120,
                       budgets_ms=(45.0, 60.0), seed=7).to_json() for _ in range(2)]
    assert json.dumps(runs[0]) == json.dumps(runs[1])
    other = run_search(NB201, OpAccuracy(), latencies, algorithm=algorithm, evaluations=120, budgets_ms=(45.0,),
                       seed=8)
    assert other.archive != run_search(NB201, OpAccuracy(), latencies, algorithm=algorithm, evaluations=120,
                                       budgets_ms=(45.0,), seed=7).archive


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_best_never_exceeds_its_budget_by_predicted_latency(algorithm, latencies):
    budgets = (40.0, 55.0, 70.0)
    result = run_search(NB201, OpAccuracy(), latencies, algorithm=algorithm, evaluations=150, budgets_ms=budgets,
                        seed=1)
    for name, dev in result.devices.items():
        pred, std = latencies[name].predict([b.arch for b in dev.best if b.arch], return_std=True)
        met = [b for b in dev.best if b.arch]
        assert met and all(p + s <= b.budget_ms for p, s, b in zip(pred, std, met))
        accs = [c.accuracy for c in dev.front]
        assert accs == sorted(accs) and all(c.arch in result.archive for c in dev.front)
        for b in met:  # the best is the most accurate archive member meeting the budget
            assert b.accuracy == max(c.accuracy for c in dev.front if c.latency_ms + c.latency_std <= b.budget_ms)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_infeasible_budget_is_reported_in_bounded_time(algorithm, latencies):
    result = run_search(NB201, OpAccuracy(), latencies, algorithm=algorithm, evaluations=80,
                        budgets_ms=(1e-6,), seed=0)
    for dev in result.devices.values():
        best = dev.best[0]
        assert best.arch is None and not best.met and best.fastest is not None
        assert best.fastest.latency_ms == min(c.latency_ms for c in dev.front)
    doc = result.to_json()["devices"][0]["best"][0]
    assert doc["arch"] is None and doc["fastest"]["arch"]


def test_two_devices_share_accuracy_evaluations(latencies):
    objective = OpAccuracy()
    result = run_search(NB201, objective, latencies, algorithm="nsga2", evaluations=100, seed=3)
    assert result.evaluations == 100 == len(result.archive)
    assert len(objective.asked) == len(set(objective.asked)) == 100      # not 2 x 100
    assert set(result.devices) == {"cm", "lut"} and all(d.front for d in result.devices.values())


def test_cached_accuracy_never_evaluates_twice():
    objective = OpAccuracy()
    cached = CachedAccuracy(objective)
    archs = NB201.sample(5, np.random.default_rng(0))
    first = cached.evaluate(archs + archs[:2])
    assert np.array_equal(cached.evaluate(archs[::-1]), first[:5][::-1])
    assert cached.evaluations == len(set(archs)) == len(objective.asked)


@pytest.mark.parametrize("algorithm", ["nsga2", "evolution"])
def test_resumed_search_equals_uninterrupted(algorithm, latencies, tmp_path):
    kwargs = dict(algorithm=algorithm, evaluations=150, budgets_ms=(55.0,), seed=4)
    straight = run_search(NB201, OpAccuracy(), latencies, **kwargs)
    search = Search(NB201, OpAccuracy(), latencies, **kwargs)
    for _ in range(4):
        search.step()
    search.save(tmp_path)
    objective = OpAccuracy()
    resumed = run_search(NB201, objective, latencies, state_dir=tmp_path, **kwargs)
    assert json.dumps(resumed.to_json()) == json.dumps(straight.to_json())
    assert not set(objective.asked) & set(search.problem.archs)          # nothing evaluated twice
    with pytest.raises(BadInput, match="space"):
        Search.load(tmp_path, spaces.get("mbv3"), OpAccuracy(), latencies)


def test_continue_from_a_previous_result_with_new_latencies(latencies):
    first = run_search(NB201, OpAccuracy(), {"cm": latencies["cm"]}, evaluations=60, budgets_ms=(50.0,), seed=2)
    objective = OpAccuracy()
    more = run_search(NB201, objective, {"cm": latencies["lut"]}, evaluations=100, initial=first)
    assert more.evaluations == 100 and set(first.archive) <= set(more.archive)
    assert len(objective.asked) == 40 and more.seed == 2


def test_bad_settings_are_bad_input(latencies):
    with pytest.raises(BadInput, match="unknown search algorithm 'bogus'"):
        Search(NB201, OpAccuracy(), latencies, algorithm="bogus")
    for budget in (0, -1, float("nan"), "fast"):
        with pytest.raises(BadInput, match="budget"):
            Search(NB201, OpAccuracy(), latencies, budgets_ms=(budget,))
    with pytest.raises(BadInput, match="positive integer"):
        Search(NB201, OpAccuracy(), latencies, evaluations=0)


def test_mbv3_search_runs_against_a_lut():
    space = spaces.get("mbv3")
    table = synthetic_table(space)
    lut = LutLatency(table, space, "lut")

    class Depth:
        name, has_weights = "test:depth", False

        def evaluate(self, archs):
            return np.array([sum(map(int, a.split("-d")[1][:5])) + 0.01 * int(a.split("-r")[1][:3]) for a in archs])

        def details(self, arch):
            return {}

    result = run_search(space, Depth(), {"lut": lut}, algorithm="nsga2", evaluations=40, budgets_ms=(1e9,), seed=0)
    assert result.evaluations == 40 and result.devices["lut"].best[0].met


def test_search_against_tables_only_draws_from_their_architectures():
    from hwnas.search.latency import TableLatency

    archs = NB201.sample(60, np.random.default_rng(9))
    table = TableLatency({a: 1.0 + i for i, a in enumerate(archs)}, NB201, "table")
    result = run_search(NB201, OpAccuracy(), {"table": table}, algorithm="nsga2", evaluations=200,
                        budgets_ms=(30.0,), seed=0)
    assert set(result.archive) <= set(archs) and result.evaluations == len(set(archs))
    assert any("no new architecture" in n for n in result.notes)


def test_tied_whole_space_table_is_screened_whole_deterministically(latencies):
    """An exact table of all 15,625 architectures with whole-millisecond ties: NSGA-II screens the
    whole space each generation (and not with an uncertain model), spends exactly its budget and
    repeats bit for bit; the surrogate's quadratic-form prediction equals its design matrix's."""
    from hwnas.search.algorithms import Problem, Surrogate
    from hwnas.search.latency import TableLatency

    archs = NB201.enumerate()
    codes = codec.encode(archs).astype(int)
    table = TableLatency({a: float(1 + (c > 1).sum()) for a, c in zip(archs, codes)}, NB201, "ties")
    assert len(Problem(NB201, CachedAccuracy(OpAccuracy()), {"ties": table}).tied_universe()) == len(archs)
    assert Problem(NB201, CachedAccuracy(OpAccuracy()), latencies).tied_universe() is None
    runs = [run_search(NB201, OpAccuracy(), {"ties": table}, algorithm="nsga2", evaluations=150,
                       budgets_ms=(3.0,), seed=3) for _ in range(2)]
    assert runs[0].evaluations == 150 and len(runs[0].archive) == 150
    assert json.dumps(runs[0].to_json()) == json.dumps(runs[1].to_json())
    truth = OpAccuracy().evaluate(archs)
    levels = {float(1 + (c > 1).sum()) for c in codes}
    assert len({c.latency_ms for c in runs[0].devices["ties"].front}) <= len(levels)
    best3 = max(t for t, c in zip(truth, codes) if 1 + (c > 1).sum() <= 3)
    assert runs[0].devices["ties"].best[0].accuracy == pytest.approx(best3)

    sur = Surrogate(np.asarray(NB201.choices())).fit(codes[:300], truth[:300])
    assert np.allclose(sur.predict(codes[300:400]), sur.features(codes[300:400]) @ sur.coef_ + sur.mean_)
