"""What one Envoy holds, per type, and the make-before-break planner that decides what it gets next.

Both protocol variants share this logic; they differ only in how a plan becomes a response (the whole set for
state of the world, a diff for delta) and in how an ACK updates the knowledge.

The rule: a resource version is sent only once everything it depends on, and everything the resources Envoy
will fetch for it (a listener's routes, a cluster's endpoints) depend on, is *ready* on this stream (Envoy
ACKed it and whatever Envoy warms it on, transitively); until then the stream keeps the version Envoy already
holds, or leaves a new resource out. A resource is removed only once nothing Envoy holds depends on it (a
listener Envoy is still draining included). Listeners also compete for socket addresses: one renamed on the
same port must replace the old one in the same response (Envoy then hands the socket over), so the old one
stays while its successor waits, and no new listener is sent onto an address an old one still holds.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from controlplane.xds.cache import Snapshot
from controlplane.xds.content import XdsResource
from controlplane.xds.resource import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    TYPE_URLS,
    WILDCARD_TYPES,
    ResourceKey,
)
from controlplane.xds.server.type_state import InFlight, TypeState


class _Choice(enum.Enum):
    SEND = "send"
    WAIT = "wait"  # a dependency is on its way: keep what Envoy has (and the address it listens on)
    HOLD = "hold"  # refused or blocked for good: keep what Envoy has


class StreamState:
    """All types of one stream."""

    def __init__(self) -> None:
        self.types = {type_url: TypeState(type_url, type_url in WILDCARD_TYPES) for type_url in TYPE_URLS}
        # (deadline, keys): what listener versions Envoy is still draining use. Envoy serves the open
        # connections of a replaced or removed listener with its old filter chains (and the route
        # configuration they last had) until its drain time ends, so their clusters must stay until then.
        self.draining: list[tuple[float, frozenset[ResourceKey]]] = []
        # The highest response sequence number Envoy has answered: it has processed every earlier response.
        self.answered_through = 0

    def plan(self, snapshot: Snapshot, *, now: float) -> Planner:
        for state in self.types.values():
            state.forget_stale_rejections(snapshot)
        self.draining = [(deadline, keys) for deadline, keys in self.draining if deadline > now]
        kept: set[ResourceKey] = set()
        for _, keys in self.draining:
            kept.update(keys)
        return Planner(self.types, snapshot, kept=kept, answered_through=self.answered_through)

    def drain_replaced_listeners(self, in_flight: InFlight, *, full: bool, until: float) -> bool:
        """Keep what the listener versions this response replaces or removes depend on, until `until`.

        `full`: the response is a state-of-the-world set (a listener left out is removed). Returns whether
        anything is being drained.
        """
        listeners = self.types[LISTENER]
        gone = set(in_flight.removed)
        if full:
            gone.update(name for name in listeners.acked if name not in in_flight.sent)
        gone.update(
            name
            for name, resource in in_flight.sent.items()
            if name in listeners.acked and listeners.acked[name].version != resource.version
        )
        keys: set[ResourceKey] = set()
        routes = self.types[ROUTE]
        for name in gone:
            old = listeners.acked[name]
            keys.update(old.dependencies)
            for key in old.warming:
                route = routes.acked.get(key.name) if key.type_url == ROUTE else None
                if route is not None:
                    keys.update(route.dependencies)
        if keys:
            self.draining.append((until, frozenset(keys)))
        return bool(keys)


class Planner:
    """One planning pass: what each type's content should be after the next response."""

    def __init__(
        self,
        types: Mapping[str, TypeState],
        snapshot: Snapshot,
        *,
        kept: set[ResourceKey],
        answered_through: int,
    ) -> None:
        self._types = types
        self._snapshot = snapshot
        self._answered_through = answered_through
        self._ready: dict[ResourceKey, bool] = {}
        self._kept = kept
        self._referenced: set[ResourceKey] | None = None
        # Resources going out in the reply being planned, counted as held by `_first_listeners`.
        self._provisional: set[ResourceKey] = set()

    def work(self, type_url: str, *, enough: int) -> int:
        """About how many names and references ``target`` will look at, counted up to ``enough``: every name
        of the type (unless only those that may have changed since the last plan need a look) and what each
        of them refers to (a listener's route configuration names thousands of clusters)."""
        state = self._types[type_url]
        available = self._snapshot.get(type_url)
        replaced = self._replaced(state)
        names = available.keys() if replaced is None else replaced | state.unsettled
        work = len(names) + len(state.acked) if replaced is None else len(names)
        for name in names:
            if work >= enough:
                break
            resource = available.get(name)
            if resource is not None:
                work += len(resource.dependencies) + sum(
                    len(fetched.dependencies)
                    for fetched in map(self._snapshot.find, resource.warming)
                    if fetched is not None
                )
        return work

    def _replaced(self, state: TypeState) -> frozenset[str] | None:
        """The names replaced since ``state`` was last planned; None when every name needs a look."""
        if state.planned_on is None or not state.known:
            return None
        return self._snapshot.replaced_since(state.type_url, state.planned_on)

    def target(self, type_url: str) -> dict[str, XdsResource] | None:
        """The content Envoy should hold for `type_url`; None means "send nothing for now"."""
        state = self._types[type_url]
        available = self._snapshot.get(type_url)
        replaced = self._replaced(state)
        target: dict[str, XdsResource]
        names: Iterable[str]
        if replaced is not None:
            # Only what may differ from what Envoy holds is planned again; the rest stays as it is.
            candidates = state.unsettled | replaced
            target = dict(state.acked)
            for name in candidates.union(() if state.wildcard else target.keys() - state.names):
                target.pop(name, None)
            names = sorted(
                name for name in candidates if name in available and (state.wildcard or name in state.names)
            )
        else:
            target = {}
            if state.wildcard:
                names = available
            elif len(state.names) < len(available):
                names = sorted(state.names.intersection(available))
            else:  # the snapshot is sorted by name already
                names = [name for name in available if name in state.names]
            if type_url == LISTENER and not state.last_nonce and not state.acked and state.known:
                state.forget_plan()
                return self._first_listeners([available[name] for name in names])
        unsettled: set[str] = set()
        wanted_addresses: set[str] = set()
        for name in names:
            wanted = available[name]
            current = state.acked.get(name)
            # Unchanged content is usually the very same (interned) object.
            if current is wanted or (current is not None and current.version == wanted.version):
                target[name] = current
                continue
            unsettled.add(name)
            choice = self._choose(state, wanted)
            if choice is _Choice.SEND:
                target[name] = wanted
                continue
            if choice is _Choice.WAIT:
                wanted_addresses.update(wanted.binds)
            if current is not None:
                target[name] = current
            elif choice is _Choice.WAIT and not state.known:
                state.forget_plan()
                return None
        leaving: set[str] = set()
        # Usually none: no pass over everything Envoy holds.
        going = (
            state.held_names() - target.keys()
            if replaced is None
            else {name for name in candidates if name not in target and state.holds(name) is not None}
        )
        unsettled.update(going)
        for resource in state.held() if going else ():
            if resource.name not in going:
                continue
            # A listener leaves only once its successor on the same address can come in the same response.
            if resource.key in self._referenced_keys() or not resource.binds.isdisjoint(wanted_addresses):
                target[resource.name] = resource
                leaving.update(resource.binds)
        if leaving:
            self._keep_off(state, target, leaving)
        state.planned_on, state.unsettled = (available, unsettled) if state.known else (None, set())
        return target

    def _first_listeners(self, wanted: list[XdsResource]) -> dict[str, XdsResource] | None:
        """The first listener reply to a proxy holding none: the whole set, or nothing yet.

        Envoy reports ready once that reply is in, so a reply without a listener that is merely on its
        way would make a proxy ready that refuses its traffic (Envoy's initial fetch timeout bounds the
        wait). A listener may wait on another going out in this very reply (a backend hop reached
        through an endpoint): those count as held, pass after pass, until nothing more can join.
        """
        state = self._types[LISTENER]
        target: dict[str, XdsResource] = {}
        pending = list(wanted)
        while pending:
            waiting = []
            for resource in pending:
                choice = self._choose(state, resource)
                if choice is _Choice.SEND:
                    target[resource.name] = resource
                elif choice is _Choice.WAIT:
                    waiting.append(resource)
            if len(waiting) == len(pending):
                return None
            pending = waiting
            self._provisional.update(resource.key for resource in target.values())
            self._ready.clear()
        return target

    def _referenced_keys(self) -> set[ResourceKey]:
        """What Envoy's resources (and draining listeners) use; computed only when something may go."""
        if self._referenced is None:
            self._referenced = set(self._kept)
            for state in self._types.values():
                for resource in state.held():
                    self._referenced.update(resource.dependencies)
                    self._referenced.update(resource.warming)
        return self._referenced

    @staticmethod
    def _keep_off(state: TypeState, target: dict[str, XdsResource], taken: set[str]) -> None:
        """Undo new versions that would bind an address a resource on its way out still holds."""
        for name, resource in list(target.items()):
            current = state.acked.get(name)
            if resource is current or resource.binds.isdisjoint(taken):
                continue
            if current is not None and current.binds == resource.binds:
                continue
            if current is not None:
                target[name] = current
            else:
                del target[name]

    def _choose(self, state: TypeState, resource: XdsResource) -> _Choice:
        if (resource.name, resource.version) in state.rejected:
            return _Choice.HOLD
        # What Envoy will ask for once it has this resource (a listener's routes, a cluster's endpoints)
        # must then be sendable at once, or Envoy would warm it, or serve it, without them.
        keys = set(resource.dependencies)
        for key in resource.warming:
            fetched = self._snapshot.find(key)
            if fetched is not None:
                keys.update(fetched.dependencies)
        choice = _Choice.SEND
        for key in keys:
            dependency = self._dependency_choice(key)
            if dependency is _Choice.WAIT:
                return _Choice.WAIT
            if dependency is _Choice.HOLD:
                choice = _Choice.HOLD
        return choice

    def _dependency_choice(self, key: ResourceKey) -> _Choice:
        if self._is_ready(key):
            return _Choice.SEND
        state = self._types[key.type_url]
        if not state.subscribed:
            # Envoy asks for some types only after others are warm (listeners after clusters at start-up):
            # waiting for a type it has not asked for would never end.
            return _Choice.SEND
        wanted = self._snapshot.find(key)
        if wanted is None or (wanted.name, wanted.version) in state.rejected:
            return _Choice.HOLD
        return _Choice.WAIT

    def _is_ready(self, key: ResourceKey) -> bool:
        known = self._ready.get(key)
        if known is not None:
            return known
        held = self._types[key.type_url].holds(key.name)
        if held is None and key.type_url == CLUSTER:
            held = self._cluster_taken_in(key.name)
        if held is None and key in self._provisional:
            held = self._snapshot.find(key)
        elif held is None and self._provisional and not self._types[key.type_url].subscribed:
            # Planning a first reply: what its listeners need of a type Envoy has not asked for yet
            # (their secrets, their routes) is fetched by Envoy once it has them, and Envoy reports
            # ready only after its first listeners have it.
            held = self._snapshot.find(key)
        if held is None:
            self._ready[key] = False
            return False
        # Optimistic while visiting, so that a reference cycle does not recurse forever.
        self._ready[key] = True
        ready = all(self._is_ready(other) for other in (*held.warming, *held.dependencies))
        self._ready[key] = ready
        return ready

    def _cluster_taken_in(self, name: str) -> XdsResource | None:
        """A cluster of the CDS response awaiting its ACK, if Envoy shows it has it.

        Envoy ACKs a CDS response only once every cluster it added has warmed, and a cluster can warm on
        something that waits for another cluster of the same response (a load assignment naming an internal
        listener whose routes use that other cluster): waiting for the ACK could wait forever. An EDS cluster
        is in once its load assignment is ACKed (only a cluster Envoy created asks for it); another cluster
        once Envoy answered a later response (it processed this one).
        """
        in_flight = self._types[CLUSTER].in_flight
        resource = in_flight.sent.get(name) if in_flight is not None else None
        if in_flight is None or resource is None:
            return None
        fetches_endpoints = any(key.type_url == ENDPOINT for key in resource.warming)
        return resource if fetches_endpoints or self._answered_through > in_flight.sequence else None
