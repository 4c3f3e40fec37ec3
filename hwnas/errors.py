"""The error types hwnas raises, and the exit code each maps to.

Exit codes (the CLI contract): 0 success, 1 a device or runtime failure,
2 bad input (config, arguments, model file). The CLI maps these classes in
one place (:func:`hwnas.cli.main`).
"""
from __future__ import annotations

import errno

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
"""The ``OSError.errno`` values of a full disk (or quota): a device failure, exit 1."""


class HwnasError(Exception):
    """Base of every error hwnas reports to a user as one sentence."""

    exit_code = 1
    reported = False
    """Set once the sentence has been printed (the fleet reports each device's error as it happens), so
    the CLI does not print it a second time when the caller raises it again."""


class BadInput(HwnasError):
    """The user gave us something we cannot use: config, argument, model file."""

    exit_code = 2


class DeviceFailure(HwnasError):
    """A device, its agent or its runtime failed while doing valid work."""

    exit_code = 1


class StoreLocked(DeviceFailure):
    """Another process held the measurement store's write lock for longer than we wait."""


class StoreFull(DeviceFailure):
    """The disk under the workspace is full (or failed a write); nothing was half-written."""


class AgentError(DeviceFailure):
    """The agent on a device answered with an error or misbehaved.

    ``kind`` is the protocol error type when the agent sent one (``missing_model``...).
    """

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind


class AgentTimeout(AgentError):
    """A request to the agent got no reply within its timeout."""


class AgentProtocolError(AgentError):
    """The agent sent something that is not a valid protocol frame."""


class DeviceUnreachable(AgentError):
    """The device (or its agent process) cannot be reached or has died."""


class HostKeyRejected(DeviceFailure):
    """An SSH host key is unknown or has changed: refused until the user trusts it (never retried)."""
