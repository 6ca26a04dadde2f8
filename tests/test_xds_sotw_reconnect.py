"""What a state-of-the-world proxy reports holding when it (re)connects (``version_info`` on the first request
of a type) decides what the server takes it to hold, rule by rule, over a real gRPC stream and read back
through proxy status (before any ACK): the snapshot's version of the type is taken as the whole type held (a
by-name type: of the names asked for that exist), any other version as nothing known. Either way the
request is answered with everything the proxy should hold. Small reports are read on the event loop, large
ones in a worker thread: both paths are run.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from envoy.service.discovery.v3 import discovery_pb2

from controlplane._proto import proxy_status_pb2
from controlplane.xds.cache import Snapshot
from controlplane.xds.content import content_version
from controlplane.xds.resource import CLUSTER, ENDPOINT, MESSAGE_CLASSES, resource_name
from controlplane.xds.server import proxy_status, thread_work
from tests import xds_builders
from tests.xds_support import RawStream, ServerThread, node

_NAMES = ("first", "second", "third")


@pytest.fixture(params=["on the loop", "in a thread"])
def read_in(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the server reads a proxy's report: "in a thread", every one counts as large."""
    if request.param == "in a thread":
        monkeypatch.setattr(thread_work, "ITEMS_WORTH_A_THREAD", 0)
    value: str = request.param
    return value


def _snapshot() -> Snapshot:
    return Snapshot.from_resources(
        clusters=[xds_builders.eds_cluster(name) for name in _NAMES],
        endpoints=[
            xds_builders.load_assignment(name, socket_endpoints=[("127.0.0.1", 9)]) for name in _NAMES
        ],
    )


def _held_as_status_says(xds: ServerThread) -> dict[str, tuple[str, int]]:
    """Per type (short name): the version and number of resources proxy status says the proxy holds."""
    with grpc.insecure_channel(f"127.0.0.1:{xds.port}") as channel:
        call = channel.unary_unary(
            proxy_status.LIST_PROXIES,
            request_serializer=proxy_status_pb2.ListProxiesRequest.SerializeToString,
            response_deserializer=proxy_status_pb2.ListProxiesResponse.FromString,
        )
        (proxy,) = call(proxy_status_pb2.ListProxiesRequest(), timeout=10).proxies
    return {
        status.type_url.rsplit(".", 1)[-1]: (status.acked_version, status.acked_resources)
        for status in proxy.types
    }


def _sent(response: Any) -> list[str]:
    """The names of the resources a response carries."""
    message_class = MESSAGE_CLASSES[response.type_url]
    return sorted(
        resource_name(response.type_url, message_class.FromString(item.value)) for item in response.resources
    )


def _reconnect(xds: ServerThread, *, clusters_version: str, endpoints_version: str, asked: list[str]) -> Any:
    """Reconnect reporting these versions, asking for the load assignments ``asked``; no ACK is sent.
    Returns the two responses and what proxy status then says the proxy holds."""
    raw = RawStream(port=xds.port, delta=False)
    try:
        raw.send(
            discovery_pb2.DiscoveryRequest(
                node=node("reconnecting"), type_url=CLUSTER, version_info=clusters_version
            )
        )
        cluster_response = raw.receive()
        raw.send(
            discovery_pb2.DiscoveryRequest(
                type_url=ENDPOINT, resource_names=asked, version_info=endpoints_version
            )
        )
        endpoint_response = raw.receive()
        return cluster_response, endpoint_response, _held_as_status_says(xds)
    finally:
        raw.close()


def test_the_served_version_reported_is_taken_as_held(xds: ServerThread, read_in: str) -> None:
    snapshot = _snapshot()
    xds.cache.set_snapshot(snapshot)
    clusters, endpoints = snapshot.get(CLUSTER), snapshot.get(ENDPOINT)
    asked = {name: endpoints[name] for name in ("first", "third")}
    cluster_response, endpoint_response, held = _reconnect(
        xds,
        clusters_version=content_version(clusters),
        endpoints_version=content_version(asked),
        # A name the snapshot lacks is not part of what the proxy can hold.
        asked=["first", "third", "missing"],
    )
    assert held["Cluster"] == (content_version(clusters), 3)
    assert held["ClusterLoadAssignment"] == (content_version(asked), 2)
    # The first request of a type is answered all the same, with the version the proxy holds.
    assert (_sent(cluster_response), cluster_response.version_info) == (
        sorted(_NAMES),
        content_version(clusters),
    )
    assert (_sent(endpoint_response), endpoint_response.version_info) == (
        ["first", "third"],
        content_version(asked),
    )


def test_any_other_version_reported_leaves_what_is_held_unknown(xds: ServerThread, read_in: str) -> None:
    snapshot = _snapshot()
    xds.cache.set_snapshot(snapshot)
    clusters, endpoints = snapshot.get(CLUSTER), snapshot.get(ENDPOINT)
    cluster_response, endpoint_response, held = _reconnect(
        xds,
        clusters_version="a-version-of-another-control-plane",
        # The version of every load assignment, while the proxy asks for two of them only.
        endpoints_version=content_version(endpoints),
        asked=["first", "third"],
    )
    assert held["Cluster"] == ("", 0)
    assert held["ClusterLoadAssignment"] == ("", 0)
    assert (_sent(cluster_response), cluster_response.version_info) == (
        sorted(_NAMES),
        content_version(clusters),
    )
    assert _sent(endpoint_response) == ["first", "third"]
