"""A real Envoy converges on what the server serves, in both ADS variants (issue 3, points 1, 3 and 4):
node identity and group fallback, wildcard LDS/CDS, RDS/EDS/SDS by name (also names asked for before they
exist), and state-of-the-world full sets versus delta diffs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.devtools.certs import generate_dev_certs
from controlplane.netutil import PortReservations
from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, resource_name
from controlplane.xds.translator.messages import ads_source
from tests import xds_builders
from tests.polling import wait_until
from tests.xds_support import (
    BackendFactory,
    EnvoyFactory,
    RawStream,
    ServerThread,
    http_route_snapshot,
    node,
    wait_for_backend,
)


def _active_clusters(envoy_dump: dict[str, object]) -> list[str]:
    configs = envoy_dump.get("configs", [])
    assert isinstance(configs, list)
    return sorted(item["cluster"]["name"] for item in configs if item["cluster"]["name"] != "xds_cluster")


def test_node_identity_picks_the_group(
    xds: ServerThread, envoys: EnvoyFactory, backends: BackendFactory, mode: str, ports: PortReservations
) -> None:
    """Group by node id, then node cluster, then the default; Envoy sends its node only once."""
    groups = {None: "default", "edge": "by-cluster", "gateway-7": "by-node"}
    listener_ports = {}
    for group, name in groups.items():
        listener_ports[name] = ports.reserve()
        snapshot = http_route_snapshot(
            generation=name, port=listener_ports[name], backend_port=backends(name).port
        )
        xds.cache.set_snapshot(snapshot, group=group)
    by_node = envoys(node_id="gateway-7", cluster="edge")
    by_cluster = envoys(node_id="gateway-8", cluster="edge")
    default = envoys(node_id="gateway-9", cluster="unknown")
    for envoy, name in ((by_node, "by-node"), (by_cluster, "by-cluster"), (default, "default")):
        envoy.wait_ready()
        wait_for_backend(listener_ports[name], name)
    assert {event.node_id for event in xds.events.all(kind="ack")} == {"gateway-7", "gateway-8", "gateway-9"}
    # A later snapshot for a group reaches exactly its proxies.
    updated = http_route_snapshot(
        generation="by-cluster-2", port=ports.reserve(), backend_port=backends("v2").port
    )
    xds.cache.set_snapshot(updated, group="edge")
    wait_until(lambda: xds.events.holds(updated, LISTENER, "gateway-8"), message="edge group update")
    assert not xds.events.holds(updated, LISTENER, "gateway-7")


def test_names_requested_before_they_exist_are_sent_when_they_appear(
    xds: ServerThread, envoys: EnvoyFactory, backends: BackendFactory, ports: PortReservations
) -> None:
    port, backend = ports.reserve(), backends("late")
    complete = http_route_snapshot(generation="late", port=port, backend_port=backend.port)
    without_routes = Snapshot.from_resources(
        {
            type_url: [r.message for r in complete.get(type_url).values()]
            for type_url in (LISTENER, CLUSTER, ENDPOINT)
        }
    )
    xds.cache.set_snapshot(without_routes)
    envoy = envoys()
    envoy.wait_ready(live=False)
    # The listener asked for its route configuration by name, which does not exist yet: Envoy waits.
    rds_stats = "http.listener-late.rds.routes-late."
    wait_until(
        lambda: envoy.stats(filter_regex=rds_stats).get(rds_stats + "update_attempt"), message="RDS request"
    )
    assert envoy.stats(filter_regex=rds_stats)[rds_stats + "update_success"] == 0
    assert envoy.server_state() == "INITIALIZING"
    assert xds.events.acked(ROUTE) == {}
    xds.cache.set_snapshot(complete)
    envoy.wait_ready()
    wait_for_backend(port, "late")
    # Envoy serves before its ACK reaches the server: wait for the ACKs rather than assume them.
    wait_until(lambda: xds.events.holds(complete, ROUTE), message="the route configuration ACKed")
    wait_until(lambda: xds.events.holds(complete, ENDPOINT), message="the endpoints ACKed")


def test_secrets_are_served_by_name_over_ads(xds: ServerThread, envoys: EnvoyFactory, tmp_path: Path) -> None:
    """A cluster whose TLS validation context comes over SDS warms until the secret arrives."""
    ca_pem = generate_dev_certs(tmp_path).ca_file.read_text(encoding="utf-8")
    cluster = xds_builders.eds_cluster("tls-upstream")
    context = tls_pb2.UpstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            validation_context_sds_secret_config=secret_pb2.SdsSecretConfig(
                name="upstream-ca", sds_config=ads_source()
            )
        )
    )
    cluster.transport_socket.name = "envoy.transport_sockets.tls"
    cluster.transport_socket.typed_config.Pack(context)
    secret = secret_pb2.Secret(
        name="upstream-ca",
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(inline_string=ca_pem)
        ),
    )
    snapshot = Snapshot.from_resources(
        clusters=[cluster],
        endpoints=[xds_builders.load_assignment("tls-upstream", socket_endpoints=[("127.0.0.1", 9)])],
        secrets=[secret, secret_pb2.Secret(name="not-requested")],
    )
    xds.cache.set_snapshot(snapshot)
    envoy = envoys()
    envoy.wait_ready()
    wait_until(
        lambda: xds.events.acked(SECRET) == {"upstream-ca": snapshot.get(SECRET)["upstream-ca"].version}
    )
    dump = envoy.config_dump(resource="dynamic_active_secrets")
    assert [item["name"] for item in dump["configs"]] == ["upstream-ca"]
    assert _active_clusters(envoy.config_dump(resource="dynamic_active_clusters")) == ["tls-upstream"]


def test_full_sets_in_sotw_and_diffs_in_delta(xds: ServerThread, envoys: EnvoyFactory, mode: str) -> None:
    def clusters(*specs: tuple[str, float]) -> Snapshot:
        return Snapshot.from_resources(
            clusters=[
                xds_builders.eds_cluster(name, connect_timeout_seconds=timeout) for name, timeout in specs
            ],
            endpoints=[
                xds_builders.load_assignment(name, socket_endpoints=[("127.0.0.1", 9)]) for name, _ in specs
            ],
        )

    first = clusters(("kept", 1), ("changed", 1), ("dropped", 1))
    xds.cache.set_snapshot(first)
    envoy = envoys()
    envoy.wait_ready()
    wait_until(lambda: xds.events.holds(first, CLUSTER) and xds.events.holds(first, ENDPOINT))
    pushes_before = len(xds.events.all(kind="push", type_url=CLUSTER))
    second = clusters(("kept", 1), ("changed", 2), ("added", 1))
    xds.cache.set_snapshot(second)
    wait_until(lambda: xds.events.holds(second, CLUSTER), message="the second cluster set")
    push = xds.events.all(kind="push", type_url=CLUSTER)[pushes_before]
    if mode == "sotw":
        assert sorted(name for name, _ in push.resources) == ["added", "changed", "kept"]
        assert push.removed == ()
    else:
        assert sorted(name for name, _ in push.resources) == ["added", "changed"]
        assert push.removed == ("dropped",)
    wait_until(
        lambda: (
            _active_clusters(envoy.config_dump(resource="dynamic_active_clusters"))
            == ["added", "changed", "kept"]
        ),
        message="Envoy to drop the omitted cluster",
    )


def test_node_is_read_from_the_first_request_only(xds: ServerThread, mode: str) -> None:
    """A node in a later request (Envoy sends none) changes nothing: the stream keeps its first identity."""
    first_group = Snapshot.from_resources(
        clusters=[xds_builders.eds_cluster("first")], endpoints=[_assignment("first")]
    )
    other_group = Snapshot.from_resources(
        clusters=[xds_builders.eds_cluster("other")], endpoints=[_assignment("other")]
    )
    xds.cache.set_snapshot(first_group, group="first-node")
    xds.cache.set_snapshot(other_group, group="other-node")
    request_class = discovery_pb2.DeltaDiscoveryRequest if mode == "delta" else discovery_pb2.DiscoveryRequest
    raw = RawStream(port=xds.port, delta=mode == "delta")
    try:
        raw.send(request_class(type_url=LISTENER, node=node("first-node")))
        raw.receive()
        raw.send(request_class(type_url=CLUSTER, node=node("other-node")))
        clusters = raw.receive()
    finally:
        raw.close()
    names = [resource_name(CLUSTER, _unpack(mode, item)) for item in clusters.resources]
    assert names == ["first"]


def _assignment(cluster: str) -> endpoint_pb2.ClusterLoadAssignment:
    return xds_builders.load_assignment(cluster, socket_endpoints=[("127.0.0.1", 9)])


def _unpack(mode: str, item: Any) -> cluster_pb2.Cluster:
    packed = item.resource if mode == "delta" else item
    return cluster_pb2.Cluster.FromString(packed.value)
