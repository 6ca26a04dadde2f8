"""Push discipline against a real Envoy, in both ADS variants (issue 3, point 6, and delta reconnects): at
most one response per type in flight, bursts of snapshots coalesced into few pushes of the newest one, and a
proxy reconnecting to a restarted control plane is not sent what it already holds.
"""

from __future__ import annotations

import pytest

from controlplane.netutil import PortReservations
from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import CLUSTER, LISTENER, TYPE_URLS
from controlplane.xds.server import XdsSettings
from tests import xds_builders
from tests.polling import wait_until
from tests.xds_support import (
    SERVER_DRAIN_SECONDS,
    BackendFactory,
    EnvoyFactory,
    ServerThread,
    TrafficLoop,
    http_route_snapshot,
    wait_for_backend,
)

_DEBOUNCE_SECONDS = 0.3


@pytest.fixture
def xds_settings() -> XdsSettings:
    return XdsSettings(debounce_seconds=_DEBOUNCE_SECONDS, listener_drain_seconds=SERVER_DRAIN_SECONDS)


def _tagged_cluster(tag: str) -> Snapshot:
    cluster = xds_builders.with_metadata(xds_builders.eds_cluster("tagged"), key="tag", value=tag)
    return Snapshot.from_resources(
        clusters=[cluster],
        endpoints=[xds_builders.load_assignment("tagged", socket_endpoints=[("127.0.0.1", 9)])],
    )


def test_bursts_coalesce_and_one_response_per_type_is_in_flight(
    xds: ServerThread, envoys: EnvoyFactory
) -> None:
    xds.cache.set_snapshot(_tagged_cluster("0"))
    envoy = envoys()
    envoy.wait_ready()
    pushes_before = len(xds.events.all(kind="push", type_url=CLUSTER))
    burst = [_tagged_cluster(str(index)) for index in range(1, 41)]
    for snapshot in burst:
        xds.cache.set_snapshot(snapshot)
    wait_until(lambda: xds.events.holds(burst[-1], CLUSTER), message="the last snapshot of the burst")

    pushes = xds.events.all(kind="push", type_url=CLUSTER)[pushes_before:]
    assert 1 <= len(pushes) <= len(burst) // 4
    assert dict(pushes[-1].resources) == {"tagged": burst[-1].get(CLUSTER)["tagged"].version}
    (active,) = [
        item["cluster"]
        for item in envoy.config_dump(resource="dynamic_active_clusters")["configs"]
        if item["cluster"]["name"] == "tagged"
    ]
    assert active["metadata"]["filter_metadata"]["controlplane"] == {"tag": "40"}
    for type_url in TYPE_URLS:
        in_flight = None
        for event in xds.events.all(type_url=type_url):
            if event.kind == "push":
                assert in_flight is None, f"two {type_url} responses in flight"
                in_flight = event.nonce
            else:
                assert event.nonce == in_flight
                in_flight = None


def test_reconnecting_to_a_restarted_control_plane(
    xds: ServerThread,
    envoys: EnvoyFactory,
    backends: BackendFactory,
    mode: str,
    xds_settings: XdsSettings,
    ports: PortReservations,
) -> None:
    """Traffic flows while the control plane restarts; in delta mode nothing Envoy holds is sent again."""
    port = ports.reserve()
    snapshot = http_route_snapshot(generation="steady", port=port, backend_port=backends("steady").port)
    xds.cache.set_snapshot(snapshot)
    envoy = envoys()
    envoy.wait_ready()
    wait_for_backend(port, "steady")
    modified = "cluster_manager.cluster_modified", "listener_manager.listener_modified"
    before = {name: envoy.stats()[name] for name in modified}
    with TrafficLoop(port) as traffic:
        xds.close()
        restarted = ServerThread(xds_settings, port=xds.port)
        try:
            restarted.cache.set_snapshot(snapshot)
            wait_until(lambda: restarted.events.all(kind="ack", type_url=LISTENER), message="the reconnect")
            wait_until(lambda: traffic.total() > 100, message="traffic after the reconnect")
            pushed = [name for event in restarted.events.all(kind="push") for name, _ in event.resources]
        finally:
            restarted.close()
    assert traffic.failures == []
    assert {name: envoy.stats()[name] for name in modified} == before
    if mode == "delta":
        assert pushed == []
