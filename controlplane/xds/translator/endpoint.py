"""Load assignments: rule clusters' backendRefs by priority and weight (EDS), and upstream endpoints (EDS,
or inline in a DNS cluster)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from operator import attrgetter
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import struct_pb2

from controlplane import ir
from controlplane.xds.resource import LISTENER, References, ResourceKey
from controlplane.xds.translator.data_path import RulePath
from controlplane.xds.translator.filters.cost_lua import BACKEND_METADATA


def rule_load_assignment(path: RulePath) -> Any:
    """One locality per backendRef (``data_path``), weighted by its weight, at its rank among priorities."""
    localities = path.localities
    hosts_per_level: dict[int, int] = {}
    for locality in localities:
        hosts_per_level[locality.priority] = hosts_per_level.get(locality.priority, 0) + len(locality.hosts)
    # Envoy numbers levels densely from 0; the user's priority values only give the order.
    ranks = {priority: rank for rank, priority in enumerate(sorted(hosts_per_level))}
    widest = max(max(hosts_per_level.values(), default=1), 1)
    # Filled in place (here and below): nested keyword construction builds every sub-message and copies it.
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=path.cluster)
    add_level = assignment.endpoints.add
    for locality in sorted(localities, key=_priority) if len(ranks) > 1 else localities:
        level = add_level()
        level.locality.sub_zone = locality.name
        level.load_balancing_weight.value = locality.weight
        level.priority = ranks[locality.priority]
        _add_lb_endpoints(
            level,
            locality.hosts,
            metadata=_backend_metadata(locality.backend) if locality.backend is not None else None,
        )
    # With one of two hosts ejected, the default factor (140%) still spills 30% of the traffic to the
    # next level; a level should keep all of it while any of its hosts is healthy.
    assignment.policy.overprovisioning_factor.value = 100 * widest
    return assignment


def upstream_load_assignment(cluster: ir.UpstreamCluster) -> Any:
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster.name)
    _add_lb_endpoints(assignment.endpoints.add(), cluster.endpoints, metadata=None)
    return assignment


def rule_load_assignment_references(path: RulePath) -> References:
    """What ``rule_load_assignment(path)`` refers to: the hop listeners among its hosts."""
    return References(
        dependencies=frozenset(
            ResourceKey(LISTENER, host.listener)
            for locality in path.localities
            for host in locality.hosts
            if type(host) is ir.InternalEndpoint
        )
    )


def upstream_load_assignment_references(cluster: ir.UpstreamCluster) -> References:
    """What ``upstream_load_assignment(cluster)`` refers to: nothing (its endpoints are addresses)."""
    return _NO_REFERENCES


_NO_REFERENCES = References()
_priority = attrgetter("priority")


def _add_lb_endpoints(
    level: Any,
    targets: Iterable[ir.SocketEndpoint | ir.InternalEndpoint],
    *,
    metadata: base_pb2.Metadata | None,
) -> None:
    """Appends ``targets`` to the locality ``level``, each weighted 1 (Envoy's default, said explicitly)."""
    add = level.lb_endpoints.add
    for target in targets:
        lb_endpoint = add()
        address = lb_endpoint.endpoint.address
        if isinstance(target, ir.InternalEndpoint):
            address.envoy_internal_address.server_listener_name = target.listener
        else:
            socket = address.socket_address
            socket.address = target.address
            socket.port_value = target.port
        lb_endpoint.load_balancing_weight.value = 1
        if metadata is not None:
            lb_endpoint.metadata.CopyFrom(metadata)


@lru_cache(maxsize=4096)
def _backend_metadata(backend: str) -> base_pb2.Metadata:
    """The metadata naming a host's backend (for ``cost_lua``); shared: callers only copy it."""
    name = struct_pb2.Struct()
    name.update({BACKEND_METADATA[1]: backend})
    return base_pb2.Metadata(filter_metadata={BACKEND_METADATA[0]: name})
