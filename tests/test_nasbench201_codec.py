"""The NAS-Bench-201 arch codec: round trips, errors, degenerate cells, enumeration."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lut.nasbench201 import OPS, all_archs, encode, format_arch, is_degenerate, parse_arch

EXAMPLE = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|"
archs = st.tuples(*[st.sampled_from(OPS)] * 6)


def test_ops_order_is_the_contract():
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def test_parse_example_in_string_order():
    assert parse_arch(EXAMPLE) == ("nor_conv_3x3", "skip_connect", "avg_pool_3x3",
                                   "none", "nor_conv_1x1", "skip_connect")
    assert format_arch(parse_arch(EXAMPLE)) == EXAMPLE


@given(archs)
def test_round_trip_string(ops):
    assert parse_arch(format_arch(ops)) == ops


@given(st.lists(archs, max_size=20))
def test_encode_strings_and_tuples_agree(ops_list):
    codes = encode(ops_list)
    assert codes.shape == (len(ops_list), 6) and codes.dtype == np.int8
    assert np.array_equal(codes, encode([format_arch(o) for o in ops_list]))
    assert [tuple(OPS[c] for c in row) for row in codes] == ops_list


@pytest.mark.parametrize("bad, why", [
    ("", "3 node groups"),
    ("|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|", "3 node groups"),
    ("|nor_conv_3x3~0|+|skip_connect~0|+|none~0|nor_conv_1x1~1|skip_connect~2|", "node 2 needs 2"),
    ("|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|", "op~0"),
    ("nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|", "enclosed"),
    ("|conv_5x5~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|",
     "unknown operation 'conv_5x5'"),
])
def test_malformed_strings_raise_clear_value_error(bad, why):
    with pytest.raises(ValueError, match=why):
        parse_arch(bad)


def test_encode_rejects_unknown_op_and_wrong_length():
    with pytest.raises(ValueError, match="unknown operation"):
        encode([("none",) * 5 + ("max_pool",)])
    with pytest.raises(ValueError, match="6 edge ops"):
        encode([("none",) * 5])


@pytest.mark.parametrize("ops, degenerate", [
    (("none",) * 6, True),
    (("skip_connect",) + ("none",) * 5, True),                       # 0->1 only, 1 is a dead end
    (("none", "none", "none", "skip_connect", "none", "none"), False),  # direct 0->3
    (("nor_conv_3x3", "none", "none", "none", "avg_pool_3x3", "none"), False),  # 0->1->3
    (("none", "nor_conv_1x1", "none", "none", "none", "skip_connect"), False),  # 0->2->3
    (("nor_conv_3x3", "none", "skip_connect", "none", "none", "nor_conv_1x1"), False),  # 0->1->2->3
    (("none", "none", "skip_connect", "none", "nor_conv_3x3", "skip_connect"), True),  # node 1 never reached
    (("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "none", "none", "none"), True),  # nothing into 3
])
def test_degenerate_hand_checked(ops, degenerate):
    assert is_degenerate(ops) is degenerate
    assert is_degenerate(format_arch(ops)) is degenerate


def test_all_archs_complete_deterministic_and_341_degenerate():
    archs = all_archs()
    assert len(archs) == 15625 == len(set(archs))
    assert archs == all_archs() and archs[0] == ("none",) * 6
    assert sum(is_degenerate(a) for a in archs) == 341
