"""The make-before-break planner on its own: what a stream sends next given what Envoy holds."""

from __future__ import annotations

from collections.abc import Iterable

from controlplane.xds.cache import Snapshot
from controlplane.xds.content import XdsResource
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE
from controlplane.xds.server.stream_state import StreamState
from controlplane.xds.server.type_state import InFlight
from tests import xds_builders

PORT = 10000


def _snapshot(*, generation: str, inline: bool = False) -> Snapshot:
    cluster = f"cluster-{generation}"
    routes = xds_builders.route_configuration(f"routes-{generation}", routes=[("/", cluster)])
    listener = (
        xds_builders.http_listener(f"listener-{generation}", port=PORT, route_config=routes)
        if inline
        else xds_builders.http_listener(f"listener-{generation}", port=PORT, rds_name=f"routes-{generation}")
    )
    return Snapshot.from_resources(
        listeners=[listener],
        routes=[] if inline else [routes],
        clusters=[xds_builders.eds_cluster(cluster)],
        endpoints=[xds_builders.load_assignment(cluster, socket_endpoints=[("127.0.0.1", 9)])],
    )


def _hold(state: StreamState, snapshot: Snapshot) -> None:
    """Make the stream believe Envoy ACKed all of `snapshot` and subscribes to all its names."""
    for type_url, typed in state.types.items():
        typed.subscribed = True
        typed.last_nonce = "0"  # what it holds came in responses
        typed.names.update(snapshot.get(type_url))
        typed.acked.update(snapshot.get(type_url))


def _names(target: dict[str, XdsResource] | None) -> list[str]:
    assert target is not None
    return sorted(target)


def _in_flight(resources: Iterable[XdsResource], sequence: int) -> InFlight:
    return InFlight(
        nonce=str(sequence), sequence=sequence, sent={r.name: r for r in resources}, removed=(), sent_at=0.0
    )


def test_new_route_waits_for_its_cluster_and_its_endpoints() -> None:
    old, new = _snapshot(generation="a"), _snapshot(generation="b")
    merged = Snapshot.from_resources(
        listeners=[*(r.message for r in old.get(LISTENER).values())],
        routes=[*(r.message for r in new.get(ROUTE).values())],
        clusters=[r.message for s in (old, new) for r in s.get(CLUSTER).values()],
        endpoints=[r.message for s in (old, new) for r in s.get(ENDPOINT).values()],
    )
    state = StreamState()
    _hold(state, old)
    state.types[ROUTE].names.add("routes-b")
    planner = state.plan(merged, now=0)
    assert _names(planner.target(CLUSTER)) == ["cluster-a", "cluster-b"]
    # routes-b waits; routes-a stays although the snapshot dropped it: listener-a still uses it.
    assert _names(planner.target(ROUTE)) == ["routes-a"]
    state.types[CLUSTER].acked.update(merged.get(CLUSTER))
    assert _names(state.plan(merged, now=0).target(ROUTE)) == ["routes-a"]  # cluster-b has no endpoints yet
    state.types[ENDPOINT].names.add("cluster-b")
    state.types[ENDPOINT].acked.update(merged.get(ENDPOINT))
    assert _names(state.plan(merged, now=0).target(ROUTE)) == ["routes-a", "routes-b"]


def test_cluster_stays_while_an_acked_route_names_it() -> None:
    old, new = _snapshot(generation="a"), _snapshot(generation="b")
    state = StreamState()
    _hold(state, old)
    assert _names(state.plan(new, now=0).target(CLUSTER)) == ["cluster-a", "cluster-b"]
    _hold(state, new)
    state.types[ROUTE].names.discard("routes-a")
    assert _names(state.plan(new, now=0).target(CLUSTER)) == ["cluster-b"]


def test_listener_on_the_same_port_replaces_the_old_one_in_one_response() -> None:
    old, new = _snapshot(generation="a", inline=True), _snapshot(generation="b", inline=True)
    state = StreamState()
    _hold(state, old)
    # listener-b needs cluster-b first: listener-a keeps the port meanwhile.
    assert _names(state.plan(new, now=0).target(LISTENER)) == ["listener-a"]
    state.types[CLUSTER].acked.update(new.get(CLUSTER))
    state.types[ENDPOINT].names.add("cluster-b")
    state.types[ENDPOINT].acked.update(new.get(ENDPOINT))
    assert _names(state.plan(new, now=0).target(LISTENER)) == ["listener-b"]


def test_listener_waits_until_its_routes_can_be_sent() -> None:
    old, new = _snapshot(generation="a"), _snapshot(generation="b")
    state = StreamState()
    _hold(state, old)
    assert _names(state.plan(new, now=0).target(LISTENER)) == ["listener-a"]


def test_what_a_draining_listener_used_stays_until_the_drain_ends() -> None:
    old, new = _snapshot(generation="a"), _snapshot(generation="b")
    state = StreamState()
    _hold(state, old)
    replacing = _in_flight(new.get(LISTENER).values(), sequence=1)
    assert state.drain_replaced_listeners(replacing, full=True, until=10.0)
    _hold(state, new)
    state.types[LISTENER].acked.pop("listener-a")
    state.types[ROUTE].names.discard("routes-a")
    assert _names(state.plan(new, now=5.0).target(CLUSTER)) == ["cluster-a", "cluster-b"]
    assert _names(state.plan(new, now=10.5).target(CLUSTER)) == ["cluster-b"]


def test_refused_versions_are_held_until_the_snapshot_changes_them() -> None:
    first, second = _snapshot(generation="a"), _snapshot(generation="b")
    state = StreamState()
    _hold(state, first)
    clusters = state.types[CLUSTER]
    refused = clusters.record_nack(
        _in_flight(second.get(CLUSTER).values(), sequence=1),
        "Error adding/updating cluster(s) cluster-b: something is wrong",
    )
    assert refused == {"cluster-b"}
    assert _names(state.plan(second, now=0).target(CLUSTER)) == ["cluster-a"]
    assert clusters.rejected
    assert _names(state.plan(first, now=0).target(CLUSTER)) == ["cluster-a"]
    assert not clusters.rejected


def test_nack_without_names_refuses_every_change() -> None:
    first, second = _snapshot(generation="a"), _snapshot(generation="b")
    state = StreamState()
    _hold(state, first)
    routes = state.types[ROUTE]
    refused = routes.record_nack(_in_flight(second.get(ROUTE).values(), sequence=1), "regex error")
    assert refused == {"routes-b"}


def test_unknown_state_holds_the_whole_type_while_dependencies_are_on_their_way() -> None:
    snapshot = _snapshot(generation="a", inline=True)
    state = StreamState()
    for typed in state.types.values():
        typed.subscribed = True
    state.types[LISTENER].known = False
    planner = state.plan(snapshot, now=0)
    assert planner.target(LISTENER) is None
    state.types[LISTENER].known = True
    # Envoy's first listener reply is the whole set or nothing yet (it reports ready on that reply).
    assert state.plan(snapshot, now=0).target(LISTENER) is None
    # Later a listener on its way is left out: Envoy serves the others meanwhile.
    state.types[LISTENER].last_nonce = "1"
    assert _names(state.plan(snapshot, now=0).target(LISTENER)) == []


def test_a_type_envoy_has_not_asked_for_is_not_waited_for() -> None:
    hop = xds_builders.http_listener("hop", route_config=xds_builders.route_configuration("hop", routes=[]))
    snapshot = Snapshot.from_resources(
        listeners=[hop],
        clusters=[xds_builders.eds_cluster("front")],
        endpoints=[xds_builders.load_assignment("front", internal_listeners=["hop"])],
    )
    state = StreamState()
    state.types[CLUSTER].subscribed = True
    state.types[ENDPOINT].subscribed = True
    state.types[ENDPOINT].names.add("front")
    # At start-up Envoy asks for listeners only once its clusters are warm.
    assert _names(state.plan(snapshot, now=0).target(ENDPOINT)) == ["front"]
    state.types[LISTENER].subscribed = True
    assert _names(state.plan(snapshot, now=0).target(ENDPOINT)) == []


def test_a_cluster_in_an_unacked_cds_response_is_in_once_its_endpoints_are() -> None:
    snapshot = _snapshot(generation="a")
    state = StreamState()
    _hold(state, snapshot)
    state.types[ROUTE].acked.clear()
    clusters = state.types[CLUSTER]
    clusters.acked.clear()
    clusters.in_flight = _in_flight(snapshot.get(CLUSTER).values(), sequence=3)
    # Envoy holds back the CDS ACK while clusters warm, but it asked for and ACKed the endpoints.
    assert _names(state.plan(snapshot, now=0).target(ROUTE)) == ["routes-a"]
    state.types[ENDPOINT].acked.clear()
    assert _names(state.plan(snapshot, now=0).target(ROUTE)) == []
