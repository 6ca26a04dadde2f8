"""Which backend hops Envoy runs: a hop that does nothing per attempt is left out of the data path.

A backendRef's hop (an internal listener, ``listener.hop_listener``) costs every request that reaches it a
second connection manager, route lookup and upstream connection inside Envoy: measured on Envoy 1.40 with
one worker, a priority-failover rule went from 7.8k to 5.5k requests/s with it. A hop earns that only when
it does something for the attempt that landed on its backend (``ir.BackendHop.works_per_attempt``). When it
does nothing and its upstream is one the rule cluster can reach just as well (``reachable_directly``: the
endpoints are addresses delivered by EDS, plain HTTP/1.1, round robin, no ejection or picker of its own),
the rule cluster holds the upstream's endpoints instead of the hop.

Each backendRef is one locality of the rule cluster (weighted by the backendRef's weight, so a backend's share
does not depend on how many endpoints it has; a hop is a locality of one host), so priorities, weights,
outlier ejection and retries to another priority or host apply to a backend's endpoints exactly as they
applied to its hop.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane import ir

RULE_CONNECT_TIMEOUT_SECONDS = 10.0
"""The rule cluster's connect timeout; an upstream with another one keeps its hop."""


@dataclass(frozen=True, slots=True)
class Locality:
    """One backendRef (or a pool member) of a rule: its hosts are its hop, or its upstream's endpoints."""

    name: str
    weight: int
    priority: int
    hosts: tuple[ir.SocketEndpoint | ir.InternalEndpoint, ...]
    backend: str | None = None
    """``ir.WeightedEndpoint.backend``, on each of the hosts."""


@dataclass(frozen=True, slots=True)
class RulePath:
    """What a rule cluster's load assignment is made of."""

    cluster: str
    localities: tuple[Locality, ...]


@dataclass(frozen=True, slots=True)
class DataPath:
    hops: tuple[ir.BackendHop, ...]
    """Only the hops some rule still sends to, in ``infra.hops`` order."""
    rules: tuple[RulePath, ...]
    """One per rule cluster, in ``infra.rule_clusters`` order."""


def data_path(infra: ir.Infra) -> DataPath:
    hops = {hop.name: hop for hop in infra.hops}
    upstreams = {upstream.name: upstream for upstream in infra.upstreams}
    used: set[str] = set()
    rules = []
    for cluster in infra.rule_clusters:
        localities: list[Locality] = []
        for endpoint in cluster.endpoints:
            target = endpoint.target
            hosts: tuple[ir.SocketEndpoint | ir.InternalEndpoint, ...] = (target,)
            name = f"{cluster.name}/{len(localities)}"
            if isinstance(target, ir.InternalEndpoint):
                name = target.listener
                direct = _direct_hosts(hops.get(target.listener), upstreams)
                if direct is None:
                    used.add(target.listener)
                else:
                    hosts = direct
            localities.append(
                Locality(
                    name=name,
                    weight=endpoint.weight,
                    priority=endpoint.priority,
                    hosts=hosts,
                    backend=endpoint.backend,
                )
            )
        rules.append(RulePath(cluster=cluster.name, localities=tuple(localities)))
    return DataPath(hops=tuple(hop for hop in infra.hops if hop.name in used), rules=tuple(rules))


def _direct_hosts(
    hop: ir.BackendHop | None, upstreams: dict[str, ir.UpstreamCluster]
) -> tuple[ir.SocketEndpoint, ...] | None:
    """The endpoints the rule cluster holds instead of ``hop``; None when the hop has to run."""
    if hop is None or hop.works_per_attempt:
        return None
    upstream = upstreams.get(hop.upstream_cluster)
    if upstream is None or not reachable_directly(upstream):
        return None
    return upstream.endpoints


def reachable_directly(upstream: ir.UpstreamCluster) -> bool:
    """Whether the rule cluster can send to ``upstream``'s endpoints itself, with nothing lost: it speaks
    plain HTTP/1.1 with round robin and its own connect timeout, and knows only addresses from EDS."""
    return (
        upstream.discovery is ir.DiscoveryType.EDS
        and upstream.tls is None
        and not upstream.http2
        and not upstream.picked_endpoint
        and upstream.balancing is ir.Balancing.ROUND_ROBIN
        and upstream.outlier is None
        and upstream.connect_timeout_seconds == RULE_CONNECT_TIMEOUT_SECONDS
    )
