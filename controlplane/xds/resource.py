"""What the xDS layer knows about Envoy resources: type URLs, names, content versions and references.

The server never interprets configuration beyond two questions, answered here once per resource content:
what is the resource called, and which other resources must Envoy hold before this one is safe to use
(`dependencies`, which decide the order of pushes: make before break) or before Envoy finishes warming it
(`warming_dependencies`: RDS names of a listener, the load assignment of an EDS cluster, SDS secrets).
References are found by walking the message, including `Any`-packed extension configs whose modules are
imported in this process, so the translator's HTTP filters and transport sockets are covered too. Where the
translator builds thousands of one type (clusters, load assignments) or one very large message (the route
configuration), its builders declare the references instead, which costs a fraction of the walk; a test
holds the declarations equal to the walk for every golden configuration.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from operator import attrgetter
from typing import Any, NamedTuple

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

# Imported for their side effect: registering the message types that `_collected` unpacks from `Any` fields.
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2  # noqa: F401
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2  # noqa: F401
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2  # noqa: F401
from google.protobuf import any_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

_PREFIX = "type.googleapis.com/"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = _PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"

TYPE_URLS: tuple[str, ...] = (CLUSTER, ENDPOINT, SECRET, LISTENER, ROUTE)
"""Every type this server serves, in the order a stream considers them (clusters first: make before break)."""

WILDCARD_TYPES = frozenset({LISTENER, CLUSTER})
"""Types Envoy subscribes to as a whole; the others (RDS, EDS, SDS) are requested by name."""

MESSAGE_CLASSES: dict[str, type[Message]] = {
    LISTENER: listener_pb2.Listener,
    ROUTE: route_pb2.RouteConfiguration,
    CLUSTER: cluster_pb2.Cluster,
    ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
    SECRET: secret_pb2.Secret,
}


class Serialized(NamedTuple):
    """A resource's content as its builder serialised it (deterministically), with its name: assembled from
    pieces the builder kept (``translator.route_bytes``) rather than built and serialised whole."""

    name: str
    data: bytes


class ResourceKey(NamedTuple):
    """A resource's identity: its type URL and name."""

    type_url: str
    name: str


def short_type_name(type_url: str) -> str:
    """``type.googleapis.com/envoy.config.cluster.v3.Cluster`` -> ``Cluster`` (metric labels, logs)."""
    return type_url.rsplit(".", 1)[-1]


def resource_name(type_url: str, message: Message) -> str:
    """The name Envoy knows a resource by: `cluster_name` for a load assignment, `name` otherwise."""
    fields: Any = message  # generated classes are untyped
    name: str = fields.cluster_name if type_url == ENDPOINT else fields.name
    return name


def version_digest(data: bytes) -> str:
    """The one hash behind every version string this server hands out (resources, responses, snapshots)."""
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def content_hash(message: Message) -> str:
    """A version string derived from the content only (deterministic serialisation)."""
    return version_digest(message.SerializeToString(deterministic=True))


def content_version(resources: Mapping[str, XdsResource]) -> str:
    """The version of a set of resources by name (a SotW response's `version_info`, a snapshot's per-type
    version): derived from their names and versions only, whatever order the mapping is in."""
    return version_digest(
        b"".join(f"{name}\0{resources[name].version}\n".encode() for name in sorted(resources))
    )


def versions(resources: Mapping[str, XdsResource]) -> dict[str, str]:
    """Name -> version of ``resources``, paired in C: thousands of resources cost no Python loop (what the
    xDS server's event loop must avoid)."""
    return dict(zip(resources.keys(), map(_version_of, resources.values()), strict=True))


_version_of = attrgetter("version")


def dependencies(type_url: str, message: Message) -> set[ResourceKey]:
    """Resources that must be ready on a proxy before this one is sent to it (see module docstring)."""
    return set(_references(type_url, message).dependencies)


def warming_dependencies(type_url: str, message: Message) -> set[ResourceKey]:
    """Resources Envoy fetches for this one and waits for before using it."""
    return set(_references(type_url, message).warming)


@dataclass(frozen=True, eq=False)
class XdsResource:
    """One resource content, prepared once and shared by every snapshot and stream that holds it."""

    type_url: str
    name: str
    version: str
    serialized: bytes = field(repr=False)
    """The content as sent. Only this form is kept: a parsed copy of every resource of a large configuration
    would cost tens of MiB (``message`` parses it again when asked), and so would an ``Any`` holding it
    (each protobuf message keeps an arena of its own, about 1 KiB: 30 MiB at 5,000 routes)."""
    dependencies: frozenset[ResourceKey]
    warming: frozenset[ResourceKey]
    binds: frozenset[str] = frozenset()
    """Socket addresses only one resource may hold at a time (a listener's), e.g. ``tcp/0.0.0.0:80``."""
    internal_listener: bool = False
    """A listener that other resources may target through an internal address."""

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(self.type_url, self.name)

    @property
    def message(self) -> Message:
        """The content as a message, parsed from ``serialized`` on every call (a fresh copy each time)."""
        return MESSAGE_CLASSES[self.type_url].FromString(self.serialized)

    @property
    def packed(self) -> any_pb2.Any:
        """The content as an ``Any`` (a fresh message each call)."""
        return any_pb2.Any(type_url=self.type_url, value=self.serialized)

    @classmethod
    def build(
        cls, type_url: str, message: Message | Serialized, *, references: References | None = None
    ) -> XdsResource:
        """``references`` are what the builder of ``message`` declares it refers to, if it does: they stand
        for the walk of the message, which costs more than building it (tests hold the two equal). A
        ``Serialized`` content needs them (there is no message to walk)."""
        expected = MESSAGE_CLASSES.get(type_url)
        if expected is None:
            raise ValueError(f"unsupported type URL {type_url!r}")
        if isinstance(message, Serialized):
            if references is None or type_url == LISTENER:
                raise ValueError(f"a serialised {short_type_name(type_url)} needs declared references")
            name, serialized = message
        elif isinstance(message, expected):
            name = resource_name(type_url, message)
            serialized = message.SerializeToString(deterministic=True)
        else:
            raise TypeError(f"{type_url} needs {expected.__name__}, got {type(message).__name__}")
        if not name:
            raise ValueError(f"a {short_type_name(type_url)} without a name")
        version = version_digest(serialized)
        known = _INTERNED.get((type_url, name, version))
        if known is not None:
            return known
        if references is None:
            assert isinstance(message, Message)  # a serialised content without them was refused above
            references = _references(type_url, message)
        listener = message if type_url == LISTENER and isinstance(message, Message) else None
        resource = cls(
            type_url=type_url,
            name=name,
            version=version,
            serialized=serialized,
            dependencies=references.dependencies or _NONE,
            warming=references.warming or _NONE,
            binds=(_bound_addresses(listener) or _NONE) if listener is not None else _NONE,
            internal_listener=listener is not None and listener.HasField("internal_listener"),
        )
        _remember(resource)
        return resource

    @classmethod
    def unknown(cls, type_url: str, name: str, version: str) -> XdsResource:
        """Stands for a version a proxy reports holding (delta reconnect) whose content this process never
        saw. It is only compared by version, never sent, and assumed to depend on nothing."""
        return cls(
            type_url=type_url,
            name=name,
            version=version,
            serialized=b"",
            dependencies=frozenset(),
            warming=frozenset(),
        )


# The translator rebuilds every message on each change; interning by content lets unchanged resources keep
# one shared object (no second walk, no second Any) across consecutive snapshots. Entries live exactly as long
# as some snapshot or stream still holds the resource.
_INTERNED: weakref.WeakValueDictionary[tuple[str, str, str], XdsResource] = weakref.WeakValueDictionary()
_NONE: frozenset[Any] = frozenset()
"""The one empty set every resource refers to by: most refer to nothing, and each ``frozenset()`` made is
an object of its own (216 bytes; 12 MiB at 5,000 routes)."""


def _remember(resource: XdsResource) -> None:
    _INTERNED[(resource.type_url, resource.name, resource.version)] = resource


def _bound_addresses(listener: Any) -> frozenset[str]:
    addresses = [listener.address, *(extra.address for extra in listener.additional_addresses)]
    return frozenset(
        f"{socket.Protocol.Name(socket.protocol).lower()}/{socket.address}:{socket.port_value}"
        for socket in (address.socket_address for address in addresses if address.HasField("socket_address"))
    )


class References(NamedTuple):
    """What one resource refers to (see module docstring), itself excluded."""

    dependencies: frozenset[ResourceKey] = frozenset()
    warming: frozenset[ResourceKey] = frozenset()


def _references(type_url: str, message: Message) -> References:
    found: dict[bool, set[ResourceKey]] = {True: set(), False: set()}
    for warming, key in _collected(message):
        found[warming].add(key)
    cluster: Any = message
    if type_url == CLUSTER and cluster.type == cluster_pb2.Cluster.EDS:
        found[True].add(ResourceKey(ENDPOINT, cluster.eds_cluster_config.service_name or cluster.name))
    self_key = ResourceKey(type_url, resource_name(type_url, message))
    return References(
        dependencies=frozenset(found[False] - {self_key}), warming=frozenset(found[True] - {self_key})
    )


# Collectors yield (is_warming, key) for one message type found anywhere inside a resource.
_Collector = Callable[[Any], Iterator[tuple[bool, ResourceKey]]]


def _clusters_of_route_action(action: Any) -> Iterator[tuple[bool, ResourceKey]]:
    names = [action.cluster, *(weighted.name for weighted in action.weighted_clusters.clusters)]
    names.extend(mirror.cluster for mirror in action.request_mirror_policies)
    yield from ((False, ResourceKey(CLUSTER, name)) for name in names if name)


def _clusters_of_virtual_host(virtual_host: Any) -> Iterator[tuple[bool, ResourceKey]]:
    for mirror in virtual_host.request_mirror_policies:
        if mirror.cluster:
            yield False, ResourceKey(CLUSTER, mirror.cluster)


def _clusters_of_tcp_proxy(proxy: Any) -> Iterator[tuple[bool, ResourceKey]]:
    names = [proxy.cluster, *(weighted.name for weighted in proxy.weighted_clusters.clusters)]
    yield from ((False, ResourceKey(CLUSTER, name)) for name in names if name)


def _internal_listener(address: Any) -> Iterator[tuple[bool, ResourceKey]]:
    if address.server_listener_name:
        yield False, ResourceKey(LISTENER, address.server_listener_name)


def _route_config_over_ads(rds: Any) -> Iterator[tuple[bool, ResourceKey]]:
    if rds.route_config_name and rds.config_source.HasField("ads"):
        yield True, ResourceKey(ROUTE, rds.route_config_name)


def _secret_over_ads(config: Any) -> Iterator[tuple[bool, ResourceKey]]:
    if config.name and config.sds_config.HasField("ads"):
        yield True, ResourceKey(SECRET, config.name)


_COLLECTORS: dict[str, _Collector] = {
    "envoy.config.route.v3.RouteAction": _clusters_of_route_action,
    "envoy.config.route.v3.VirtualHost": _clusters_of_virtual_host,
    "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy": _clusters_of_tcp_proxy,
    "envoy.config.core.v3.EnvoyInternalAddress": _internal_listener,
    "envoy.extensions.filters.network.http_connection_manager.v3.Rds": _route_config_over_ads,
    "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig": _secret_over_ads,
}

# Free-form data (metadata, typed per-filter structs) never names a resource; skipping it keeps large
# metadata cheap.
_OPAQUE = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"})
_ANY = "google.protobuf.Any"
_unpack_classes: dict[str, type[Message] | None] = {}

# How a field worth walking holds its messages: one, a list, or a map's values.
_SINGLE, _LIST, _MAP = range(3)


class _Plan(NamedTuple):
    """What the walk does with one message type, worked out once per type."""

    is_any: bool
    collect: _Collector | None
    fields: dict[Any, int]
    """The message fields whose contents may hold a reference (a collected message or an ``Any``, at any
    depth), by how they hold messages: the walk skips the others (most of a cluster or listener)."""


_plans: dict[Any, _Plan] = {}
_holding: set[Any] = set()
"""Message types that may hold a reference, among those ``_plan`` has seen."""


def _collected(root: Message) -> set[tuple[bool, ResourceKey]]:
    """What the collectors find in `root` and every message nested in it, inside `Any` where the type is
    known."""
    found: set[tuple[bool, ResourceKey]] = set()
    stack: list[Any] = [root]
    plans = _plans
    while stack:
        message = stack.pop()
        descriptor = message.DESCRIPTOR
        plan = plans.get(descriptor) or _plan(descriptor)
        if plan.is_any:
            found |= _collected_in_any(message.type_url, message.value)
            continue
        if plan.collect is not None:
            found.update(plan.collect(message))
        fields = plan.fields
        if not fields:
            continue
        for field_descriptor, value in message.ListFields():
            kind = fields.get(field_descriptor)
            if kind is None:
                continue
            if kind == _SINGLE:
                stack.append(value)
            elif kind == _MAP:
                stack.extend(value.values())
            else:
                stack.extend(value)
    return found


@lru_cache(maxsize=4096)
def _collected_in_any(type_url: str, value: bytes) -> frozenset[tuple[bool, ResourceKey]]:
    """By content: most packed configs (HTTP filters, protocol options) are the same in many resources."""
    inner = _unpack(type_url, value)
    return frozenset() if inner is None else frozenset(_collected(inner))


def _plan(message_type: Any) -> _Plan:
    """The walk's plan for ``message_type``, worked out with those of every type below it."""
    # Every type reachable from here, with its message fields (a map field by its value's type).
    children: dict[Any, list[tuple[Any, Any, int]]] = {}
    pending = [message_type]
    while pending:
        current = pending.pop()
        if current in children:
            continue
        children[current] = []
        if current.full_name in _OPAQUE or current.full_name == _ANY:
            continue
        for field_descriptor in current.fields:
            child = field_descriptor.message_type
            kind = _LIST if field_descriptor.is_repeated else _SINGLE
            if child is not None and child.GetOptions().map_entry:
                child, kind = child.fields_by_name["value"].message_type, _MAP
            if child is not None:
                children[current].append((field_descriptor, child, kind))
                pending.append(child)
    # Which of them may hold a reference: grown to a fixed point, since message types can be recursive.
    holds = {current for current in children if current.full_name in _COLLECTORS or current.full_name == _ANY}
    grown = True
    while grown:
        grown = False
        for current, fields in children.items():
            if current not in holds and any(child in holds for _, child, _ in fields):
                holds.add(current)
                grown = True
    for current, fields in children.items():
        _plans.setdefault(
            current,
            _Plan(
                is_any=current.full_name == _ANY,
                collect=_COLLECTORS.get(current.full_name),
                fields={field: kind for field, child, kind in fields if child in holds},
            ),
        )
    _holding.update(holds)
    return _plans[message_type]


def _unpack(type_url: str, value: bytes) -> Message | None:
    type_name = type_url.rpartition("/")[2]
    if type_name not in _unpack_classes:
        try:
            descriptor = descriptor_pool.Default().FindMessageTypeByName(type_name)
        except KeyError:
            _unpack_classes[type_name] = None
        else:
            # A type that cannot hold a reference is not worth parsing (most extension configs).
            _plan(descriptor)
            worth = descriptor in _holding
            _unpack_classes[type_name] = message_factory.GetMessageClass(descriptor) if worth else None
    message_class = _unpack_classes[type_name]
    if message_class is None:
        return None
    inner = message_class()
    try:
        inner.ParseFromString(value)
    except DecodeError:
        return None  # Envoy will reject it; there is nothing to reference inside
    return inner
