"""Resource contents as served: each prepared once (serialised, named, versioned, its references found)
and shared by every snapshot and stream that holds it, and the version strings derived from contents."""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, NamedTuple

from google.protobuf import any_pb2
from google.protobuf.message import Message

from controlplane.xds.resource import (
    LISTENER,
    MESSAGE_CLASSES,
    References,
    ResourceKey,
    references_of,
    resource_name,
    short_type_name,
)


class Serialized(NamedTuple):
    """A resource's content as its builder serialised it (deterministically), with its name: assembled from
    pieces the builder kept (``translator.route_bytes``) rather than built and serialised whole."""

    name: str
    data: bytes


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
            references = references_of(type_url, message)
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
