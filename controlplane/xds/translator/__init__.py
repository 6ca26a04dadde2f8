"""IR -> Envoy xDS messages. Pure and deterministic: the same IR always yields the same messages, in order."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

from controlplane import ir
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, TYPE_URLS
from controlplane.xds.translator.cluster import SYSTEM_CA_FILE, rule_cluster, upstream_cluster
from controlplane.xds.translator.data_path import DataPath, data_path
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


Fragments = tuple[str, Callable[[Any], Any], tuple[Hashable, ...]]
"""Envoy resources to be: their type URL, the function that translates each and that function's IR inputs
(one resource each). The function is pure, so equal inputs give equal resources (``reuse`` relies on that)."""


@cache
def _upstream_cluster(system_ca_file: str) -> Callable[[ir.UpstreamCluster], Any]:
    """``upstream_cluster`` for one trust store, the same function object each time (a ``reuse`` key)."""
    return partial(upstream_cluster, system_ca_file=system_ca_file)


def fragments(
    infra: ir.Infra, *, system_ca_file: str = SYSTEM_CA_FILE, path: DataPath | None = None
) -> list[Fragments]:
    """Every Envoy resource of ``infra`` as (type URL, translate function, IR inputs), not yet translated,
    one entry per function. ``path`` is ``data_path(infra)`` when the caller has it already."""
    eds_upstreams = tuple(cluster for cluster in infra.upstreams if cluster.discovery is ir.DiscoveryType.EDS)
    path = path or data_path(infra)
    return [
        (LISTENER, http_listener, infra.listeners),
        (LISTENER, hop_listener, path.hops),
        (ROUTE, route_configuration, infra.listeners),
        (CLUSTER, rule_cluster, infra.rule_clusters),
        (CLUSTER, _upstream_cluster(system_ca_file), infra.upstreams),
        (ENDPOINT, rule_load_assignment, path.rules),
        (ENDPOINT, upstream_load_assignment, eds_upstreams),
        (SECRET, credential_secret, infra.credentials),
        (SECRET, ca_secret, infra.ca_bundles),
    ]


def build_xds(infra: ir.Infra, *, system_ca_file: str = SYSTEM_CA_FILE) -> EnvoyResources:
    """The IR in; the Envoy listeners (public, and the hops that do something), route configurations,
    clusters (rule and upstream), load assignments and secrets (credentials, CA bundles) out.
    ``system_ca_file`` is the trust store of upstream TLS without a CA of its own."""
    by_type: dict[str, list[Any]] = {type_url: [] for type_url in TYPE_URLS}
    for type_url, translate, nodes in fragments(infra, system_ca_file=system_ca_file):
        by_type[type_url].extend(translate(node) for node in nodes)
    return EnvoyResources(
        listeners=_by_name(by_type[LISTENER]),
        routes=_by_name(by_type[ROUTE]),
        clusters=_by_name(by_type[CLUSTER]),
        endpoints=tuple(sorted(by_type[ENDPOINT], key=lambda assignment: assignment.cluster_name)),
        secrets=_by_name(by_type[SECRET]),
    )


def _by_name(messages: list[Any]) -> tuple[Any, ...]:
    return tuple(sorted(messages, key=lambda message: message.name))
