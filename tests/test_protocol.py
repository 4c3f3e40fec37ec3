"""The wire protocol's pure core: framing, validation, limits (no I/O)."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_agents import protocol

ids = st.integers(min_value=0, max_value=2**53)
settings = st.fixed_dictionaries({}, optional={
    "threads": st.integers(1, 64), "repeat": st.integers(1, 100),
    "min_repeat_ms": st.floats(0.1, 1e3), "providers": st.lists(st.text(max_size=30), max_size=3)})
requests = st.one_of(
    st.builds(lambda i: {"id": i, "op": "hello", "protocol": protocol.PROTOCOL_VERSION}, ids),
    st.builds(lambda i: {"id": i, "op": "ping"}, ids),
    st.builds(lambda i, s: {"id": i, "op": "load", "sha256": s, "format": "onnx"}, ids, st.text(max_size=64)),
    st.builds(lambda i, m, s: {"id": i, "op": "measure", "model": m, "settings": s},
              ids, st.text(max_size=64), settings),
    st.builds(lambda i, m, r: {"id": i, "op": "profile", "model": m, "runs": r}, ids, st.text(), st.integers(1, 50)),
)


@given(requests)
def test_request_round_trip(message):
    frame = protocol.encode(message)
    assert frame.endswith(b"\n") and frame.count(b"\n") == 1
    assert protocol.validate_request(protocol.decode(frame)) == message


@given(st.text())
def test_decode_never_crashes_on_text(text):
    try:
        protocol.decode(text)
    except protocol.ProtocolError:
        pass


@pytest.mark.parametrize("message, fragment", [
    ({"op": "ping"}, "integer 'id'"),
    ({"id": True, "op": "ping"}, "integer 'id'"),
    ({"id": 1, "op": "reboot"}, "unknown op"),
    ({"id": 1, "op": "hello"}, "missing field 'protocol'"),
    ({"id": 1, "op": "ping", "x": 1}, "unknown field"),
    ({"id": 1, "op": "load", "sha256": "a", "format": "exe"}, "load.format"),
    ({"id": 1, "op": "measure", "model": "a", "settings": {"threads": "4"}}, "settings.threads must be int"),
    ({"id": 1, "op": "measure", "model": "a", "settings": {"rm_rf": 1}}, "unknown key"),
    ({"id": 1, "op": "measure", "model": "a", "backend": "tensorflow"}, "measure.backend"),
])
def test_invalid_requests_are_named(message, fragment):
    with pytest.raises(protocol.ProtocolError, match=fragment):
        protocol.validate_request(message)


def test_frame_limit_enforced():
    with pytest.raises(protocol.ProtocolError, match="exceeds"):
        protocol.decode(b"x" * (protocol.MAX_LINE + 1))


def test_replies_validated():
    assert protocol.validate_reply(protocol.ok(3, {"a": 1}))["ok"]
    assert not protocol.validate_reply(protocol.error(3, "runtime", "boom"))["ok"]
    with pytest.raises(protocol.ProtocolError):
        protocol.validate_reply({"id": 3, "ok": False, "error": {"type": "whatever"}})
    with pytest.raises(protocol.ProtocolError):
        protocol.validate_reply({"id": 3, "ok": True})
