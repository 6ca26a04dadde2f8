"""Operating the server next to real Envoys, in both ADS variants (issue 3, points 7 and 8, and bad input):
keepalive, large messages, graceful shutdown, clean-up when proxies leave, metrics and probes, and
malformed requests failing only their own stream.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

import grpc
import pytest
from envoy.service.discovery.v3 import discovery_pb2
from grpc._cython import cygrpc  # channelz data, as the grpcio-channelz service would serve it

from controlplane.netutil import PortReservations
from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import CLUSTER, LISTENER
from controlplane.xds.server import XdsSettings
from controlplane.xds.server.ads import GIL_SWITCH_INTERVAL_SECONDS
from tests import xds_builders
from tests.polling import wait_until
from tests.xds_support import (
    SERVER_DRAIN_SECONDS,
    BackendFactory,
    EnvoyFactory,
    RawStream,
    ServerThread,
    http_get,
    http_route_snapshot,
    node,
    start_envoy,
    wait_for_backend,
)


def _admin(xds: ServerThread, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{xds.admin_port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _connected(xds: ServerThread, mode: str) -> float:
    return xds.server.metrics.get_sample_value("xds_connected_proxies", {"mode": mode}) or 0.0


def _first_request(mode: str, type_url: str, **fields: object) -> discovery_pb2.DiscoveryRequest:
    request_class = discovery_pb2.DeltaDiscoveryRequest if mode == "delta" else discovery_pb2.DiscoveryRequest
    request: discovery_pb2.DiscoveryRequest = request_class(type_url=type_url, **fields)
    return request


def _small_snapshot(connect_timeout_seconds: float = 1.0) -> Snapshot:
    return Snapshot.from_resources(
        clusters=[xds_builders.eds_cluster("c", connect_timeout_seconds=connect_timeout_seconds)],
        endpoints=[xds_builders.load_assignment("c", socket_endpoints=[("127.0.0.1", 9)])],
    )


def test_metrics_and_probes(xds: ServerThread, envoys: EnvoyFactory, mode: str) -> None:
    assert _admin(xds, "/healthz") == (200, "ok\n")
    assert _admin(xds, "/readyz") == (503, "not ready\n")
    snapshot = _small_snapshot()
    xds.cache.set_snapshot(snapshot)
    assert _admin(xds, "/readyz") == (200, "ready\n")
    envoys().wait_ready()
    wait_until(lambda: xds.events.holds(snapshot, CLUSTER))
    status, text = _admin(xds, "/metrics")
    assert status == 200
    labels = f'mode="{mode}",type="Cluster"'
    for line in (
        f'xds_connected_proxies{{mode="{mode}"}} 1.0',
        f"xds_pushes_total{{{labels}}}",
        f"xds_acks_total{{{labels}}}",
        'xds_push_to_ack_seconds_count{type="Cluster"}',
        "# TYPE xds_nacks_total counter",
    ):
        assert line in text, line


def test_state_is_cleaned_up_when_proxies_leave(xds: ServerThread, envoys: EnvoyFactory, mode: str) -> None:
    xds.cache.set_snapshot(_small_snapshot())
    proxies = [envoys(node_id=f"leaving-{index}") for index in range(2)]
    for envoy in proxies:
        envoy.wait_ready()
    assert _connected(xds, mode) == 2
    assert xds.call(lambda: (xds.server.stream_count, xds.cache.watcher_count)) == (2, 2)
    for envoy in proxies:
        envoy.stop()
    wait_until(lambda: _connected(xds, mode) == 0, message="the gauge to drop")
    wait_until(lambda: xds.call(lambda: (xds.server.stream_count, xds.cache.watcher_count)) == (0, 0))


def _keepalives_sent_on_port(port: int) -> int:
    """HTTP/2 keepalive pings sent on the accepted connections whose local port is ``port``, by channelz.

    The server is told apart by its connections' port: channelz reuses ids (the newest server need not have
    the highest id) and answers at most 100 servers a page, and other tests' servers may not be collected.
    """
    sent = 0
    start = 0
    while True:
        page = json.loads(cygrpc.channelz_get_servers(start))
        for server in page.get("server", []):
            server_id = int(server["ref"]["serverId"])
            refs = json.loads(cygrpc.channelz_get_server_sockets(server_id, 0, 100)).get("socketRef", [])
            for ref in refs:
                socket = json.loads(cygrpc.channelz_get_socket(int(ref["socketId"])))["socket"]
                if socket.get("local", {}).get("tcpipAddress", {}).get("port") == port:
                    sent += int(socket["data"].get("keepAlivesSent", 0))
        if page.get("end", False) or not page.get("server"):
            return sent
        start = max(int(entry["ref"]["serverId"]) for entry in page["server"]) + 1


@pytest.mark.envoy
def test_keepalive_pings_flow_on_idle_streams(mode: str) -> None:
    xds = ServerThread(XdsSettings(keepalive_time_seconds=0.2, listener_drain_seconds=SERVER_DRAIN_SECONDS))
    envoy = start_envoy(xds_port=xds.port, mode=mode, node_id="idle")
    try:
        xds.cache.set_snapshot(_small_snapshot())
        envoy.wait_ready()

        wait_until(lambda: _keepalives_sent_on_port(xds.port) >= 3, message="server keepalive pings")
        assert envoy.stats(filter_regex="control_plane.connected_state")["control_plane.connected_state"] == 1
        assert xds.server.stream_count == 1
    finally:
        envoy.stop()
        xds.close()


def test_large_resources_pass_both_ways(xds: ServerThread, envoys: EnvoyFactory, mode: str) -> None:
    """Far beyond gRPC's 4 MiB default: a 12 MiB snapshot to Envoy and a 12 MiB request from a client."""
    large = xds_builders.with_metadata(
        xds_builders.eds_cluster("large"), key="blob", value="x" * (12 * 1024 * 1024)
    )
    snapshot = Snapshot.from_resources(
        clusters=[large],
        endpoints=[xds_builders.load_assignment("large", socket_endpoints=[("127.0.0.1", 9)])],
    )
    xds.cache.set_snapshot(snapshot)
    envoys().wait_ready()
    wait_until(lambda: xds.events.holds(snapshot, CLUSTER), message="the large cluster")
    raw = RawStream(port=xds.port, delta=mode == "delta", max_message_bytes=64 * 1024 * 1024)
    try:
        padded = node()
        padded.metadata.update({"padding": "y" * (12 * 1024 * 1024)})
        raw.send(_first_request(mode, CLUSTER, node=padded))
        response = raw.receive()
        assert response.ByteSize() > 12 * 1024 * 1024
    finally:
        raw.close()


def test_graceful_shutdown_ends_streams_cleanly(
    xds: ServerThread, envoys: EnvoyFactory, backends: BackendFactory, mode: str, ports: PortReservations
) -> None:
    port = ports.reserve()
    xds.cache.set_snapshot(
        http_route_snapshot(generation="kept", port=port, backend_port=backends("kept").port)
    )
    envoy = envoys()
    envoy.wait_ready()
    raw = RawStream(port=xds.port, delta=mode == "delta")
    try:
        raw.send(_first_request(mode, LISTENER, node=node()))
        raw.receive()
        xds.run(xds.server.stop(grace_seconds=30))
        assert raw.finish() == grpc.StatusCode.OK
    finally:
        raw.close()
    assert xds.server.stream_count == 0
    assert _connected(xds, mode) == 0
    wait_until(
        lambda: (
            envoy.stats(filter_regex="control_plane.connected_state")["control_plane.connected_state"] == 0
        )
    )
    # Envoy keeps serving what it has.
    wait_for_backend(port, "kept")


def test_malformed_requests_fail_only_their_stream(
    xds: ServerThread, envoys: EnvoyFactory, backends: BackendFactory, mode: str, ports: PortReservations
) -> None:
    port = ports.reserve()
    xds.cache.set_snapshot(
        http_route_snapshot(generation="before", port=port, backend_port=backends("before").port)
    )
    envoys().wait_ready()
    wait_for_backend(port, "before")
    cases = [
        (_first_request(mode, CLUSTER), "must carry the node"),
        (_first_request(mode, "type.googleapis.com/example.Unknown", node=node()), "unknown type URL"),
        (_first_request(mode, "", node=node()), "must set type_url"),
        (b"\xff\xff\xff\xff", "malformed"),
    ]
    for request, message in cases:
        raw = RawStream(port=xds.port, delta=mode == "delta")
        try:
            raw.send(request)
            code, details = raw.error()
        finally:
            raw.close()
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert message in details
    errors = xds.server.metrics.get_sample_value("xds_stream_errors_total", {"code": "INVALID_ARGUMENT"})
    assert errors == len(cases)
    # The server and the real proxy's stream carry on.
    new_port = ports.reserve()
    xds.cache.set_snapshot(
        http_route_snapshot(generation="after", port=new_port, backend_port=backends("after").port)
    )
    wait_for_backend(new_port, "after")
    assert http_get(new_port) == (200, "after")


def test_a_started_server_gets_the_gil_back_from_busy_threads_within_a_millisecond(xds: ServerThread) -> None:
    # Its loop shares the interpreter with the threads that load, translate and plan; CPython's default lets
    # each of them keep the GIL for 5 ms whenever the loop wakes.
    assert sys.getswitchinterval() <= GIL_SWITCH_INTERVAL_SECONDS == 0.001


def test_stale_nonces_are_ignored_in_state_of_the_world(xds: ServerThread) -> None:
    xds.cache.set_snapshot(_small_snapshot())
    raw = RawStream(port=xds.port, delta=False)
    try:
        raw.send(discovery_pb2.DiscoveryRequest(type_url=CLUSTER, node=node()))
        first = raw.receive()
        raw.send(
            discovery_pb2.DiscoveryRequest(
                type_url=CLUSTER, version_info=first.version_info, response_nonce=first.nonce
            )
        )
        xds.cache.set_snapshot(_small_snapshot(2))
        second = raw.receive()
        # A NACK of the first response arrives after the second was sent: stale, ignored.
        stale = discovery_pb2.DiscoveryRequest(type_url=CLUSTER, response_nonce=first.nonce)
        stale.error_detail.message = "too late"
        raw.send(stale)
        raw.send(
            discovery_pb2.DiscoveryRequest(
                type_url=CLUSTER, version_info=second.version_info, response_nonce=second.nonce
            )
        )
        wait_until(lambda: len(xds.events.all(kind="ack")) == 2, message="the ACK of the second response")
        metrics = xds.server.metrics
        assert metrics.get_sample_value("xds_stale_requests_total", {"type": "Cluster"}) == 1
        assert metrics.get_sample_value("xds_nacks_total", {"type": "Cluster", "mode": "sotw"}) is None
        # The stream is healthy: the next change arrives.
        xds.cache.set_snapshot(_small_snapshot(3))
        assert raw.receive().nonce not in {first.nonce, second.nonce}
    finally:
        raw.close()
