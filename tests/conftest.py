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
