"""Clusters are copied from one prepared message per shape (``cluster._named``): each copy is a cluster of
its own, named as its IR node, with everything else its shape says, and the shape covers every field of
the IR node that the message is made of."""

from __future__ import annotations

from dataclasses import fields

from google.protobuf import json_format

from controlplane import ir
from controlplane.xds.translator.cluster import UpstreamShape, rule_cluster, upstream_cluster

_OUTLIER = ir.OutlierPolicy(
    consecutive_errors=3,
    interval_seconds=1,
    base_ejection_seconds=5,
    max_ejection_seconds=None,
    max_ejection_percent=100,
    error_status_codes=(429,),
)


def test_the_upstream_shape_is_every_field_but_the_name_and_endpoints() -> None:
    # A field of ir.UpstreamCluster missing here would give clusters differing in it the same template.
    assert set(UpstreamShape._fields) == {field.name for field in fields(ir.UpstreamCluster)} - {
        "name",
        "discovery",
        "endpoints",
    }


def test_clusters_of_one_shape_are_copies_named_each_as_its_node() -> None:
    first = upstream_cluster(
        ir.UpstreamCluster(name="backend/ns/a", discovery=ir.DiscoveryType.EDS, endpoints=())
    )
    first.connect_timeout.seconds = 99  # a caller changing its copy changes nobody else's
    second = upstream_cluster(
        ir.UpstreamCluster(name="backend/ns/b", discovery=ir.DiscoveryType.EDS, endpoints=())
    )
    assert (second.name, second.eds_cluster_config.service_name) == ("backend/ns/b", "backend/ns/b")
    assert second.connect_timeout.seconds == 10

    tls = ir.UpstreamTls(sni="api.example.com", verify_hostname="api.example.com", ca_secret=None)
    secured = upstream_cluster(
        ir.UpstreamCluster(
            name="backend/ns/c",
            discovery=ir.DiscoveryType.EDS,
            endpoints=(),
            tls=tls,
            balancing=ir.Balancing.LEAST_REQUEST,
            outlier=_OUTLIER,
        )
    )
    assert secured.transport_socket.name == "envoy.transport_sockets.tls"
    assert secured.lb_policy == secured.LEAST_REQUEST
    assert secured.outlier_detection.consecutive_5xx.value == 3
    assert not second.HasField("transport_socket")
    assert not second.HasField("outlier_detection")


def test_rule_clusters_differ_only_by_name_within_a_shape() -> None:
    endpoint = ir.WeightedEndpoint(ir.InternalEndpoint("hop"), weight=1, priority=0)
    plain = rule_cluster(ir.RuleCluster(name="route/ns/r/rule/0", endpoints=(endpoint,)))
    other = rule_cluster(ir.RuleCluster(name="route/ns/r/rule/1", endpoints=(endpoint,)))
    ejecting = rule_cluster(
        ir.RuleCluster(
            name="route/ns/r/rule/2",
            endpoints=(endpoint,),
            outlier=_OUTLIER,
            circuit_breaker=ir.CircuitBreaker(max_connections=7),
        )
    )
    as_json = json_format.MessageToDict(other)
    assert as_json.pop("name") == as_json["edsClusterConfig"].pop("serviceName") == "route/ns/r/rule/1"
    plain_json = json_format.MessageToDict(plain)
    assert plain_json.pop("name") == plain_json["edsClusterConfig"].pop("serviceName") == "route/ns/r/rule/0"
    assert as_json == plain_json
    assert ejecting.circuit_breakers.thresholds[0].max_connections.value == 7
    assert ejecting.outlier_detection.consecutive_5xx.value == 3
    assert ejecting.name == "route/ns/r/rule/2"
