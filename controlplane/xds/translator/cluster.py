"""Clusters: one per rule (priorities and weights over backendRefs) and one per real upstream."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

from envoy.config.cluster.v3 import cluster_pb2, outlier_detection_pb2
from envoy.config.common.matcher.v3 import matcher_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import string_pb2
from envoy.type.v3 import range_pb2

from controlplane import ir
from controlplane.xds.resource import ENDPOINT, SECRET, References, ResourceKey
from controlplane.xds.translator.data_path import RULE_CONNECT_TIMEOUT_SECONDS
from controlplane.xds.translator.endpoint import upstream_load_assignment, upstream_load_assignment_references
from controlplane.xds.translator.load_balancing import apply_balancing
from controlplane.xds.translator.messages import ads_source, pack, seconds

SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_MAX_CONCURRENT_RETRIES = 1024
# Enum values read once: each read through the generated class costs a Python-level attribute lookup.
_EDS = cluster_pb2.Cluster.EDS
_STRICT_DNS = cluster_pb2.Cluster.STRICT_DNS
_V4_PREFERRED = cluster_pb2.Cluster.V4_PREFERRED
_ROUND_ROBIN = cluster_pb2.Cluster.ROUND_ROBIN


def rule_cluster(cluster: ir.RuleCluster) -> Any:
    """The failover cluster; its hosts are the rule's backend hops (internal listeners) or, for a
    backendRef whose hop would do nothing, its backend's endpoints (``data_path``)."""
    return _named(_rule_template(cluster.outlier, cluster.circuit_breaker), cluster.name)


@lru_cache(maxsize=256)
def _rule_template(outlier: ir.OutlierPolicy | None, breaker: ir.CircuitBreaker | None) -> Any:
    """Every rule cluster with this outlier policy and circuit breaker, but for its name (``_named``)."""
    message = _eds_cluster("", connect_timeout_seconds=RULE_CONNECT_TIMEOUT_SECONDS)
    # Health changes (an ejection) take effect at once: the default 1 s merge window let workers keep
    # sending to a re-ejected backend for a second, ~20 retried requests per probe instead of 3.
    message.common_lb_config.update_merge_window.CopyFrom(seconds(0))
    # Each backendRef is a locality weighted by its weight, whatever number of endpoints it has.
    message.common_lb_config.locality_weighted_lb_config.SetInParent()
    # Envoy's default of 3 concurrent retries per cluster hands the primary's error to every client past the
    # third during a failover; retries are bounded by num_retries (one per level) and by ejection instead
    # (Envoy Gateway allows 1024 too).
    if breaker is None:
        message.circuit_breakers.thresholds.add(max_retries={"value": _MAX_CONCURRENT_RETRIES})
    else:
        _set_circuit_breaker(message, breaker)
    if outlier is not None:
        message.outlier_detection.CopyFrom(_outlier_detection(outlier))
    options = _packed_http_options(
        error_status_codes=outlier.error_status_codes if outlier is not None else (),
        max_requests_per_connection=breaker.max_requests_per_connection if breaker is not None else None,
        http2=False,
    )
    if options is not None:
        message.typed_extension_protocol_options[_HTTP_OPTIONS].CopyFrom(options)
    return message


def rule_cluster_references(cluster: ir.RuleCluster) -> References:
    """What ``rule_cluster(cluster)`` refers to: its load assignment, fetched over EDS."""
    return References(warming=frozenset({ResourceKey(ENDPOINT, cluster.name)}))


def _set_circuit_breaker(message: Any, breaker: ir.CircuitBreaker) -> None:
    """Envoy Gateway's thresholds (its default of 1024 concurrent retries included)."""
    retries = breaker.max_retries if breaker.max_retries is not None else _MAX_CONCURRENT_RETRIES
    thresholds = message.circuit_breakers.thresholds.add(max_retries={"value": retries})
    for field, value in (
        ("max_connections", breaker.max_connections),
        ("max_pending_requests", breaker.max_pending_requests),
        ("max_requests", breaker.max_requests),
    ):
        if value is not None:
            getattr(thresholds, field).value = value
    if breaker.per_endpoint_max_connections is not None:
        message.circuit_breakers.per_host_thresholds.add(
            max_connections={"value": breaker.per_endpoint_max_connections}
        )


class UpstreamShape(NamedTuple):
    """Every field of an ``ir.UpstreamCluster`` but its name, discovery and endpoints: what an EDS upstream
    cluster's message is made of besides its name (tests hold the two field lists in step)."""

    connect_timeout_seconds: float
    tls: ir.UpstreamTls | None
    balancing: ir.Balancing
    picked_endpoint: bool
    outlier: ir.OutlierPolicy | None
    http2: bool


def upstream_cluster(cluster: ir.UpstreamCluster, *, system_ca_file: str = SYSTEM_CA_FILE) -> Any:
    shape = UpstreamShape(
        cluster.connect_timeout_seconds,
        cluster.tls,
        cluster.balancing,
        cluster.picked_endpoint,
        cluster.outlier,
        cluster.http2,
    )
    if cluster.discovery is ir.DiscoveryType.EDS:
        if shape.tls is None:
            return _named(_upstream_template(shape, system_ca_file), cluster.name)
        # TLS names its backend's host (SNI, verified name): about one shape per cluster, no template shared.
        message = _eds_cluster(cluster.name, connect_timeout_seconds=shape.connect_timeout_seconds)
        _shape_upstream(message, shape, system_ca_file=system_ca_file)
        return message
    message = cluster_pb2.Cluster(
        name=cluster.name,
        type=_STRICT_DNS,
        connect_timeout=seconds(cluster.connect_timeout_seconds),
        dns_lookup_family=_V4_PREFERRED,
        respect_dns_ttl=True,
        load_assignment=upstream_load_assignment(cluster),
    )
    _shape_upstream(message, shape, system_ca_file=system_ca_file)
    return message


@lru_cache(maxsize=256)
def _upstream_template(shape: UpstreamShape, system_ca_file: str) -> Any:
    """Every EDS upstream cluster of this shape, but for its name (``_named``)."""
    message = _eds_cluster("", connect_timeout_seconds=shape.connect_timeout_seconds)
    _shape_upstream(message, shape, system_ca_file=system_ca_file)
    return message


def _shape_upstream(message: Any, shape: UpstreamShape, *, system_ca_file: str) -> None:
    """Sets what ``shape`` says on an upstream cluster (EDS or DNS) besides its discovery."""
    if shape.tls is not None:
        message.transport_socket.CopyFrom(_tls_socket(shape.tls, system_ca_file=system_ca_file))
    apply_balancing(message, picked_endpoint=shape.picked_endpoint, balancing=shape.balancing)
    if shape.outlier is not None:
        message.outlier_detection.CopyFrom(_outlier_detection(shape.outlier))
    options = _packed_http_options(
        error_status_codes=shape.outlier.error_status_codes if shape.outlier is not None else (),
        max_requests_per_connection=None,
        http2=shape.http2,
    )
    if options is not None:
        message.typed_extension_protocol_options[_HTTP_OPTIONS].CopyFrom(options)


def upstream_cluster_references(cluster: ir.UpstreamCluster) -> References:
    """What ``upstream_cluster(cluster)`` refers to: its load assignment (over EDS, or inline) and the CA
    bundle its TLS validates with (over SDS)."""
    warming = set()
    dependencies: frozenset[ResourceKey] = frozenset()
    if cluster.discovery is ir.DiscoveryType.EDS:
        warming.add(ResourceKey(ENDPOINT, cluster.name))
    else:
        dependencies = upstream_load_assignment_references(cluster).dependencies
    if cluster.tls is not None and cluster.tls.verify and cluster.tls.ca_secret is not None:
        warming.add(ResourceKey(SECRET, cluster.tls.ca_secret))
    return References(dependencies=dependencies, warming=frozenset(warming))


def _eds_cluster(name: str, *, connect_timeout_seconds: float) -> Any:
    # Filled in place: nested keyword construction builds and then copies every sub-message.
    message = cluster_pb2.Cluster(name=name, type=_EDS, lb_policy=_ROUND_ROBIN)
    message.eds_cluster_config.service_name = name
    message.eds_cluster_config.eds_config.CopyFrom(ads_source())
    message.connect_timeout.CopyFrom(seconds(connect_timeout_seconds))
    return message


def _named(template: Any, name: str) -> Any:
    """A copy of the EDS cluster ``template`` named ``name`` (its load assignment too): thousands of clusters
    share a few shapes, and copying a prepared one is one C call where building it is dozens of Python ones.
    Serialised, the copy is byte for byte the cluster built from scratch (fields go in number order)."""
    message = cluster_pb2.Cluster()
    message.CopyFrom(template)
    message.name = name
    message.eds_cluster_config.service_name = name
    return message


# The few distinct policies, option sets and cluster templates of a configuration are built once each (most
# clusters share them). What these cached builders return is shared: callers only copy it (CopyFrom).
@lru_cache(maxsize=256)
def _outlier_detection(policy: ir.OutlierPolicy) -> Any:
    detection = outlier_detection_pb2.OutlierDetection(
        consecutive_5xx={"value": policy.consecutive_errors},
        interval=seconds(policy.interval_seconds),
        base_ejection_time=seconds(policy.base_ejection_seconds),
        max_ejection_percent={"value": policy.max_ejection_percent},
        split_external_local_origin_errors=policy.split_external_local_origin_errors,
    )
    if policy.max_ejection_seconds is not None:
        detection.max_ejection_time.CopyFrom(seconds(policy.max_ejection_seconds))
    if policy.consecutive_gateway_errors is not None:
        detection.consecutive_gateway_failure.value = policy.consecutive_gateway_errors
    if policy.consecutive_local_origin_failures is not None:
        detection.consecutive_local_origin_failure.value = policy.consecutive_local_origin_failures
    return detection


@lru_cache(maxsize=256)
def _packed_http_options(
    *, error_status_codes: tuple[int, ...], max_requests_per_connection: int | None, http2: bool
) -> Any | None:
    """A cluster's HTTP options, packed, when it needs any: which responses count toward
    ``consecutive_5xx`` besides 5xx (e.g. 429), a limit of requests per connection, HTTP/2 upstream.

    The error matcher replaces Envoy's built-in 5xx classification, so 5xx is listed again; Envoy also
    requires an explicit protocol once such options are set (HTTP/1.1, as hops and model servers speak; an
    HTTP/2 cluster replaces it).
    """
    if not error_status_codes and max_requests_per_connection is None and not http2:
        return None
    options = http_protocol_options_pb2.HttpProtocolOptions()
    if http2:
        options.explicit_http_config.http2_protocol_options.SetInParent()
    else:
        options.explicit_http_config.http_protocol_options.SetInParent()
    if error_status_codes:
        rules = [_status_range(500, 600)] + [_status_range(code, code + 1) for code in error_status_codes]
        options.outlier_detection.error_matcher.or_match.rules.extend(rules)
    if max_requests_per_connection is not None:
        options.common_http_protocol_options.max_requests_per_connection.value = max_requests_per_connection
    return pack(options)


def _status_range(start: int, end: int) -> Any:
    return matcher_pb2.MatchPredicate(
        http_response_headers_match=matcher_pb2.HttpHeadersMatch(
            headers=[
                route_components_pb2.HeaderMatcher(
                    name=":status", range_match=range_pb2.Int64Range(start=start, end=end)
                )
            ]
        )
    )


def _tls_socket(tls: ir.UpstreamTls, *, system_ca_file: str) -> Any:
    validation = common_pb2.CertificateValidationContext()
    if tls.verify_hostname is not None:
        validation.match_typed_subject_alt_names.append(
            common_pb2.SubjectAltNameMatcher(
                san_type=common_pb2.SubjectAltNameMatcher.DNS,
                matcher=string_pb2.StringMatcher(exact=tls.verify_hostname),
            )
        )
    context = tls_pb2.CommonTlsContext()
    if not tls.verify:
        # Encrypted, any certificate accepted: what endpoint pickers serve (a self-signed one by default).
        context.alpn_protocols.append("h2")
    elif tls.ca_secret is None:
        validation.trusted_ca.filename = system_ca_file
        context.validation_context.CopyFrom(validation)
    else:
        context.combined_validation_context.CopyFrom(
            tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
                default_validation_context=validation,
                validation_context_sds_secret_config=secret_pb2.SdsSecretConfig(
                    name=tls.ca_secret, sds_config=ads_source()
                ),
            )
        )
    upstream = tls_pb2.UpstreamTlsContext(sni=tls.sni, common_tls_context=context)
    return base_pb2.TransportSocket(name="envoy.transport_sockets.tls", typed_config=pack(upstream))
