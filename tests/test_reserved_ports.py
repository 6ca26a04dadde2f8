"""Ports are bound, not guessed: a reserved port is held by a bound, never-listening socket until the child
given its number listens on it, and the real children (Envoy listening with ``SO_REUSEPORT`` on every
worker, ``controlplane serve`` restarted after ``kill -9``) take it while nobody else can."""

from __future__ import annotations

import errno
import socket
from collections import Counter
from pathlib import Path

import pytest

from controlplane.cli import main
from controlplane.devtools.controlplane_process import ControlPlaneProcess
from controlplane.devtools.stack import LocalStack
from controlplane.netutil import PortReservations, ReservedPort
from tests.conftest import BackendFactory, EnvoyFactory
from tests.e2e import EXAMPLES
from tests.xds_support import ServerThread, http_get, http_route_snapshot, wait_for_backend

REQUESTS = 200
"""Each on a new connection, which the kernel gives to one of Envoy's two worker sockets."""


def _bind_error(port: int, *, options: tuple[int, ...] = ()) -> int | None:
    """The errno of binding ``port`` as another program would (with these socket options), None if bound."""
    with socket.socket() as intruder:
        for option in options:
            intruder.setsockopt(socket.SOL_SOCKET, option, 1)
        try:
            intruder.bind(("127.0.0.1", port))
        except OSError as error:
            return error.errno
        return None


def _listening_sockets(port: int) -> int:
    """How many sockets listen on ``port`` (IPv4), from the kernel's own table."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    listen_state = "0A"
    return sum(
        1 for row in rows if row.split()[1].endswith(f":{port:04X}") and row.split()[3] == listen_state
    )


def test_a_reserved_port_is_taken_by_a_listener_and_by_nobody_else() -> None:
    with ReservedPort() as reserved:
        assert _bind_error(reserved.port) == errno.EADDRINUSE
        with socket.socket() as child:
            child.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            child.bind(("127.0.0.1", reserved.port))
            child.listen()
            with socket.create_connection(("127.0.0.1", reserved.port), timeout=5):
                accepted, _ = child.accept()
                accepted.close()
            # A second listener, as a second instance of the child would be, is refused.
            assert _bind_error(reserved.port, options=(socket.SO_REUSEADDR,)) == errno.EADDRINUSE
        # The child gone, the port is still held: a plain program cannot take it, nothing answers on it.
        assert _bind_error(reserved.port) == errno.EADDRINUSE
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", reserved.port), timeout=5).close()


def test_reservations_hold_distinct_ports_until_released() -> None:
    with PortReservations() as reservations:
        ports = [reservations.reserve() for _ in range(20)]
        assert len(set(ports)) == len(ports)
        assert all(_bind_error(port) == errno.EADDRINUSE for port in ports)
    assert all(_bind_error(port) is None for port in ports)


def test_the_kernel_hands_a_reserved_port_to_nobody_asking_for_any_port() -> None:
    """What a program binding port 0 (whatever its options) or connecting out is given is never held."""
    option_sets = ((), (socket.SO_REUSEADDR,), (socket.SO_REUSEADDR, socket.SO_REUSEPORT))
    with PortReservations() as reservations:
        held = {reservations.reserve() for _ in range(50)}
        handed_out = set()
        for _ in range(2000):
            for options in option_sets:
                with socket.socket() as other:
                    for option in options:
                        other.setsockopt(socket.SOL_SOCKET, option, 1)
                    other.bind(("127.0.0.1", 0))
                    handed_out.add(other.getsockname()[1])
        with socket.create_server(("127.0.0.1", 0)) as server:
            for _ in range(200):
                with socket.create_connection(server.getsockname(), timeout=5) as client:
                    handed_out.add(client.getsockname()[1])
                    server.accept()[0].close()
        assert held.isdisjoint(handed_out)


def test_a_stack_holds_every_port_of_its_manifests_the_caller_did_not_place(tmp_path: Path) -> None:
    placed = 1234  # say, a backend the test started itself
    stack = LocalStack(EXAMPLES, port_map={10080: placed}, move_ports=True, workdir=tmp_path)
    try:
        moved = {port: stack.port(port) for port in stack.port_map if port != 10080}
        assert stack.port(10080) == placed
        assert moved
        assert all(_bind_error(port) == errno.EADDRINUSE for port in moved.values())
    finally:
        stack.stop()
    assert all(_bind_error(port) is None for port in moved.values())


@pytest.mark.envoy
def test_envoy_listens_on_a_reserved_port_and_every_connection_reaches_it(
    xds: ServerThread, envoys: EnvoyFactory, backends: BackendFactory, ports: PortReservations
) -> None:
    backend = backends("held")
    port = ports.reserve()
    xds.cache.set_snapshot(http_route_snapshot(generation="held", port=port, backend_port=backend.port))
    envoy = envoys(node_id="held")
    envoy.wait_ready()
    wait_for_backend(port, "held")
    assert _listening_sockets(port) == 2  # SO_REUSEPORT: each of the two workers listens on its own
    backend.clear()
    answers = Counter(http_get(port) for _ in range(REQUESTS))  # each on a connection of its own
    assert answers == {(200, "held"): REQUESTS}
    assert len(backend.received) == REQUESTS
    assert _bind_error(port) == errno.EADDRINUSE
    assert _bind_error(port, options=(socket.SO_REUSEADDR,)) == errno.EADDRINUSE


@pytest.mark.envoy
def test_serve_restarted_after_kill_9_gets_its_reserved_ports_back(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    with ControlPlaneProcess([str(tmp_path / "config")], log_file=tmp_path / "serve.log") as serve:
        serve.kill()
        for port in (serve.xds_port, serve.admin_port):
            assert _bind_error(port) == errno.EADDRINUSE
        serve.start()  # returns once /readyz answers on the same admin port
        # and the xDS port answers too (the proxy-status service is served there)
        assert main(["proxy-status", f"--xds-address=127.0.0.1:{serve.xds_port}", "-o", "json"]) == 0
