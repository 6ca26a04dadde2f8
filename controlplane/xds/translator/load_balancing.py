"""How an upstream cluster picks its endpoint: round robin, least request, or the endpoint picker's choice.

An InferencePool with a picker uses Envoy's ``override_host`` policy: it sends a request to the endpoint the
picker wrote into the ``envoy.lb`` dynamic metadata (the first of its comma-separated list that is healthy,
the next ones on retries), but only if that endpoint is one of the cluster's own, so an address outside the
pool is never reached (``ORIGINAL_DST`` would connect anywhere). Without a usable pick it balances by least
request. Only the metadata is read, not the header of the same name: a client can send that header, but
cannot write the metadata.
"""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import extension_pb2
from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2
from envoy.extensions.load_balancing_policies.override_host.v3 import override_host_pb2
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2
from envoy.type.metadata.v3 import metadata_pb2

from controlplane import ir
from controlplane.xds.translator.filters.endpoint_picker import (
    DESTINATION_ENDPOINT_KEY,
    DESTINATION_ENDPOINT_NAMESPACE,
)
from controlplane.xds.translator.messages import pack


def apply_balancing(message: Any, *, picked_endpoint: bool, balancing: ir.Balancing) -> None:
    """Sets an upstream cluster ``message``'s load balancing (``ir.UpstreamCluster``'s fields of the same
    names; round robin needs nothing: Envoy's default)."""
    if picked_endpoint:
        message.load_balancing_policy.CopyFrom(_policy("override_host", _picked_endpoint(balancing)))
    elif balancing is ir.Balancing.LEAST_REQUEST:
        message.lb_policy = cluster_pb2.Cluster.LEAST_REQUEST


def _picked_endpoint(fallback: ir.Balancing) -> Any:
    source = override_host_pb2.OverrideHost.OverrideHostSource(
        metadata=metadata_pb2.MetadataKey(
            key=DESTINATION_ENDPOINT_NAMESPACE,
            path=[metadata_pb2.MetadataKey.PathSegment(key=DESTINATION_ENDPOINT_KEY)],
        )
    )
    return override_host_pb2.OverrideHost(override_host_sources=[source], fallback_policy=_fallback(fallback))


def _fallback(balancing: ir.Balancing) -> Any:
    if balancing is ir.Balancing.LEAST_REQUEST:
        return _policy("least_request", least_request_pb2.LeastRequest())
    return _policy("round_robin", round_robin_pb2.RoundRobin())


def _policy(name: str, config: Any) -> Any:
    return cluster_pb2.LoadBalancingPolicy(
        policies=[
            cluster_pb2.LoadBalancingPolicy.Policy(
                typed_extension_config=extension_pb2.TypedExtensionConfig(
                    name=f"envoy.load_balancing_policies.{name}", typed_config=pack(config)
                )
            )
        ]
    )
