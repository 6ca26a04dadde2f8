"""Small networking helpers shared by the server, tests, the demo and benchmarks.

Tests and benchmarks start real processes (Envoy, ``controlplane serve``, the endpoint picker) that must be
told their ports up front, on a machine other test runs share. Asking the kernel for a free port and
closing it again is a guess: someone else can take the port before the child binds it. A
:class:`ReservedPort` keeps the port bound in this process until the child owns it (and, for a child that
is restarted on the same port, for as long as the reservation lives).
"""

from __future__ import annotations

import socket
from types import TracebackType


class ReservedPort:
    """A TCP port the kernel chose, held by a socket bound here that never listens, until released.

    On Linux another socket may bind the same address and listen while this one is merely bound, if it sets
    ``SO_REUSEADDR`` or ``SO_REUSEPORT`` (this one sets both): Envoy, gRPC, Go's ``net`` package and aiohttp
    all set ``SO_REUSEADDR`` on listeners, so a child binds the port it was given as usual. Connections go to
    listening sockets only, never to this one. Meanwhile nobody else is handed the port: ``bind`` to port 0
    and outgoing connections skip a bound port, and a program binding it without those options gets
    ``EADDRINUSE``. Release it once the child is gone, or keep it to restart the child on the same port.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self._socket.bind((host, 0))
        except OSError:
            self._socket.close()
            raise
        self.port: int = self._socket.getsockname()[1]

    def release(self) -> None:
        """Let the port go (safe to repeat)."""
        self._socket.close()

    def __enter__(self) -> ReservedPort:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class PortReservations:
    """Many :class:`ReservedPort` released together: a test's, a local stack's."""

    def __init__(self) -> None:
        self._held: list[ReservedPort] = []

    def reserve(self, host: str = "127.0.0.1") -> int:
        """A port held until :meth:`release`, for a child to bind."""
        reserved = ReservedPort(host)
        self._held.append(reserved)
        return reserved.port

    def release(self) -> None:
        held, self._held = self._held, []
        for reserved in held:
            reserved.release()

    def __enter__(self) -> PortReservations:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def split_host_port(address: str) -> tuple[str, int]:
    """Split `HOST:PORT` (IPv6 hosts in brackets) and check the port is a valid number."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {address!r}")
    return host.removeprefix("[").removesuffix("]"), port
