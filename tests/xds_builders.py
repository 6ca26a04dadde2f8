"""Small constructors for the Envoy messages the xDS layer is tested and benchmarked with.

They build plain `xds-protos` messages with the settings this project always wants (ADS config sources,
resource API v3, the router filter), so the xDS server's tests and ``bench/clusters.py`` describe a topology
in a few lines instead of repeating proto boilerplate. They are independent of the translator
(``controlplane.xds.translator``), which builds its messages from the IR.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from controlplane.xds.translator.messages import ads_source, pack, seconds

_HCM_FILTER = "envoy.filters.network.http_connection_manager"


def eds_cluster(name: str, *, connect_timeout_seconds: float = 1.0) -> cluster_pb2.Cluster:
    """A cluster whose endpoints come over EDS (load assignment named like the cluster)."""
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=ads_source()),
    )
    cluster.connect_timeout.CopyFrom(seconds(connect_timeout_seconds))
    return cluster


def load_assignment(
    cluster_name: str,
    *,
    socket_endpoints: Sequence[tuple[str, int]] = (),
    internal_listeners: Sequence[str] = (),
) -> endpoint_pb2.ClusterLoadAssignment:
    """Endpoints for `cluster_name`: TCP addresses and/or internal listeners, all in one locality."""
    addresses = [
        address_pb2.Address(socket_address=address_pb2.SocketAddress(address=host, port_value=port))
        for host, port in socket_endpoints
    ]
    addresses.extend(
        address_pb2.Address(
            envoy_internal_address=address_pb2.EnvoyInternalAddress(server_listener_name=name)
        )
        for name in internal_listeners
    )
    locality = endpoint_components_pb2.LocalityLbEndpoints(
        lb_endpoints=[
            endpoint_components_pb2.LbEndpoint(endpoint=endpoint_components_pb2.Endpoint(address=address))
            for address in addresses
        ]
    )
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name, endpoints=[locality])


def route_configuration(name: str, *, routes: Sequence[tuple[str, str]]) -> route_pb2.RouteConfiguration:
    """One catch-all virtual host routing each path prefix to a cluster, in the order given."""
    return route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=[
            route_components_pb2.VirtualHost(
                name=name,
                domains=["*"],
                routes=[
                    route_components_pb2.Route(
                        match=route_components_pb2.RouteMatch(prefix=prefix),
                        route=route_components_pb2.RouteAction(cluster=cluster),
                    )
                    for prefix, cluster in routes
                ],
            )
        ],
    )


def http_listener(
    name: str,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    rds_name: str | None = None,
    route_config: route_pb2.RouteConfiguration | None = None,
) -> listener_pb2.Listener:
    """An HTTP listener on `host:port`, or an internal listener when `port` is None.

    Routes come either from RDS (`rds_name`) or inline (`route_config`).
    """
    if (rds_name is None) == (route_config is None):
        raise ValueError("give exactly one of rds_name and route_config")
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=name,
        http_filters=[
            hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=pack(router_pb2.Router()))
        ],
    )
    if rds_name is not None:
        manager.rds.CopyFrom(hcm_pb2.Rds(route_config_name=rds_name, config_source=ads_source()))
    else:
        manager.route_config.CopyFrom(route_config)
    listener = listener_pb2.Listener(
        name=name,
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[listener_components_pb2.Filter(name=_HCM_FILTER, typed_config=pack(manager))]
            )
        ],
    )
    if port is None:
        listener.internal_listener.SetInParent()
    else:
        listener.address.CopyFrom(
            address_pb2.Address(socket_address=address_pb2.SocketAddress(address=host, port_value=port))
        )
    return listener


def with_metadata(cluster: cluster_pb2.Cluster, *, key: str, value: str) -> cluster_pb2.Cluster:
    """A copy of `cluster` carrying a string under filter metadata ``controlplane``/`key`."""
    copy = cluster_pb2.Cluster()
    copy.CopyFrom(cluster)
    copy.metadata.CopyFrom(base_pb2.Metadata())
    copy.metadata.filter_metadata["controlplane"].update({key: value})
    return copy
