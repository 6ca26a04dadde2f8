"""Changing configuration under a real Envoy, in both ADS variants (issue 3, points 2 and 5): a refused
version is counted, not sent again, and Envoy keeps serving its last good config; renaming every listener,
route and cluster three times in a row while clients send requests fails none of them.
"""

from __future__ import annotations

import pytest

from controlplane.netutil import PortReservations
from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE
from tests import xds_builders
from tests.polling import wait_until
from tests.xds_support import (
    BackendFactory,
    EnvoyFactory,
    ServerThread,
    TrafficLoop,
    http_get,
    http_route_snapshot,
    refused_by_envoy,
    replace_cluster,
    wait_for_backend,
)


def _nacks(xds: ServerThread, mode: str) -> float:
    value = xds.server.metrics.get_sample_value("xds_nacks_total", {"type": "Cluster", "mode": mode})
    return value or 0.0


def test_refused_version_is_counted_not_resent_and_last_good_config_serves(
    xds: ServerThread, envoys: EnvoyFactory, backends: BackendFactory, mode: str, ports: PortReservations
) -> None:
    port = ports.reserve()
    good = http_route_snapshot(generation="good", port=port, backend_port=backends("good").port)
    xds.cache.set_snapshot(good)
    envoy = envoys()
    envoy.wait_ready()
    wait_for_backend(port, "good")

    cluster = good.get(CLUSTER)["front-good"].message
    refused = replace_cluster(good, refused_by_envoy(cluster))
    xds.cache.set_snapshot(refused)
    nack = wait_until(lambda: xds.events.all(kind="nack", type_url=CLUSTER), message="the NACK")[0]
    assert "example.unknown" in nack.error
    assert _nacks(xds, mode) == 1
    assert http_get(port) == (200, "good")
    (active,) = [
        item["cluster"]
        for item in envoy.config_dump(resource="dynamic_active_clusters")["configs"]
        if item["cluster"]["name"] == "front-good"
    ]
    assert "typed_extension_protocol_options" not in active

    # An unrelated change makes every stream plan again: the refused cluster is not part of any push.
    cluster_pushes = len(xds.events.all(kind="push", type_url=CLUSTER))
    more = http_route_snapshot(generation="more", port=ports.reserve(), backend_port=backends("more").port)
    unrelated = Snapshot.from_resources(
        {
            t: [r.message for s in (refused, more) for r in s.get(t).values()]
            for t in (CLUSTER, ENDPOINT, LISTENER, ROUTE)
        }
    )
    xds.cache.set_snapshot(unrelated)
    wait_until(lambda: xds.events.holds(unrelated, LISTENER), message="the unrelated listener")
    pushed_clusters = [
        dict(event.resources) for event in xds.events.all(kind="push", type_url=CLUSTER)[cluster_pushes:]
    ]
    refused_version = refused.get(CLUSTER)["front-good"].version
    assert all(pushed.get("front-good") != refused_version for pushed in pushed_clusters)
    assert _nacks(xds, mode) == 1
    assert http_get(port) == (200, "good")

    # A new version of the refused cluster is sent.
    fixed = replace_cluster(unrelated, xds_builders.eds_cluster("front-good", connect_timeout_seconds=3))
    xds.cache.set_snapshot(fixed)
    wait_until(lambda: xds.events.holds(fixed, CLUSTER), message="the fixed cluster")
    assert _nacks(xds, mode) == 1
    assert http_get(port) == (200, "good")


@pytest.mark.parametrize("internal_hop", [False, True], ids=["direct", "internal-hop"])
def test_renaming_everything_three_times_fails_no_request(
    xds: ServerThread,
    envoys: EnvoyFactory,
    backends: BackendFactory,
    internal_hop: bool,
    ports: PortReservations,
) -> None:
    port = ports.reserve()
    generations = [
        http_route_snapshot(
            generation=f"gen{index}",
            port=port,
            backend_port=backends(f"gen{index}").port,
            internal_hop=internal_hop,
        )
        for index in range(4)
    ]
    xds.cache.set_snapshot(generations[0])
    envoy = envoys()
    envoy.wait_ready()
    wait_for_backend(port, "gen0")
    with TrafficLoop(port) as traffic:
        wait_until(lambda: traffic.answers["gen0"] > 0, message="traffic to the first generation")
        for index, snapshot in enumerate(generations[1:], start=1):
            xds.cache.set_snapshot(snapshot)
            name = f"gen{index}"
            wait_until(lambda: traffic.answers[name] > 0, message=f"traffic to {name}")  # noqa: B023
        # Old listeners drain, then what only they used goes: keep the clients busy until it has.
        last = generations[-1]
        wait_until(
            lambda: all(xds.events.holds(last, type_url) for type_url in (LISTENER, CLUSTER)),
            message="the old generations to be removed",
        )
    assert traffic.failures == []
    assert set(traffic.answers) == {f"gen{index}" for index in range(4)}
    active = envoy.config_dump(resource="dynamic_active_clusters")["configs"]
    assert sorted(item["cluster"]["name"] for item in active) == sorted(last.get(CLUSTER))
