"""Shared fixtures: a real sshd on 127.0.0.1 (skipped with a reason where sshd is missing)."""
from __future__ import annotations

import pytest

from tests import sshd_harness


@pytest.fixture
def ssh_server(tmp_path):
    """A running sshd on 127.0.0.1 with generated keys and a known_hosts written for it."""
    reason = sshd_harness.sshd_missing()
    if reason:
        pytest.skip(reason)
    with sshd_harness.sshd(tmp_path / "sshd") as server:
        yield server


@pytest.fixture
def netns_ok():
    """Skip unless network namespaces can be created here."""
    reason = sshd_harness.sshd_missing() or sshd_harness.netns_missing()
    if reason:
        pytest.skip(reason)


SLOW_TIMEOUT_S = 900
"""Per-test timeout of tests marked ``slow`` (the default for the rest is pyproject's ``timeout``)."""


def pytest_collection_modifyitems(items):
    """Give ``slow`` tests (TVM tuning, fault injection) a longer timeout unless they set their own:
    on a loaded machine they legitimately take several minutes, and a hang still fails."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
