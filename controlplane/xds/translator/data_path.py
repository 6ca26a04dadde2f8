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


@dataclass(frozen=True, slots=True)
class _Worked:
    """A rule's path with what it was worked out from: its cluster, and each hop it names with that hop's
    upstream (None where missing), in endpoint order."""

    cluster: ir.RuleCluster
    read: tuple[ir.BackendHop | ir.UpstreamCluster | None, ...]
    path: RulePath
    runs: tuple[str, ...]
    """The hops this rule still sends to."""


class DataPaths:
    """``data_path`` for a sequence of IRs: a rule whose cluster, hops and upstreams are the same objects as
    in the previous IR keeps its ``RulePath`` object (so its load assignment is reused by identity)."""

    def __init__(self) -> None:
        self._worked: dict[str, _Worked] = {}

    def __call__(self, infra: ir.Infra) -> DataPath:
        hops = {hop.name: hop for hop in infra.hops}
        upstreams = {upstream.name: upstream for upstream in infra.upstreams}
        previous, worked = self._worked, {}
        used: set[str] = set()
        rules: list[RulePath] = []
        for cluster in infra.rule_clusters:
            read = _reads(cluster, hops, upstreams)
            kept = previous.get(cluster.name)
            if kept is None or kept.cluster is not cluster or kept.read != read:
                kept = _work(cluster, hops, upstreams, read)
            worked[cluster.name] = kept
            used.update(kept.runs)
            rules.append(kept.path)
        self._worked = worked
        return DataPath(hops=tuple(hop for hop in infra.hops if hop.name in used), rules=tuple(rules))


def data_path(infra: ir.Infra) -> DataPath:
    return DataPaths()(infra)


def _reads(
    cluster: ir.RuleCluster, hops: dict[str, ir.BackendHop], upstreams: dict[str, ir.UpstreamCluster]
) -> tuple[ir.BackendHop | ir.UpstreamCluster | None, ...]:
    read: list[ir.BackendHop | ir.UpstreamCluster | None] = []
    for endpoint in cluster.endpoints:
        if isinstance(endpoint.target, ir.InternalEndpoint):
            hop = hops.get(endpoint.target.listener)
            read += (hop, None if hop is None else upstreams.get(hop.upstream_cluster))
    return tuple(read)


def _work(
    cluster: ir.RuleCluster,
    hops: dict[str, ir.BackendHop],
    upstreams: dict[str, ir.UpstreamCluster],
    read: tuple[ir.BackendHop | ir.UpstreamCluster | None, ...],
) -> _Worked:
    localities: list[Locality] = []
    runs: list[str] = []
    for endpoint in cluster.endpoints:
        target = endpoint.target
        hosts: tuple[ir.SocketEndpoint | ir.InternalEndpoint, ...] = (target,)
        name = f"{cluster.name}/{len(localities)}"
        if isinstance(target, ir.InternalEndpoint):
            name = target.listener
            direct = _direct_hosts(hops.get(target.listener), upstreams)
            if direct is None:
                runs.append(target.listener)
            else:
                hosts = direct
        localities.append(
            Locality(name=name, weight=endpoint.weight, priority=endpoint.priority, hosts=hosts)
        )
    path = RulePath(cluster=cluster.name, localities=tuple(localities))
    return _Worked(cluster, read, path, tuple(runs))


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
