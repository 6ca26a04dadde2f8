"""Clusters: one per rule (priorities and weights over backend hops) and one per real upstream."""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2

from controlplane import ir
from controlplane.xdsbuild._proto import ads_source, pack, seconds

SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"


def rule_cluster(cluster: ir.RuleCluster) -> Any:
    message = _eds_cluster(cluster.name, connect_timeout_seconds=10.0)
    # Spill to the next priority only as hosts really fail, never because a level is "partially" healthy.
    message.common_lb_config.healthy_panic_threshold.value = 0
    if cluster.outlier is not None:
        message.outlier_detection.CopyFrom(_outlier_detection(cluster.outlier))
    return message


def upstream_cluster(cluster: ir.UpstreamCluster, *, system_ca_file: str = SYSTEM_CA_FILE) -> Any:
    if cluster.discovery is ir.DiscoveryType.EDS:
        message = _eds_cluster(cluster.name, connect_timeout_seconds=cluster.connect_timeout_seconds)
    else:
        message = cluster_pb2.Cluster(
            name=cluster.name,
            type=cluster_pb2.Cluster.STRICT_DNS,
            connect_timeout=seconds(cluster.connect_timeout_seconds),
            dns_lookup_family=cluster_pb2.Cluster.V4_PREFERRED,
            respect_dns_ttl=True,
            load_assignment=endpoint_pb2.ClusterLoadAssignment(
                cluster_name=cluster.name,
                endpoints=[
                    endpoint_components_pb2.LocalityLbEndpoints(
                        lb_endpoints=[_socket_lb_endpoint(endpoint) for endpoint in cluster.endpoints]
                    )
                ],
            ),
        )
    if cluster.tls is not None:
        message.transport_socket.CopyFrom(_tls_socket(cluster.tls, system_ca_file=system_ca_file))
    return message


def _eds_cluster(name: str, *, connect_timeout_seconds: float) -> Any:
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(service_name=name, eds_config=ads_source()),
        connect_timeout=seconds(connect_timeout_seconds),
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
    )


def _socket_lb_endpoint(endpoint: ir.SocketEndpoint) -> Any:
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(
            address=address_pb2.Address(
                socket_address=address_pb2.SocketAddress(address=endpoint.address, port_value=endpoint.port)
            )
        )
    )


def _outlier_detection(policy: ir.OutlierPolicy) -> Any:
    return outlier_detection_pb2.OutlierDetection(
        consecutive_5xx={"value": policy.consecutive_errors},
        consecutive_gateway_failure={"value": policy.consecutive_errors},
        consecutive_local_origin_failure={"value": policy.consecutive_errors},
        interval=seconds(policy.interval_seconds),
        base_ejection_time=seconds(policy.base_ejection_seconds),
        max_ejection_time=seconds(policy.max_ejection_seconds),
        max_ejection_percent={"value": policy.max_ejection_percent},
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
    if tls.ca_secret is None:
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
