"""Kernel counts from ONNX Runtime's optimised graph (real onnxruntime sessions)."""
import collections

import numpy as np
import pytest

from cost_models import kernels
from cost_models.network_model import NetworkCostModel
from hwnas import spaces

CPU = ["CPUExecutionProvider"]
DEAD_END = "|avg_pool_3x3~0|+|none~0|avg_pool_3x3~1|+|nor_conv_3x3~0|none~1|none~2|"  # nodes 1, 2 feed nothing
IDENTITY = "|none~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|none~2|"  # output = input, a dead branch
ALL_CONV = "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|"


def _alone(space, arch):
    """Kernel counts of each probe of ``arch`` optimised in a session of its own (whole graph)."""
    model, [[one, two]] = space.kernel_probes([arch])
    graph = kernels.optimized_graph(model, CPU)
    return kernels.component_kernels(graph)[one], collections.Counter(kernels.kernel_name(n) for n in graph.node)


def test_packed_probes_split_back_into_the_counts_of_separate_sessions():
    space = spaces.get("nasbench201")
    archs = [DEAD_END, IDENTITY, ALL_CONV, "|skip_connect~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"]
    model, outputs = space.kernel_probes(archs)
    packed = kernels.component_kernels(kernels.optimized_graph(model, CPU))
    for arch, (one, two) in zip(archs, outputs):
        alone_one, both = _alone(space, arch)
        assert packed[one] == alone_one
        assert packed[one] + packed[two] == both  # the two probes of one arch are all of its own graph


def test_dead_end_branches_count_because_the_runtime_runs_them():
    space = spaces.get("nasbench201")
    one, _ = _alone(space, DEAD_END)
    assert one["AveragePool"] == 2
    one, _ = _alone(space, IDENTITY)
    assert one["AveragePool"] == 1 and one["Mul"] == 1


def test_fusion_is_visible_in_kernel_names():
    one, _ = _alone(spaces.get("nasbench201"), ALL_CONV)
    assert one["Add"] == 0 and any(name.endswith("+Sum") for name in one)  # the Adds went into the convs
    assert sum(v for k, v in one.items() if k.startswith("Conv1x1")) == 6


def test_table_rows_follow_the_space_enumeration_and_round_trip():
    space = spaces.get("nasbench201")
    archs = space.enumerate()[:300]
    table = kernels.build(archs, space.kernel_probes, space.kernel_radices, CPU)
    codes = space.encode(archs)
    assert (codes[:, 1:] @ np.array(space.kernel_radices) == np.arange(300)).all()
    again = kernels.KernelTable.from_dict(table.to_dict())
    assert again.columns == table.columns and np.array_equal(again.lookup(codes), table.lookup(codes))
    assert table.meta["runtime"] == "onnxruntime" and table.meta["version"]
    with pytest.raises(ValueError, match="outside the kernel table"):
        table.lookup(space.encode(space.enumerate()[-1:]))
    with pytest.raises(ValueError, match="needs columns"):
        kernels.KernelTable.from_dict({"columns": []})


def test_kernel_columns_make_an_additive_base_that_round_trips():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 6, (120, 3)).astype(float)
    lut = rng.uniform(0.5, 1.5, 120)
    y = 0.2 + 0.8 * lut + counts @ np.array([0.05, 0.1, 0.02])
    X = np.column_stack([lut, np.log(lut), counts])
    names = ["lut_sum", "log_lut_sum", "kernel1:A", "kernel1:B", "kernel2:A"]
    model = NetworkCostModel(feature_names=names, n_bootstrap=4).fit(X, y)
    assert model.additive_ == [0, 2, 3, 4]
    assert np.max(np.abs(model.predict(X) / y - 1)) < 0.01
    again = NetworkCostModel.from_dict(model.to_dict())
    assert np.array_equal(again.predict(X), model.predict(X))
