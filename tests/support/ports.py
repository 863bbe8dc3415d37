"""A free TCP port for a server that a test starts (a JAX coordinator, PostgreSQL), outside the ephemeral range.

A port from `bind(("127.0.0.1", 0))` comes from the kernel's ephemeral range
(`ip_local_port_range`), where it also picks the local port of every outgoing
connection: between the test closing its probe and the server binding the
port, another process's connection (the other pytest worker's database
client, a collective's peers) can take it, and the server fails to start.
Below that range only explicit binds land, so a port picked there at random
and found free stays free, as JAX picks its own coordinator port above it.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOWEST = 20_000  # below, ports that services commonly use


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, chosen below the ephemeral range."""
    choices = random.Random()  # its own: never the tests' seeded global generator
    high = _ephemeral_start()
    for _ in range(200):
        port = choices.randrange(LOWEST, high) if high > LOWEST else 0
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise RuntimeError(f"no free port between {LOWEST} and {high}")
