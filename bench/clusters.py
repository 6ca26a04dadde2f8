"""The topology rows 2 to 4 serve: N EDS clusters, three endpoints each, behind one listener routing to each.

Shared by ``bench.xds_push`` (ADS next to a static bootstrap and go-control-plane), ``bench.fanout`` (one
change reaching many proxies) and the ACK observer's tests, so that each describes the same resources.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import json_format

from controlplane.xds.cache import Snapshot
from tests import xds_builders

_ENDPOINTS = 3


@dataclass(frozen=True)
class ClusterConfig:
    """N EDS clusters (three endpoints each) behind one listener whose RDS routes name each of them."""

    size: int
    listener_port: int

    def snapshot(self, *, endpoint_offset: int = 0, changed: int | None = None) -> Snapshot:
        """The ADS form; `endpoint_offset` moves the endpoints of all clusters (or of `changed` only)."""
        clusters = [xds_builders.eds_cluster(self._name(index)) for index in range(self.size)]
        endpoints = [
            xds_builders.load_assignment(
                self._name(index),
                socket_endpoints=self._endpoints(index, endpoint_offset if changed in (None, index) else 0),
            )
            for index in range(self.size)
        ]
        return Snapshot.from_resources(
            listeners=[xds_builders.http_listener("bench", port=self.listener_port, rds_name="bench")],
            routes=[self._routes()],
            clusters=clusters,
            endpoints=endpoints,
        )

    def static_bootstrap(self) -> str:
        """The same clusters (endpoints inline) and listener (routes inline) in a bootstrap file."""
        bootstrap = bootstrap_pb2.Bootstrap()
        bootstrap.admin.address.CopyFrom(
            address_pb2.Address(socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=0))
        )
        # As `controlplane bootstrap` does: no stats flush timer stalling the main thread every 5 s, and a
        # cluster's traffic stats made at its first request.
        bootstrap.stats_flush_on_admin = True
        bootstrap.deferred_stat_options.enable_deferred_creation_stats = True
        for index in range(self.size):
            cluster = bootstrap.static_resources.clusters.add()
            cluster.CopyFrom(xds_builders.eds_cluster(self._name(index)))
            cluster.ClearField("eds_cluster_config")
            cluster.type = cluster_pb2.Cluster.STATIC
            cluster.load_assignment.CopyFrom(
                xds_builders.load_assignment(self._name(index), socket_endpoints=self._endpoints(index, 0))
            )
        bootstrap.static_resources.listeners.append(
            xds_builders.http_listener("bench", port=self.listener_port, route_config=self._routes())
        )
        return json_format.MessageToJson(bootstrap, indent=None)

    def _routes(self) -> route_pb2.RouteConfiguration:
        return xds_builders.route_configuration(
            "bench", routes=[(f"/{self._name(index)}/", self._name(index)) for index in range(self.size)]
        )

    @staticmethod
    def _name(index: int) -> str:
        return f"cluster-{index:05d}"

    @staticmethod
    def _endpoints(index: int, offset: int) -> list[tuple[str, int]]:
        return [
            ("127.0.0.1", 20000 + (index * _ENDPOINTS + slot + offset) % 40000) for slot in range(_ENDPOINTS)
        ]
