"""IR -> Envoy xDS messages. Pure and deterministic: the same IR always yields the same messages, in order."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

from controlplane import ir
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, TYPE_URLS, References
from controlplane.xds.translator.cluster import (
    SYSTEM_CA_FILE,
    rule_cluster,
    rule_cluster_references,
    upstream_cluster,
    upstream_cluster_references,
)
from controlplane.xds.translator.data_path import DataPath, data_path
from controlplane.xds.translator.endpoint import (
    rule_load_assignment,
    rule_load_assignment_references,
    upstream_load_assignment,
    upstream_load_assignment_references,
)
from controlplane.xds.translator.listener import hop_listener, http_listener
from controlplane.xds.translator.route import route_configuration, route_configuration_references
from controlplane.xds.translator.secret import ca_secret, credential_secret


@dataclass(frozen=True, slots=True)
class EnvoyResources:
    """Envoy messages by xDS type, each tuple sorted by resource name."""

    listeners: tuple[Any, ...]
    routes: tuple[Any, ...]
    clusters: tuple[Any, ...]
    endpoints: tuple[Any, ...]
    secrets: tuple[Any, ...]


Fragments = tuple[str, Callable[[Any], Any], Callable[[Any], References] | None, tuple[Hashable, ...]]
"""Envoy resources to be: their type URL, the function that translates each, the function that declares
what each refers to (where the messages are many or large, so that walking them would cost more than
building them; None: the message is walked) and those functions' IR inputs (one resource each). The
functions are pure, so equal inputs give equal resources (``reuse`` relies on that)."""


@cache
def _upstream_cluster(system_ca_file: str) -> Callable[[ir.UpstreamCluster], Any]:
    """``upstream_cluster`` for one trust store, the same function object each time (a ``reuse`` key)."""
    return partial(upstream_cluster, system_ca_file=system_ca_file)


def fragments(
    infra: ir.Infra,
    *,
    system_ca_file: str = SYSTEM_CA_FILE,
    path: DataPath | None = None,
    route_configurations: Callable[[ir.HttpListener], Any] = route_configuration,
) -> list[Fragments]:
    """Every Envoy resource of ``infra`` as (type URL, translate function, IR inputs), not yet translated,
    one entry per function. ``path`` is ``data_path(infra)`` when the caller has it already;
    ``route_configurations`` translates a public listener's routes (``route_bytes`` serialises them a
    route at a time)."""
    path = path or data_path(infra)
    return [
        (LISTENER, http_listener, None, infra.listeners),
        (LISTENER, hop_listener, None, path.hops),
        (ROUTE, route_configurations, route_configuration_references, infra.listeners),
        (CLUSTER, rule_cluster, rule_cluster_references, infra.rule_clusters),
        (CLUSTER, _upstream_cluster(system_ca_file), upstream_cluster_references, path.upstreams),
        (ENDPOINT, rule_load_assignment, rule_load_assignment_references, path.rules),
        (ENDPOINT, upstream_load_assignment, upstream_load_assignment_references, path.eds_upstreams),
        (SECRET, credential_secret, None, infra.credentials),
        (SECRET, ca_secret, None, infra.ca_bundles),
    ]


def build_xds(infra: ir.Infra, *, system_ca_file: str = SYSTEM_CA_FILE) -> EnvoyResources:
    """The IR in; the Envoy listeners (public, and the hops that do something), route configurations,
    clusters (rule, and the upstreams a hop still sends to), load assignments and secrets (credentials, CA
    bundles) out. ``system_ca_file`` is the trust store of upstream TLS without a CA of its own."""
    by_type: dict[str, list[Any]] = {type_url: [] for type_url in TYPE_URLS}
    for type_url, translate, _, nodes in fragments(infra, system_ca_file=system_ca_file):
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
