"""Load assignments: rule clusters' hops by priority and weight (EDS), and upstream endpoints (EDS, or
inline in a DNS cluster)."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2

from controlplane import ir


def rule_load_assignment(cluster: ir.RuleCluster) -> Any:
    by_priority = sorted(cluster.endpoints, key=lambda endpoint: endpoint.priority)
    levels = [
        (priority, list(level))
        for priority, level in groupby(by_priority, key=lambda endpoint: endpoint.priority)
    ]
    widest = max((len(level) for _, level in levels), default=1)
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster.name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                # Envoy numbers levels densely from 0; the user's priority values only give the order.
                priority=rank,
                lb_endpoints=[_lb_endpoint(endpoint.target, weight=endpoint.weight) for endpoint in level],
            )
            for rank, (_, level) in enumerate(levels)
        ],
        # With one of two hosts ejected, the default factor (140%) still spills 30% of the traffic to the
        # next level; a level should keep all of it while any of its hosts is healthy.
        policy=endpoint_pb2.ClusterLoadAssignment.Policy(overprovisioning_factor={"value": 100 * widest}),
    )


def upstream_load_assignment(cluster: ir.UpstreamCluster) -> Any:
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster.name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=[_lb_endpoint(endpoint, weight=1) for endpoint in cluster.endpoints]
            )
        ],
    )


def _lb_endpoint(target: ir.SocketEndpoint | ir.InternalEndpoint, *, weight: int) -> Any:
    if isinstance(target, ir.InternalEndpoint):
        address = address_pb2.Address(
            envoy_internal_address=address_pb2.EnvoyInternalAddress(server_listener_name=target.listener)
        )
    else:
        address = address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=target.address, port_value=target.port)
        )
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=address),
        load_balancing_weight={"value": weight},
    )
