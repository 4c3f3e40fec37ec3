"""cost_models.metrics against hand-computed values."""
import math

import pytest

from cost_models.metrics import kendall_tau, rmspe, spearman_rho, summary, within

TRUE = [10.0, 20.0, 30.0, 40.0]
PRED = [10.4, 21.5, 27.0, 40.0]   # relative errors 0.04, 0.075, 0.10, 0.0


def test_within_shares():
    assert within(TRUE, PRED, 0.05) == pytest.approx(0.5)
    assert within(TRUE, PRED, 0.10) == pytest.approx(1.0)   # 0.10 exactly counts as within
    assert within(TRUE, PRED, 0.01) == pytest.approx(0.25)


def test_rmspe():
    assert rmspe(TRUE, PRED) == pytest.approx(math.sqrt((0.04**2 + 0.075**2 + 0.1**2 + 0) / 4))


def test_rank_metrics_hand_computed():
    # ranks of [1, 2, 3, 4] vs [1, 3, 2, 4]: one discordant pair of 6 -> tau = (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # d = [0, 1, -1, 0] -> rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman_rho(TRUE, [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau(TRUE, PRED) == pytest.approx(1.0)


def test_constant_prediction_gives_nan_rank_metrics():
    assert math.isnan(spearman_rho(TRUE, [5.0] * 4)) and math.isnan(kendall_tau(TRUE, [5.0] * 4))


def test_summary_has_everything():
    s = summary(TRUE, PRED)
    assert s == pytest.approx({"n": 4, "within_5": 0.5, "within_10": 1.0, "rmspe": rmspe(TRUE, PRED),
                               "kendall_tau": 1.0, "spearman_rho": 1.0})


@pytest.mark.parametrize("t, p, msg", [
    ([1.0, 2.0], [1.0], "differ in length"),
    ([], [], "at least one"),
    ([1.0, float("nan")], [1.0, 1.0], "finite"),
])
def test_bad_inputs(t, p, msg):
    with pytest.raises(ValueError, match=msg):
        summary(t, p)


def test_relative_metrics_need_positive_truth():
    with pytest.raises(ValueError, match="positive"):
        rmspe([0.0, 1.0], [1.0, 1.0])
