"""xDS resource helpers: names, content versions and the references that order pushes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from controlplane.xds.content import XdsResource, content_hash
from controlplane.xds.resource import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    SECRET,
    ResourceKey,
    dependencies,
    resource_name,
    short_type_name,
    warming_dependencies,
)
from tests import xds_builders


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def test_names_by_type() -> None:
    assert resource_name(CLUSTER, xds_builders.eds_cluster("c1")) == "c1"
    assert resource_name(ENDPOINT, xds_builders.load_assignment("c1")) == "c1"
    assert resource_name(SECRET, secret_pb2.Secret(name="key")) == "key"
    assert short_type_name(SECRET) == "Secret"
    assert SECRET == "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"


def test_content_hash_is_deterministic_and_content_based() -> None:
    first = xds_builders.route_configuration("r", routes=[("/a", "c1"), ("/b", "c2")])
    same = xds_builders.route_configuration("r", routes=[("/a", "c1"), ("/b", "c2")])
    other = xds_builders.route_configuration("r", routes=[("/b", "c2"), ("/a", "c1")])
    assert content_hash(first) == content_hash(same)
    assert content_hash(first) != content_hash(other)
    # Map fields are serialised in a fixed order, so insertion order does not change the version.
    one = xds_builders.eds_cluster("c")
    one.metadata.filter_metadata["a"].update({"x": 1})
    one.metadata.filter_metadata["b"].update({"y": 2})
    two = xds_builders.eds_cluster("c")
    two.metadata.filter_metadata["b"].update({"y": 2})
    two.metadata.filter_metadata["a"].update({"x": 1})
    assert content_hash(one) == content_hash(two)


def test_route_depends_on_every_cluster_it_names() -> None:
    action = route_components_pb2.RouteAction(
        weighted_clusters=route_components_pb2.WeightedCluster(
            clusters=[
                route_components_pb2.WeightedCluster.ClusterWeight(name="w1", weight={"value": 1}),
                route_components_pb2.WeightedCluster.ClusterWeight(name="w2", weight={"value": 1}),
            ]
        ),
        request_mirror_policies=[route_components_pb2.RouteAction.RequestMirrorPolicy(cluster="mirror")],
    )
    config = xds_builders.route_configuration("r", routes=[("/a", "direct")])
    config.virtual_hosts[0].routes.append(
        route_components_pb2.Route(match=route_components_pb2.RouteMatch(prefix="/w"), route=action)
    )
    config.virtual_hosts[0].request_mirror_policies.append(
        route_components_pb2.RouteAction.RequestMirrorPolicy(cluster="vh-mirror")
    )
    assert dependencies(ROUTE, config) == {
        ResourceKey(CLUSTER, name) for name in ("direct", "w1", "w2", "mirror", "vh-mirror")
    }
    assert warming_dependencies(ROUTE, config) == set()


def test_listener_depends_on_inline_route_clusters_but_only_warms_on_rds() -> None:
    inline = xds_builders.http_listener(
        "inline", port=8080, route_config=xds_builders.route_configuration("r", routes=[("/", "c1")])
    )
    assert dependencies(LISTENER, inline) == {ResourceKey(CLUSTER, "c1")}
    with_rds = xds_builders.http_listener("rds", port=8081, rds_name="routes")
    assert dependencies(LISTENER, with_rds) == set()
    assert warming_dependencies(LISTENER, with_rds) == {ResourceKey(ROUTE, "routes")}


def test_listener_with_tcp_proxy() -> None:
    listener = xds_builders.http_listener("l", port=1, rds_name="x")
    proxy = tcp_proxy_pb2.TcpProxy(
        stat_prefix="tcp",
        weighted_clusters=tcp_proxy_pb2.TcpProxy.WeightedCluster(
            clusters=[tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(name="t1", weight=1)]
        ),
    )
    listener.filter_chains[0].filters[0].typed_config.CopyFrom(_packed(proxy))
    assert dependencies(LISTENER, listener) == {ResourceKey(CLUSTER, "t1")}


def test_endpoints_and_static_clusters_depend_on_internal_listeners() -> None:
    assignment = xds_builders.load_assignment(
        "outer", socket_endpoints=[("127.0.0.1", 1)], internal_listeners=["b1"]
    )
    assert dependencies(ENDPOINT, assignment) == {ResourceKey(LISTENER, "b1")}
    static = cluster_pb2.Cluster(name="outer", type=cluster_pb2.Cluster.STATIC, load_assignment=assignment)
    assert dependencies(CLUSTER, static) == {ResourceKey(LISTENER, "b1")}
    assert warming_dependencies(CLUSTER, static) == set()


def test_eds_cluster_warms_on_its_load_assignment_and_sds_secrets() -> None:
    cluster = xds_builders.eds_cluster("c1")
    cluster.eds_cluster_config.service_name = "service-1"
    ads = config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource())
    tls = tls_pb2.UpstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            validation_context_sds_secret_config=secret_pb2.SdsSecretConfig(name="ca", sds_config=ads),
            tls_certificate_sds_secret_configs=[secret_pb2.SdsSecretConfig(name="static-cert")],
        )
    )
    cluster.transport_socket.name = "envoy.transport_sockets.tls"
    cluster.transport_socket.typed_config.CopyFrom(_packed(tls))
    assert dependencies(CLUSTER, cluster) == set()
    # static-cert has no sds_config: it is a bootstrap secret, not ours to serve.
    assert warming_dependencies(CLUSTER, cluster) == {
        ResourceKey(ENDPOINT, "service-1"),
        ResourceKey(SECRET, "ca"),
    }


def test_unknown_or_corrupt_any_is_skipped() -> None:
    listener = xds_builders.http_listener("l", port=1, rds_name="x")
    listener.filter_chains[0].filters[0].typed_config.CopyFrom(
        any_pb2.Any(type_url="type.googleapis.com/example.Unknown", value=b"\x01")
    )
    assert dependencies(LISTENER, listener) == set()
    listener.filter_chains[0].filters[
        0
    ].typed_config.type_url = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
    listener.filter_chains[0].filters[0].typed_config.value = b"\xff\xff"
    assert dependencies(LISTENER, listener) == set()


def test_resources_are_interned_by_content() -> None:
    first = XdsResource.build(CLUSTER, xds_builders.eds_cluster("c"))
    second = XdsResource.build(CLUSTER, xds_builders.eds_cluster("c"))
    changed = XdsResource.build(CLUSTER, xds_builders.eds_cluster("c", connect_timeout_seconds=3))
    assert first is second
    assert changed.version != first.version
    assert first.packed.type_url == CLUSTER
    assert (
        route_pb2.RouteConfiguration.FromString(
            XdsResource.build(ROUTE, xds_builders.route_configuration("r", routes=[])).packed.value
        ).name
        == "r"
    )


_SNAPSHOT_VERSION = """
from pathlib import Path
from controlplane.pipeline import TranslateOptions, translate
from controlplane.sources.file_reading import load_paths
loaded = load_paths([Path("examples")])
print(translate(loaded.resource_set(), options=TranslateOptions()).snapshot().version)
"""


@pytest.mark.envoy
def test_the_same_input_gets_the_same_snapshot_version_in_every_process() -> None:
    # Each process hashes strings with its own seed: maps inside packed messages must not follow it,
    # or two replicas (or one restarted) would version the same configuration differently.
    root = Path(__file__).parent.parent
    versions = {
        subprocess.run(
            [sys.executable, "-c", _SNAPSHOT_VERSION],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert len(versions) == 1, versions
