"""Which backend hops Envoy runs: a hop that does nothing per attempt is left out of the data path.

A backendRef's hop (an internal listener, ``listener.hop_listener``) costs every request that reaches it a
second connection manager, route lookup and upstream connection inside Envoy: measured on Envoy 1.40 with
one worker, a priority-failover rule went from 7.8k to 5.5k requests/s with it. A hop earns that only when
it does something for the attempt that landed on its backend (``ir.BackendHop.works_per_attempt``). When it
does nothing and its upstream is one the rule cluster can reach just as well (``reachable_directly``: the
endpoints are addresses delivered by EDS, plain HTTP/1.1, round robin, no ejection or picker of its own),
the rule cluster holds the upstream's endpoints instead of the hop. An upstream cluster (and its load
assignment) is served only while a hop still in the data path sends to it or asks it for a pick (an endpoint
picker's cluster): one whose every hop gave way is a cluster Envoy would build, update and keep stats of
with no traffic ever, as Envoy Gateway serves no cluster nothing names (at 5,000 routes, two thirds of all
resources).

Each backendRef is one locality of the rule cluster (weighted by the backendRef's weight, so a backend's share
does not depend on how many endpoints it has; a hop is a locality of one host), so priorities, weights,
outlier ejection and retries to another priority or host apply to a backend's endpoints exactly as they
applied to its hop.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from controlplane import ir
from controlplane.heap import release_gradually
from controlplane.replaced import name_of, replaced_in_place, replaced_positions

_T = TypeVar("_T")

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
    upstreams: tuple[ir.UpstreamCluster, ...]
    """Only the upstream clusters a hop in ``hops`` sends to or asks (its picker), in ``infra.upstreams``
    order: no route, listener or load assignment names any other."""
    eds_upstreams: tuple[ir.UpstreamCluster, ...]
    """Those of ``upstreams`` whose endpoints come over EDS (the others carry their own)."""


@dataclass(frozen=True, slots=True)
class _Worked:
    """A rule's path with the names of what it was worked out from besides its cluster."""

    cluster: ir.RuleCluster
    path: RulePath
    reads: tuple[str, ...]
    """The hops its cluster names and their upstreams (``_read`` keys)."""
    runs: tuple[str, ...]
    """The hops this rule still sends to."""


def _cluster_of(path: RulePath) -> str:
    return path.cluster


def _read(table: str, name: str) -> str:
    return f"{table}\0{name}"


class DataPaths:
    """``data_path`` for a sequence of IRs. When the IR's rule clusters, hops and upstreams are the previous
    IR's with some replaced in place (the same names), only the rules whose cluster, or a hop or upstream
    it reads, was replaced are worked out again (found through an index of who reads what); the others
    keep their ``RulePath`` objects, so their load assignments are reused by identity. The path's tables
    (running hops, used and EDS upstreams, rules) get their replaced entries put in by remembered places
    (``_Places``) unless which hops run, or what they send to, changed."""

    def __init__(self) -> None:
        self._infra: ir.Infra | None = None
        self._path = DataPath(hops=(), rules=(), upstreams=(), eds_upstreams=())
        self._hops: dict[str, ir.BackendHop] = {}
        self._upstreams: dict[str, ir.UpstreamCluster] = {}
        self._worked: dict[str, _Worked] = {}
        self._readers: dict[str, set[str]] = defaultdict(set)
        """By ``_read`` key: the rule clusters reading that hop or upstream."""
        self._running: Counter[str] = Counter()
        """How many rules send to each hop."""
        self._rule_places: _Places[RulePath] = _Places(_cluster_of)
        self._hop_places: _Places[ir.BackendHop] = _Places(name_of)
        self._used_places: _Places[ir.UpstreamCluster] = _Places(name_of)
        self._eds_places: _Places[ir.UpstreamCluster] = _Places(name_of)

    def release(self) -> None:
        """Forgets every path, one entry at a time (``heap.release_gradually``): for the last call."""
        self._infra, self._path = None, DataPath(hops=(), rules=(), upstreams=(), eds_upstreams=())
        places = (self._rule_places, self._hop_places, self._used_places, self._eds_places)
        release_gradually(
            self._worked,
            self._readers,
            self._hops,
            self._upstreams,
            self._running,
            *(table.index for table in places),
        )

    def __call__(self, infra: ir.Infra) -> DataPath:
        # Noted again once the path is made: after a call that raised, the next one starts from scratch.
        last, self._infra = self._infra, None
        self._path = self._next(last, infra)
        self._infra = infra
        return self._path

    def _next(self, last: ir.Infra | None, infra: ir.Infra) -> DataPath:
        hops = replaced_in_place(last.hops, infra.hops) if last is not None else None
        upstreams = replaced_in_place(last.upstreams, infra.upstreams) if last is not None else None
        clusters = replaced_in_place(last.rule_clusters, infra.rule_clusters) if last is not None else None
        if hops is None or upstreams is None or clusters is None:
            return self._from_scratch(infra)
        self._hops.update((hop.name, hop) for hop in hops)
        self._upstreams.update((upstream.name, upstream) for upstream in upstreams)
        replaced = {cluster.name: cluster for cluster in clusters}
        dirty = set(replaced)
        for key in (*(_read("hop", hop.name) for hop in hops), *(_read("up", u.name) for u in upstreams)):
            dirty.update(self._readers.get(key, ()))
        runs_changed = False
        for name in dirty:
            before = self._worked[name]
            worked = self._work(replaced.get(name, before.cluster))
            self._forget(before)
            self._remember(worked)
            runs_changed = runs_changed or worked.runs != before.runs
        path = self._path
        running = path.hops
        if runs_changed or not self._same_sends(hops):
            running, used = self._running_hops(infra)
        else:  # the same hops send to the same upstreams; some of either may have been replaced in place
            running = self._hop_places.patched(running, hops)
            used = self._used_places.patched(path.upstreams, upstreams)
        rules = path.rules
        if dirty:
            rules = self._rule_places.patched(rules, [self._worked[name].path for name in dirty])
        return self._placed(running, used, rules, previous=path)

    def _same_sends(self, hops: list[ir.BackendHop]) -> bool:
        """Whether the hops replaced in place that run send to and ask the same upstreams as before."""
        for hop in hops:
            index = self._hop_places.index.get(hop.name)
            if index is not None and _sends_to(self._path.hops[index]) != _sends_to(hop):
                return False
        return True

    def _placed(
        self,
        running: tuple[ir.BackendHop, ...],
        used: tuple[ir.UpstreamCluster, ...],
        rules: tuple[RulePath, ...],
        *,
        previous: DataPath | None,
    ) -> DataPath:
        """The path of these tables, with the EDS upstreams carried over
        from ``previous`` when ``used`` is the same objects, or replaced in place without leaving or
        joining EDS."""
        if previous is not None and used is previous.upstreams:
            eds = previous.eds_upstreams
        elif previous is not None and _same_discovery(previous.upstreams, used):
            eds = self._eds_places.patched(
                previous.eds_upstreams, [used[i] for i in replaced_positions(previous.upstreams, used)]
            )
        else:
            eds = _eds(used)
            self._eds_places.note(eds)
        return DataPath(hops=running, rules=rules, upstreams=used, eds_upstreams=eds)

    def _from_scratch(self, infra: ir.Infra) -> DataPath:
        self._hops = {hop.name: hop for hop in infra.hops}
        self._upstreams = {upstream.name: upstream for upstream in infra.upstreams}
        self._worked, self._readers, self._running = {}, defaultdict(set), Counter()
        rules = []
        for cluster in infra.rule_clusters:
            worked = self._work(cluster)
            self._remember(worked)
            rules.append(worked.path)
        self._rule_places.note(rules)
        return self._placed(*self._running_hops(infra), tuple(rules), previous=None)

    def _running_hops(
        self, infra: ir.Infra
    ) -> tuple[tuple[ir.BackendHop, ...], tuple[ir.UpstreamCluster, ...]]:
        """The hops some rule sends to and the upstreams they use, their places noted."""
        running = tuple(hop for hop in infra.hops if self._running[hop.name] > 0)
        used = _used_upstreams(running, infra.upstreams)
        self._hop_places.note(running)
        self._used_places.note(used)
        return running, used

    def _remember(self, worked: _Worked) -> None:
        self._worked[worked.cluster.name] = worked
        for key in worked.reads:
            self._readers[key].add(worked.cluster.name)
        if worked.runs:  # most rules run no hop: ``Counter.update`` is Python code even for nothing
            self._running.update(worked.runs)

    def _forget(self, worked: _Worked) -> None:
        for key in worked.reads:
            self._readers[key].discard(worked.cluster.name)
        if worked.runs:
            self._running.subtract(worked.runs)

    def _work(self, cluster: ir.RuleCluster) -> _Worked:
        localities: list[Locality] = []
        reads: list[str] = []
        runs: list[str] = []
        for endpoint in cluster.endpoints:
            target = endpoint.target
            hosts: tuple[ir.SocketEndpoint | ir.InternalEndpoint, ...] = (target,)
            if isinstance(target, ir.InternalEndpoint):
                name = target.listener
                hop = self._hops.get(target.listener)
                reads.append(_read("hop", target.listener))
                if hop is not None:
                    reads.append(_read("up", hop.upstream_cluster))
                direct = _direct_hosts(hop, self._upstreams)
                if direct is None:
                    runs.append(target.listener)
                else:
                    hosts = direct
            else:
                name = f"{cluster.name}/{len(localities)}"
            localities.append(
                Locality(
                    name=name,
                    weight=endpoint.weight,
                    priority=endpoint.priority,
                    hosts=hosts,
                    backend=endpoint.backend,
                )
            )
        path = RulePath(cluster=cluster.name, localities=tuple(localities))
        return _Worked(cluster, path, tuple(reads), tuple(runs))


def data_path(infra: ir.Infra) -> DataPath:
    return DataPaths()(infra)


def _used_upstreams(
    running: tuple[ir.BackendHop, ...], upstreams: tuple[ir.UpstreamCluster, ...]
) -> tuple[ir.UpstreamCluster, ...]:
    """The upstream clusters the ``running`` hops send to or ask for a pick, in ``upstreams`` order."""
    names = {hop.upstream_cluster for hop in running}
    names.update(hop.picker.cluster for hop in running if hop.picker is not None)
    return tuple(upstream for upstream in upstreams if upstream.name in names)


def _sends_to(hop: ir.BackendHop) -> tuple[str, str | None]:
    return hop.upstream_cluster, hop.picker.cluster if hop.picker is not None else None


class _Places(Generic[_T]):
    """Where each name is in a table the path keeps (by the name of its entries), so entries replaced in
    place are put in by position: a change costs a copy of the table in C, not a Python step per entry."""

    def __init__(self, name: Callable[[_T], str]) -> None:
        self._name = name
        self.index: dict[str, int] = {}

    def note(self, table: Sequence[_T]) -> None:
        self.index = {self._name(entry): place for place, entry in enumerate(table)}

    def patched(self, table: tuple[_T, ...], replaced: Sequence[_T]) -> tuple[_T, ...]:
        """``table`` with those of ``replaced`` it names put in their places (others are not in it);
        ``table`` itself when it names none, so an unchanged table stays the same object."""
        places = [(self.index.get(self._name(entry)), entry) for entry in replaced]
        found = [(place, entry) for place, entry in places if place is not None]
        if not found:
            return table
        entries = list(table)
        for place, entry in found:
            entries[place] = entry
        return tuple(entries)


def _same_discovery(before: tuple[ir.UpstreamCluster, ...], now: tuple[ir.UpstreamCluster, ...]) -> bool:
    """Whether ``now`` is ``before`` with some replaced in place, none leaving or joining EDS."""
    if len(before) != len(now):
        return False
    return all(
        before[i].name == now[i].name
        and (before[i].discovery is ir.DiscoveryType.EDS) == (now[i].discovery is ir.DiscoveryType.EDS)
        for i in replaced_positions(before, now)
    )


def _eds(upstreams: tuple[ir.UpstreamCluster, ...]) -> tuple[ir.UpstreamCluster, ...]:
    return tuple(upstream for upstream in upstreams if upstream.discovery is ir.DiscoveryType.EDS)


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
