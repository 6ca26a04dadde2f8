"""IR -> Envoy xDS messages. Pure and deterministic: the same IR always yields the same messages, in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controlplane import ir
from controlplane.xds.translator.cluster import SYSTEM_CA_FILE, rule_cluster, upstream_cluster
from controlplane.xds.translator.endpoint import rule_load_assignment, upstream_load_assignment
from controlplane.xds.translator.listener import hop_listener, http_listener
from controlplane.xds.translator.route import route_configuration
from controlplane.xds.translator.secret import ca_secret, credential_secret


@dataclass(frozen=True, slots=True)
class EnvoyResources:
    """Envoy messages by xDS type, each tuple sorted by resource name."""

    listeners: tuple[Any, ...]
    routes: tuple[Any, ...]
    clusters: tuple[Any, ...]
    endpoints: tuple[Any, ...]
    secrets: tuple[Any, ...]


def build_xds(infra: ir.Infra, *, system_ca_file: str = SYSTEM_CA_FILE) -> EnvoyResources:
    """The IR in; the Envoy listeners (public and hops), route configurations, clusters (rule and upstream),
    load assignments and secrets (credentials, CA bundles) out. ``system_ca_file`` is the trust store of
    upstream TLS without a CA of its own."""
    eds_upstreams = [cluster for cluster in infra.upstreams if cluster.discovery is ir.DiscoveryType.EDS]
    return EnvoyResources(
        listeners=_by_name(
            [http_listener(listener) for listener in infra.listeners]
            + [hop_listener(hop) for hop in infra.hops]
        ),
        routes=_by_name([route_configuration(listener) for listener in infra.listeners]),
        clusters=_by_name(
            [rule_cluster(cluster) for cluster in infra.rule_clusters]
            + [upstream_cluster(cluster, system_ca_file=system_ca_file) for cluster in infra.upstreams]
        ),
        endpoints=tuple(
            sorted(
                [rule_load_assignment(cluster) for cluster in infra.rule_clusters]
                + [upstream_load_assignment(cluster) for cluster in eds_upstreams],
                key=lambda assignment: assignment.cluster_name,
            )
        ),
        secrets=_by_name(
            [credential_secret(secret) for secret in infra.credentials]
            + [ca_secret(bundle) for bundle in infra.ca_bundles]
        ),
    )


def _by_name(messages: list[Any]) -> tuple[Any, ...]:
    return tuple(sorted(messages, key=lambda message: message.name))
