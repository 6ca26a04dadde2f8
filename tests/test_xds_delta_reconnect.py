"""What a Delta proxy reports holding when it (re)connects (``initial_resource_versions``) decides what it is
sent, rule by rule, over a real gRPC stream: a resource held at the snapshot's version is not sent again, one
held at another version is, a held name the snapshot lacks is reported removed, a by-name type counts only
the names the proxy subscribes to (a later subscription to another reported name gets it sent), and an EDS
cluster sent again gets its load assignment again (Envoy re-creates the cluster, which warms until it comes).
Small reports and plans are handled on the event loop, large ones in a worker thread: both paths are run.
"""

from __future__ import annotations

from typing import Any

import pytest
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import CLUSTER, ENDPOINT
from controlplane.xds.server import thread_work
from tests import xds_builders
from tests.xds_support import RawStream, ServerThread, node


@pytest.fixture(params=["on the loop", "in a thread"])
def read_in(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the server reads a proxy's report and plans its answers: "in a thread", every one counts as
    large."""
    if request.param == "in a thread":
        monkeypatch.setattr(thread_work, "ITEMS_WORTH_A_THREAD", 0)
    value: str = request.param
    return value


def _snapshot() -> Snapshot:
    names = ("kept", "stale", "unasked", "updated-cluster")
    return Snapshot.from_resources(
        clusters=[xds_builders.eds_cluster(name) for name in names],
        endpoints=[xds_builders.load_assignment(name, socket_endpoints=[("127.0.0.1", 9)]) for name in names],
    )


def _sent(response: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """(name, version) of each resource a response carries, and the names it removes."""
    return [(item.name, item.version) for item in response.resources], list(response.removed_resources)


def _ack(response: Any) -> discovery_pb2.DeltaDiscoveryRequest:
    return discovery_pb2.DeltaDiscoveryRequest(type_url=response.type_url, response_nonce=response.nonce)


def test_a_reconnecting_proxy_is_sent_only_what_it_lacks(xds: ServerThread, read_in: str) -> None:
    snapshot = _snapshot()
    xds.cache.set_snapshot(snapshot)
    clusters, endpoints = snapshot.get(CLUSTER), snapshot.get(ENDPOINT)
    raw = RawStream(port=xds.port, delta=True)
    try:
        raw.send(
            discovery_pb2.DeltaDiscoveryRequest(
                node=node("reconnecting"),
                type_url=CLUSTER,
                initial_resource_versions={
                    "kept": clusters["kept"].version,
                    "stale": "an-older-version",
                    "updated-cluster": "an-older-version",
                    "unasked": clusters["unasked"].version,
                    "gone": "a-version-of-a-removed-cluster",
                },
            )
        )
        cluster_response = raw.receive()
        raw.send(_ack(cluster_response))
        raw.send(
            discovery_pb2.DeltaDiscoveryRequest(
                type_url=ENDPOINT,
                resource_names_subscribe=["kept", "stale", "gone", "new", "updated-cluster"],
                initial_resource_versions={
                    "kept": endpoints["kept"].version,
                    "updated-cluster": endpoints["updated-cluster"].version,
                    "stale": "an-older-version",
                    "gone": "a-version-of-a-removed-assignment",
                    # Not subscribed to: what the proxy says it holds of it is not taken as held.
                    "unasked": endpoints["unasked"].version,
                },
            )
        )
        endpoint_response = raw.receive()
        raw.send(_ack(endpoint_response))
        raw.send(discovery_pb2.DeltaDiscoveryRequest(type_url=ENDPOINT, resource_names_subscribe=["unasked"]))
        subscribed_later = raw.receive()
    finally:
        raw.close()

    assert _sent(cluster_response) == (
        [("stale", clusters["stale"].version), ("updated-cluster", clusters["updated-cluster"].version)],
        ["gone"],
    )
    assert _sent(endpoint_response) == (
        [("stale", endpoints["stale"].version), ("updated-cluster", endpoints["updated-cluster"].version)],
        ["gone"],
    )
    assert _sent(subscribed_later) == ([("unasked", endpoints["unasked"].version)], [])


def test_a_proxy_holding_everything_is_answered_with_an_empty_response(
    xds: ServerThread, read_in: str
) -> None:
    """Nothing to send still gets an answer: Envoy waits for one per type before it counts itself ready."""
    snapshot = _snapshot()
    xds.cache.set_snapshot(snapshot)
    held = {name: resource.version for name, resource in snapshot.get(CLUSTER).items()}
    raw = RawStream(port=xds.port, delta=True)
    try:
        raw.send(
            discovery_pb2.DeltaDiscoveryRequest(
                node=node("reconnecting"), type_url=CLUSTER, initial_resource_versions=held
            )
        )
        response = raw.receive()
    finally:
        raw.close()
    assert _sent(response) == ([], [])
    assert response.nonce
