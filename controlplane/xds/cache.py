"""Snapshots of Envoy configuration and the cache that hands them to proxies by node group.

A `Snapshot` is an immutable set of resources per type URL, each versioned by its content hash. The
`SnapshotCache` keeps one snapshot per node group and refuses a snapshot that Envoy could not use as a whole
(a route naming a missing cluster, an EDS cluster with no load assignment, ...), keeping the previous one. A
proxy is served the snapshot of the group named by its node id, else by its node cluster, else the default
group, so any Envoy pointed at the server works without registering first. Watchers (the server's streams)
are told when a group changes; they may live on another thread or event loop, so they are called with no
lock held and must only schedule work.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Protocol

from google.protobuf.message import Message

from controlplane.replaced import replaced_in_place
from controlplane.xds.content import XdsResource, version_digest
from controlplane.xds.resource import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    SECRET,
    TYPE_URLS,
    ResourceKey,
    short_type_name,
)


class InconsistentSnapshotError(ValueError):
    """A snapshot refused by `SnapshotCache.set_snapshot`; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Resources by type URL and name. Build with `from_resources`."""

    resources: Mapping[str, Mapping[str, XdsResource]]
    type_versions: Mapping[str, str]
    version: str
    given: Mapping[str, tuple[XdsResource, ...]] = field(default_factory=dict, repr=False)
    """What ``from_built`` was given, per type and in that order: the next build tells from it which types
    are unchanged."""
    since: _Since | None = field(default=None, repr=False)
    """Set by ``from_built`` when only some resources were replaced by ones of the same names and no
    listener changed: the consistency check then looks at those only."""
    type_sums: Mapping[str, int] = field(default_factory=dict, repr=False)
    """Per type, the sum of its resources' ``_entry_digest`` that ``type_versions`` is made from: a snapshot
    replacing a few resources in place adjusts it by those instead of hashing every resource again."""
    lineage: Mapping[str, tuple[tuple[Mapping[str, XdsResource], frozenset[str]], ...]] = field(
        default_factory=dict, repr=False
    )
    """Per type, the mappings of recent earlier snapshots this type's mapping was made from by replacing
    resources in place (the newest first, at most ``_LINEAGE``), each with the names replaced since: a
    stream that planned against one of them looks at those names only (``replaced_since``)."""

    @classmethod
    def from_resources(
        cls,
        by_type: Mapping[str, Iterable[Message]] | None = None,
        /,
        *,
        listeners: Iterable[Message] = (),
        routes: Iterable[Message] = (),
        clusters: Iterable[Message] = (),
        endpoints: Iterable[Message] = (),
        secrets: Iterable[Message] = (),
    ) -> Snapshot:
        """Build a snapshot from messages, given by keyword or as a mapping ``{type_url: messages}``.

        Names come from the messages; two resources of one type with the same name are an error.
        """
        grouped: dict[str, list[Message]] = {type_url: [] for type_url in TYPE_URLS}
        for type_url, messages in (by_type or {}).items():
            if type_url not in grouped:
                raise ValueError(f"unsupported type URL {type_url!r}")
            grouped[type_url].extend(messages)
        for type_url, messages in (
            (LISTENER, listeners),
            (ROUTE, routes),
            (CLUSTER, clusters),
            (ENDPOINT, endpoints),
            (SECRET, secrets),
        ):
            grouped[type_url].extend(messages)
        return cls.from_built(
            {
                type_url: [XdsResource.build(type_url, message) for message in messages]
                for type_url, messages in grouped.items()
            }
        )

    @classmethod
    def from_built(
        cls, by_type: Mapping[str, Iterable[XdsResource]], *, previous: Snapshot | None = None
    ) -> Snapshot:
        """Build a snapshot from prepared resources ``{type_url: resources}``; two resources of one type
        with the same name, or a resource given under a type URL that is not its own, are an error (a
        state-of-the-world response labels every resource with the type it was filed under). A type given
        the very same resources in the same order as to ``previous`` takes its resources and version from
        there, without sorting or hashing them again."""
        unsupported = set(by_type) - set(TYPE_URLS)
        if unsupported:
            raise ValueError(f"unsupported type URL {sorted(unsupported)[0]!r}")
        resources: dict[str, Mapping[str, XdsResource]] = {}
        type_versions: dict[str, str] = {}
        type_sums: dict[str, int] = {}
        given: dict[str, tuple[XdsResource, ...]] = {}
        lineage: dict[str, tuple[tuple[Mapping[str, XdsResource], frozenset[str]], ...]] = {}
        replaced: set[ResourceKey] | None = set() if previous is not None else None
        for type_url in TYPE_URLS:
            given[type_url] = tuple(by_type.get(type_url, ()))
            before = previous.given.get(type_url) if previous is not None else None
            if previous is not None and before == given[type_url]:
                resources[type_url] = previous.resources[type_url]
                type_versions[type_url] = previous.type_versions[type_url]
                type_sums[type_url] = previous.type_sums[type_url]
                lineage[type_url] = previous.lineage.get(type_url, ())
                continue
            renewed = replaced_in_place(before, given[type_url]) if before is not None else None
            if previous is not None and renewed is not None:
                # The same names in the same places: last time's mapping, with the new resources put in.
                _check_filed_under(type_url, renewed)
                earlier = previous.resources[type_url]
                by_name = dict(earlier)
                by_name.update((resource.name, resource) for resource in renewed)
                resources[type_url] = MappingProxyType(by_name)
                type_sums[type_url] = (
                    previous.type_sums[type_url]
                    - sum(_entry_digest(earlier[resource.name]) for resource in renewed)
                    + sum(_entry_digest(resource) for resource in renewed)
                ) % _SUM_MODULUS
                names = frozenset(resource.name for resource in renewed)
                lineage[type_url] = (
                    (previous.resources[type_url], names),
                    *((earlier, since | names) for earlier, since in previous.lineage.get(type_url, ())),
                )[:_LINEAGE]
            else:
                resources[type_url] = MappingProxyType(_by_name(type_url, given[type_url]))
                type_sums[type_url] = sum(map(_entry_digest, resources[type_url].values())) % _SUM_MODULUS
            type_versions[type_url] = version_digest(type_sums[type_url].to_bytes(_SUM_BYTES))
            if replaced is not None and renewed is not None and type_url != LISTENER:
                replaced.update(resource.key for resource in renewed)
            else:
                replaced = None
        overall = "".join(f"{type_url}={type_versions[type_url]};" for type_url in TYPE_URLS)
        # The previous snapshot's findings if it was checked (``set_snapshot`` checks every snapshot).
        checked = previous.__dict__.get("_problems_by_resource") if previous is not None else None
        return cls(
            resources=MappingProxyType(resources),
            type_versions=MappingProxyType(type_versions),
            type_sums=MappingProxyType(type_sums),
            version=version_digest(overall.encode()),
            given=MappingProxyType(given),
            lineage=MappingProxyType(lineage),
            since=_Since(checked, frozenset(replaced))
            if checked is not None and replaced is not None
            else None,
        )

    def get(self, type_url: str) -> Mapping[str, XdsResource]:
        """Resources of one type by name (empty for a type the snapshot has none of)."""
        return self.resources.get(type_url, _EMPTY)

    def find(self, key: ResourceKey) -> XdsResource | None:
        return self.get(key.type_url).get(key.name)

    def replaced_since(self, type_url: str, earlier: Mapping[str, XdsResource]) -> frozenset[str] | None:
        """The names of ``type_url`` whose resources differ from those of ``earlier`` (the mapping ``get``
        gave on a recent snapshot), when this one has the same names; None when that is not known."""
        if earlier is self.get(type_url):
            return frozenset()
        return next((names for mapping, names in self.lineage.get(type_url, ()) if mapping is earlier), None)

    def consistency_problems(self) -> list[str]:
        """Why Envoy could not use this snapshot as a whole, one sentence per problem (empty when fine).

        Worked out once per snapshot (it is immutable), so whoever builds a snapshot off the event loop can
        pay for the check there and ``set_snapshot`` on the loop finds it done."""
        return list(self._consistency_problems)

    @cached_property
    def _consistency_problems(self) -> tuple[str, ...]:
        return tuple(sorted(problem for found in self._problems_by_resource.values() for problem in found))

    @cached_property
    def _problems_by_resource(self) -> Mapping[ResourceKey, tuple[str, ...]]:
        """Each resource's problems (only those with some). With the same names as the previous snapshot
        and the same listeners, a kept resource's references resolve as they did: only the replaced ones
        are checked again."""
        if self.since is not None:
            found = dict(self.since.checked)
            for key in self.since.replaced:
                found.pop(key, None)
                resource = self.find(key)
                problems = self._problems_of(resource) if resource is not None else ()
                if problems:
                    found[key] = problems
            return found
        found = {}
        for type_url in TYPE_URLS:
            for resource in self.get(type_url).values():
                problems = self._problems_of(resource)
                if problems:
                    found[resource.key] = problems
        return found

    def _problems_of(self, resource: XdsResource) -> tuple[str, ...]:
        problems = []
        for key in resource.dependencies:
            target = self.find(key)
            if target is None:
                problems.append(f"{_describe(resource.key)} names {_describe(key)}, which is not in it")
            elif key.type_url == LISTENER and not target.internal_listener:
                problems.append(f"{_describe(resource.key)} targets {_describe(key)}, not internal")
        if resource.type_url == CLUSTER:
            endpoints = self.get(ENDPOINT)
            for key in resource.warming:
                if key.type_url == ENDPOINT and key.name not in endpoints:
                    problems.append(f"EDS {_describe(resource.key)} has no load assignment {key.name!r}")
        return tuple(problems)


@dataclass(frozen=True, slots=True)
class _Since:
    """What a snapshot's consistency check starts from: the previous snapshot's findings, and which
    resources were replaced since (by ones of the same names)."""

    checked: Mapping[ResourceKey, tuple[str, ...]]
    replaced: frozenset[ResourceKey]


def _by_name(type_url: str, resources: tuple[XdsResource, ...]) -> dict[str, XdsResource]:
    _check_filed_under(type_url, resources)
    by_name: dict[str, XdsResource] = {}
    for resource in resources:
        if resource.name in by_name:
            raise ValueError(f"two {short_type_name(type_url)} resources named {resource.name!r}")
        by_name[resource.name] = resource
    # The names alone are sorted: sorting the (name, resource) pairs of thousands of resources held the GIL
    # (in one C call) several times as long, and the event loop waited meanwhile.
    return {name: by_name[name] for name in sorted(by_name)}


def _check_filed_under(type_url: str, resources: Iterable[XdsResource]) -> None:
    """Raise ValueError naming the first of ``resources`` whose own type URL is not ``type_url``."""
    for resource in resources:
        if resource.type_url != type_url:
            raise ValueError(
                f"resource {resource.name!r} of type {resource.type_url} given under type {type_url}"
            )


_EMPTY: Mapping[str, XdsResource] = MappingProxyType({})
_SUM_BYTES = 16
_SUM_MODULUS = 1 << (8 * _SUM_BYTES)


def _entry_digest(resource: XdsResource) -> int:
    """One resource's share of its type's version: a sum of these does not depend on order, so replacing
    a resource changes it by the difference of two digests."""
    digest = hashlib.blake2b(f"{resource.name}\0{resource.version}".encode(), digest_size=_SUM_BYTES)
    return int.from_bytes(digest.digest())


_LINEAGE = 4
"""How many earlier mappings of a type a snapshot remembers: a stream plans at most once per ACK, so it
may skip a few snapshots; each remembered mapping keeps its replaced resources alive."""


def _describe(key: ResourceKey) -> str:
    return f"{short_type_name(key.type_url)} {key.name!r}"


class SnapshotWatcher(Protocol):
    """Called (from whichever thread set the snapshot) with the group whose snapshot changed."""

    def __call__(self, group: str | None, /) -> None: ...


@dataclass(frozen=True)
class NodeSnapshot:
    """The group a node resolves to and that group's snapshot (None until one is set)."""

    group: str | None
    snapshot: Snapshot | None


class SnapshotCache:
    """Thread-safe store of one snapshot per node group; `None` is the default group."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[str | None, Snapshot] = {}
        self._watchers: dict[int, SnapshotWatcher] = {}
        self._next_watcher = 0

    def set_snapshot(self, snapshot: Snapshot, group: str | None = None) -> None:
        """Store `snapshot` for `group` and wake the watchers; an inconsistent one is refused."""
        problems = snapshot.consistency_problems()
        if problems:
            raise InconsistentSnapshotError("; ".join(problems))
        with self._lock:
            if self._snapshots.get(group) is not None and self._snapshots[group].version == snapshot.version:
                return
            self._snapshots[group] = snapshot
            watchers = list(self._watchers.values())
        for watcher in watchers:
            watcher(group)

    def clear_snapshot(self, group: str) -> None:
        """Forget a named group; its nodes fall back to their cluster's group or the default."""
        with self._lock:
            removed = self._snapshots.pop(group, None)
            watchers = list(self._watchers.values())
        if removed is not None:
            for watcher in watchers:
                watcher(group)

    def get_snapshot(self, group: str | None = None) -> Snapshot | None:
        with self._lock:
            return self._snapshots.get(group)

    def has_snapshots(self) -> bool:
        """Whether any group (the default included) has a snapshot yet."""
        with self._lock:
            return bool(self._snapshots)

    def for_node(self, *, node_id: str, node_cluster: str) -> NodeSnapshot:
        """The snapshot for a proxy: by node id, then node cluster, then the default group."""
        with self._lock:
            for group in (node_id, node_cluster):
                if group and group in self._snapshots:
                    return NodeSnapshot(group, self._snapshots[group])
            return NodeSnapshot(None, self._snapshots.get(None))

    def watch(self, watcher: SnapshotWatcher) -> Callable[[], None]:
        """Register `watcher`; returns the function that unregisters it."""
        with self._lock:
            token = self._next_watcher
            self._next_watcher += 1
            self._watchers[token] = watcher

        def unwatch() -> None:
            with self._lock:
                self._watchers.pop(token, None)

        return unwatch

    @property
    def watcher_count(self) -> int:
        with self._lock:
            return len(self._watchers)
