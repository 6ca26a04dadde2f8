"""Snapshot construction, consistency checks, node-group fallback and watchers."""

from __future__ import annotations

import re

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from controlplane.xds.cache import InconsistentSnapshotError, Snapshot, SnapshotCache
from controlplane.xds.content import XdsResource
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE
from tests import xds_builders


def _snapshot(cluster: str = "c1", *, route_to: str | None = None, with_endpoints: bool = True) -> Snapshot:
    return Snapshot.from_resources(
        listeners=[xds_builders.http_listener("l1", port=10000, rds_name="r1")],
        routes=[xds_builders.route_configuration("r1", routes=[("/", route_to or cluster)])],
        clusters=[xds_builders.eds_cluster(cluster)],
        endpoints=[xds_builders.load_assignment(cluster, socket_endpoints=[("127.0.0.1", 9)])]
        if with_endpoints
        else [],
    )


def test_versions_follow_content() -> None:
    assert _snapshot().version == _snapshot().version
    assert _snapshot().version != _snapshot("c2").version
    assert _snapshot().type_versions[CLUSTER] != _snapshot("c2").type_versions[CLUSTER]
    assert list(_snapshot().get(CLUSTER)) == ["c1"]


def test_mapping_form_equals_keyword_form() -> None:
    by_type = Snapshot.from_resources(
        {
            CLUSTER: [xds_builders.eds_cluster("c1")],
            ENDPOINT: [xds_builders.load_assignment("c1", socket_endpoints=[("127.0.0.1", 9)])],
            ROUTE: [xds_builders.route_configuration("r1", routes=[("/", "c1")])],
        },
        listeners=[xds_builders.http_listener("l1", port=10000, rds_name="r1")],
    )
    assert by_type.version == _snapshot().version


def test_bad_input_to_snapshot() -> None:
    with pytest.raises(ValueError, match="two Cluster resources named 'c'"):
        Snapshot.from_resources(clusters=[xds_builders.eds_cluster("c"), xds_builders.eds_cluster("c")])
    with pytest.raises(ValueError, match="unsupported type URL"):
        Snapshot.from_resources({"type.googleapis.com/x.Y": []})
    with pytest.raises(TypeError, match="needs Cluster"):
        Snapshot.from_resources(clusters=[secret_pb2.Secret(name="s")])
    with pytest.raises(ValueError, match="without a name"):
        Snapshot.from_resources(clusters=[cluster_pb2.Cluster()])


def test_a_resource_given_under_another_type_url_is_refused_naming_it_and_both_types() -> None:
    cluster = XdsResource.build(CLUSTER, xds_builders.eds_cluster("c"))
    endpoints = XdsResource.build(ENDPOINT, xds_builders.load_assignment("c"))
    mislabelled = f"resource 'c' of type {ENDPOINT} given under type {CLUSTER}"
    with pytest.raises(ValueError, match=re.escape(mislabelled)):
        Snapshot.from_built({CLUSTER: [endpoints]})
    # Also when it replaces a resource of the same name in place of the previous snapshot's.
    previous = Snapshot.from_built({CLUSTER: [cluster], ENDPOINT: [endpoints]})
    with pytest.raises(ValueError, match=re.escape(mislabelled)):
        Snapshot.from_built({CLUSTER: [endpoints], ENDPOINT: [endpoints]}, previous=previous)


def test_inconsistent_snapshots_are_refused_and_the_previous_kept() -> None:
    cache = SnapshotCache()
    good = _snapshot()
    cache.set_snapshot(good)
    with pytest.raises(
        InconsistentSnapshotError, match="RouteConfiguration 'r1' names Cluster 'missing'"
    ) as info:
        cache.set_snapshot(_snapshot(route_to="missing"))
    assert "not in it" in info.value.reason
    with pytest.raises(InconsistentSnapshotError, match="EDS Cluster 'c1' has no load assignment 'c1'"):
        cache.set_snapshot(_snapshot(with_endpoints=False))
    not_internal = Snapshot.from_resources(
        listeners=[xds_builders.http_listener("public", port=10001, rds_name="r")],
        clusters=[xds_builders.eds_cluster("c")],
        endpoints=[xds_builders.load_assignment("c", internal_listeners=["public"])],
    )
    with pytest.raises(InconsistentSnapshotError, match="targets Listener 'public', not internal"):
        cache.set_snapshot(not_internal)
    assert cache.get_snapshot() is good


def test_a_snapshot_built_from_the_previous_one_is_checked_as_if_from_scratch() -> None:
    """``from_built`` with ``previous`` re-checks only the replaced resources and adjusts the versions by
    them; the findings and versions must be a full build's, whether a replacement breaks a reference, mends
    it, or adds a name (a full check then)."""

    def built(*, route_to: str, clusters: tuple[str, ...] = ("c1", "c2")) -> dict[str, list[XdsResource]]:
        return {
            LISTENER: [XdsResource.build(LISTENER, xds_builders.http_listener("l1", port=1, rds_name="r1"))],
            ROUTE: [
                XdsResource.build(ROUTE, xds_builders.route_configuration("r1", routes=[("/", route_to)]))
            ],
            CLUSTER: [XdsResource.build(CLUSTER, xds_builders.eds_cluster(name)) for name in clusters],
            ENDPOINT: [
                XdsResource.build(
                    ENDPOINT, xds_builders.load_assignment("c1", socket_endpoints=[("127.0.0.1", 9)])
                )
            ],
        }

    previous = Snapshot.from_built(built(route_to="c1"))
    assert previous.consistency_problems() == ["EDS Cluster 'c2' has no load assignment 'c2'"]
    for step, same_names in (
        (built(route_to="missing"), True),
        (built(route_to="c1"), True),
        (built(route_to="c1", clusters=("c1",)), False),
        (built(route_to="c2", clusters=("c1",)), True),
    ):
        given = {type_url: list(previous.given[type_url]) for type_url in previous.given}
        for type_url, resources in step.items():
            # Unchanged resources stay the very same objects, as the translator hands them over.
            kept = {resource.name: resource for resource in given[type_url]}
            given[type_url] = [
                kept[r.name] if r.name in kept and kept[r.name].version == r.version else r for r in resources
            ]
        snapshot = Snapshot.from_built(given, previous=previous)
        assert (snapshot.since is not None) == same_names  # only then is the check incremental
        scratch = Snapshot.from_built(step)
        assert snapshot.consistency_problems() == scratch.consistency_problems()
        assert dict(snapshot.type_versions) == dict(scratch.type_versions)
        assert snapshot.version == scratch.version
        previous = snapshot
    assert previous.consistency_problems() == [
        "RouteConfiguration 'r1' names Cluster 'c2', which is not in it"
    ]


def test_a_snapshot_says_which_names_were_replaced_since_a_recent_one() -> None:
    def clusters(timeouts: dict[str, float]) -> dict[str, list[XdsResource]]:
        return {
            CLUSTER: [
                XdsResource.build(CLUSTER, xds_builders.eds_cluster(name, connect_timeout_seconds=seconds))
                for name, seconds in sorted(timeouts.items())
            ]
        }

    timeouts = {f"c{index}": 1.0 for index in range(8)}
    first = Snapshot.from_built(clusters(timeouts))
    snapshots = [first]
    for changed in ("c1", "c5", "c1"):
        timeouts[changed] += 1.0
        snapshots.append(Snapshot.from_built(clusters(timeouts), previous=snapshots[-1]))
    latest = snapshots[-1]
    assert latest.replaced_since(CLUSTER, latest.get(CLUSTER)) == frozenset()
    assert latest.replaced_since(CLUSTER, snapshots[-2].get(CLUSTER)) == frozenset({"c1"})
    assert latest.replaced_since(CLUSTER, first.get(CLUSTER)) == frozenset({"c1", "c5"})
    # A type left alone keeps its mapping; one whose names change starts a new lineage.
    assert latest.replaced_since(ENDPOINT, first.get(ENDPOINT)) == frozenset()
    timeouts["c8"] = 1.0
    grown = Snapshot.from_built(clusters(timeouts), previous=latest)
    assert grown.replaced_since(CLUSTER, latest.get(CLUSTER)) is None
    assert grown.replaced_since(CLUSTER, Snapshot.from_built(clusters(timeouts)).get(CLUSTER)) is None


def test_listener_naming_a_route_config_that_does_not_exist_yet_is_allowed() -> None:
    cache = SnapshotCache()
    snapshot = Snapshot.from_resources(listeners=[xds_builders.http_listener("l", port=1, rds_name="later")])
    cache.set_snapshot(snapshot)
    assert cache.get_snapshot() is snapshot


def test_node_group_fallback() -> None:
    cache = SnapshotCache()
    assert cache.for_node(node_id="n1", node_cluster="edge").snapshot is None
    default, by_cluster, by_node = _snapshot("c1"), _snapshot("c2"), _snapshot("c3")
    cache.set_snapshot(default)
    assert cache.for_node(node_id="n1", node_cluster="edge").snapshot is default
    cache.set_snapshot(by_cluster, group="edge")
    assert cache.for_node(node_id="n1", node_cluster="edge").snapshot is by_cluster
    assert cache.for_node(node_id="n1", node_cluster="other").snapshot is default
    cache.set_snapshot(by_node, group="n1")
    found = cache.for_node(node_id="n1", node_cluster="edge")
    assert (found.group, found.snapshot) == ("n1", by_node)
    cache.clear_snapshot("n1")
    assert cache.for_node(node_id="n1", node_cluster="edge").snapshot is by_cluster


def test_watchers_are_woken_on_change_only() -> None:
    cache = SnapshotCache()
    woken: list[str | None] = []
    unwatch = cache.watch(woken.append)
    cache.set_snapshot(_snapshot())
    cache.set_snapshot(_snapshot())  # same content: nothing to tell
    cache.set_snapshot(_snapshot("c2"), group="edge")
    with pytest.raises(InconsistentSnapshotError):
        cache.set_snapshot(_snapshot(route_to="missing"))
    cache.clear_snapshot("edge")
    cache.clear_snapshot("never-set")
    assert woken == [None, "edge", "edge"]
    assert cache.watcher_count == 1
    unwatch()
    cache.set_snapshot(_snapshot("c3"))
    assert woken == [None, "edge", "edge"]
    assert cache.watcher_count == 0
