"""Signatures: OFA key form, canonical round trips (hypothesis), rejected malformed keys."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lut.signature import Signature, parse

OFA_KEYS = [
    "Conv-input:224x224x3-output:112x112x16",
    "expanded_conv-input:112x112x16-output:112x112x16-expand:16-kernel:3-stride:1-idskip:1-se:0-hs:0",
    "expanded_conv-input:56x56x24-output:28x28x40-expand:144-kernel:5-stride:2-idskip:0-se:1-hs:0",
    "Conv_1-input:7x7x160-output:7x7x960",
    "AvgPool2D-input:7x7x960-output:1x1x960",
    "Conv_2-input:1x1x960-output:1x1x1280",
    "Logits-input:1x1x1280-output:1000",
]


@pytest.mark.parametrize("key", OFA_KEYS)
def test_ofa_keys_round_trip(key):
    sig = parse(key)
    assert sig.key() == key == str(sig) and parse(sig.key()) == sig


def test_ofa_block_fields():
    sig = parse(OFA_KEYS[2])
    assert (sig.expand, sig.kernel, sig.stride, sig.idskip, sig.se, sig.act) == (144, 5, 2, 0, 1, "relu")
    assert sig.input == (56, 56, 24) and sig.output == (28, 28, 40)
    assert hash(sig) == hash(parse(OFA_KEYS[2]))


@pytest.mark.parametrize("key", [
    "", "Conv", "Conv-input:224x224x3", "Conv-input:axb-output:1", "Conv-input:1-output:1-bogus:3",
    "expanded_conv-input:1x1x1-output:1x1x1-expand:1-kernel:3-stride:1-idskip:0-se:0",  # no hs
    "Conv-output:1-input:1",  # not canonical order
    "Conv-input:1-output:1-kernel:x",
])
def test_malformed_keys_raise(key):
    with pytest.raises(ValueError):
        parse(key)


dims = st.lists(st.integers(1, 4096), min_size=1, max_size=3).map(tuple)
small = st.none() | st.integers(0, 1024)
words = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,10}", fullmatch=True)


@st.composite
def signatures(draw):
    if draw(st.booleans()):
        return Signature("expanded_conv", draw(dims), draw(dims), expand=draw(st.integers(1, 2000)),
                         kernel=draw(st.sampled_from([3, 5, 7])), stride=draw(st.sampled_from([1, 2])),
                         idskip=draw(st.integers(0, 1)), se=draw(st.integers(0, 1)),
                         act=draw(st.sampled_from(["relu", "h_swish"])), groups=draw(small),
                         dtype=draw(st.sampled_from(["float32", "float16", "int8"])))
    op = draw(words.filter(lambda w: w != "expanded_conv"))
    return Signature(op, draw(dims), draw(dims), expand=draw(small), kernel=draw(small), stride=draw(small),
                     groups=draw(small), idskip=draw(small), se=draw(small), act=draw(st.none() | words),
                     dtype=draw(st.sampled_from(["float32", "float16"])),
                     layout=draw(st.sampled_from(["NCHW", "NHWC"])))


@given(signatures())
def test_any_signature_round_trips(sig):
    assert parse(sig.key()) == sig
