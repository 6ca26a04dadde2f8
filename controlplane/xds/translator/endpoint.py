"""Load assignments: rule clusters' backendRefs by priority and weight (EDS), and upstream endpoints (EDS,
or inline in a DNS cluster)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf import struct_pb2

from controlplane import ir
from controlplane.xds.translator.data_path import RulePath
from controlplane.xds.translator.filters.cost_lua import BACKEND_METADATA


def rule_load_assignment(path: RulePath) -> Any:
    """One locality per backendRef (``data_path``), weighted by its weight, at its rank among priorities."""
    ranks = {
        priority: rank
        for rank, priority in enumerate(sorted({locality.priority for locality in path.localities}))
    }
    hosts_per_level = Counter[int]()
    for locality in path.localities:
        hosts_per_level[locality.priority] += len(locality.hosts)
    widest = max(max(hosts_per_level.values(), default=1), 1)
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=path.cluster,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                locality=base_pb2.Locality(sub_zone=locality.name),
                load_balancing_weight={"value": locality.weight},
                # Envoy numbers levels densely from 0; the user's priority values only give the order.
                priority=ranks[locality.priority],
                lb_endpoints=[
                    _lb_endpoint(host, weight=1, backend=locality.backend) for host in locality.hosts
                ],
            )
            for locality in sorted(path.localities, key=lambda locality: locality.priority)
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


def _lb_endpoint(
    target: ir.SocketEndpoint | ir.InternalEndpoint, *, weight: int, backend: str | None = None
) -> Any:
    if isinstance(target, ir.InternalEndpoint):
        address = address_pb2.Address(
            envoy_internal_address=address_pb2.EnvoyInternalAddress(server_listener_name=target.listener)
        )
    else:
        address = address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=target.address, port_value=target.port)
        )
    metadata = None
    if backend is not None:
        name = struct_pb2.Struct()
        name.update({BACKEND_METADATA[1]: backend})
        metadata = base_pb2.Metadata(filter_metadata={BACKEND_METADATA[0]: name})
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=address),
        load_balancing_weight={"value": weight},
        metadata=metadata,
    )
