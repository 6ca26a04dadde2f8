"""Small networking helpers shared by the server, tests, the demo and benchmarks.

Tests and benchmarks start real processes (Envoy, backends) and need ports nobody else uses; asking the kernel
for an ephemeral port is the only reliable way on a shared machine.
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that was free a moment ago.

    The port is released before returning, so another process could in theory take it; prefer binding port 0
    directly where the program allows it and use this only for processes that need a number up front.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def split_host_port(address: str) -> tuple[str, int]:
    """Split `HOST:PORT` (IPv6 hosts in brackets) and check the port is a valid number."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {address!r}")
    return host.removeprefix("[").removesuffix("]"), port
