"""What the xDS layer knows about Envoy resources: type URLs, names and references.

The server never interprets configuration beyond two questions, answered here once per resource content:
what is the resource called, and which other resources must Envoy hold before this one is safe to use
(`dependencies`, which decide the order of pushes: make before break) or before Envoy finishes warming it
(`warming_dependencies`: RDS names of a listener, the load assignment of an EDS cluster, SDS secrets).
References are found by walking the message, including `Any`-packed extension configs whose modules are
imported in this process, so the translator's HTTP filters and transport sockets are covered too. Where the
translator builds thousands of one type (clusters, load assignments) or one very large message (the route
configuration), its builders declare the references instead, which costs a fraction of the walk; a test
holds the declarations equal to the walk for every golden configuration. A resource content prepared with
its answers is ``content.XdsResource``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any, NamedTuple

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

# Imported for their side effect: registering the message types that `_collected` unpacks from `Any` fields.
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2  # noqa: F401
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2  # noqa: F401
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2  # noqa: F401
from google.protobuf import descriptor_pool, message_factory
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


def dependencies(type_url: str, message: Message) -> set[ResourceKey]:
    """Resources that must be ready on a proxy before this one is sent to it (see module docstring)."""
    return set(references_of(type_url, message).dependencies)


def warming_dependencies(type_url: str, message: Message) -> set[ResourceKey]:
    """Resources Envoy fetches for this one and waits for before using it."""
    return set(references_of(type_url, message).warming)


class References(NamedTuple):
    """What one resource refers to (see module docstring), itself excluded."""

    dependencies: frozenset[ResourceKey] = frozenset()
    warming: frozenset[ResourceKey] = frozenset()


def references_of(type_url: str, message: Message) -> References:
    """What ``message``, a resource of type ``type_url``, refers to: found by walking it."""
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
