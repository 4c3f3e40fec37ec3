"""The interleave window: an item's sessions are spread over ``measurement.interleave`` items
(real agent, real store; the agent client is only watched, not replaced)."""
import pytest

from hwnas import config, fleet
from hwnas.errors import BadInput
from hwnas.measure import measure_items, model_item
from hwnas.store import Store
from tests.helpers import FAST_MEASUREMENT, conv_model, local_config


def _session_order(tmp_path, interleave: int) -> tuple[list[str], list[str], list[tuple[int, int]]]:
    """Measure 5 models in 2 sessions each: the signatures in the order their sessions ran,
    the order in which results were stored, and the window progress reported per session."""
    cfg = local_config(tmp_path, measurement=FAST_MEASUREMENT.replace("}", f", interleave: {interleave}}}"))
    reg = config.load(cfg)
    items = [model_item(conv_model(tmp_path / f"m{i}.onnx", seed=i)) for i in range(5)]
    by_sha = {item.sha256: item.signature for item in items}
    sessions: list[str] = []
    stored: list[str] = []
    progress: list[tuple[int, int]] = []

    def work(device, client):
        measure = client.measure

        def watched(sha, *args, **kwargs):
            if sha in by_sha:
                sessions.append(by_sha[sha])
            return measure(sha, *args, **kwargs)

        client.measure = watched
        return measure_items(device, client, Store(reg.workspace), items, "run-1",
                             on_done=lambda item, m: stored.append(item.signature),
                             on_session=lambda taken, planned: progress.append((taken, planned)))

    [outcome] = fleet.run(reg, reg.devices, work)
    assert outcome.error is None
    return sessions, stored, progress


def test_a_window_of_all_items_spreads_every_items_sessions_over_the_run(tmp_path):
    sessions, stored, progress = _session_order(tmp_path, interleave=5)
    assert len(sessions) == 10 and len(stored) == 5
    assert progress == [(i, 10) for i in range(1, 11)]
    assert len(set(sessions[:5])) == 5  # every item's first session before any item's second
    assert set(sessions[5:]) == set(sessions[:5])


def test_a_narrow_window_measures_and_stores_items_a_few_at_a_time(tmp_path):
    sessions, stored, progress = _session_order(tmp_path, interleave=2)
    assert len(sessions) == 10
    assert progress == [(i, 4) for i in range(1, 5)] * 2 + [(1, 2), (2, 2)]
    assert set(sessions[:4]) == set(stored[:2]) and len(set(sessions[:4])) == 2
    assert set(sessions[8:]) == set(stored[4:]) and len(stored) == 5


def test_interleave_must_be_positive(tmp_path):
    cfg = local_config(tmp_path, measurement=FAST_MEASUREMENT.replace("}", ", interleave: 0}"))
    with pytest.raises(BadInput, match="interleave"):
        config.load(cfg)
