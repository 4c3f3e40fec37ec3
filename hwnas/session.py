"""Opening an agent session on a configured device (transport + client), as a context manager."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from hwnas.agent_client import AgentClient
from hwnas.config import DeviceConfig, Registry
from hwnas.transports import open_transport


@contextlib.contextmanager
def agent_session(registry: Registry, device: DeviceConfig) -> Iterator[AgentClient]:
    """Start the device's agent, yield a client that has shaken hands, always stop it afterwards."""
    transport = open_transport(device, registry.workspace)
    client = AgentClient(transport, timeout_s=device.measurement.timeout_s)
    try:
        client.start()
        yield client
    finally:
        try:
            client.close()
        finally:
            transport.close()
