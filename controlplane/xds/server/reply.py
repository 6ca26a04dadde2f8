"""A discovery response serialised a slice of resources at a time, so a large one does not stall the loop.

The first response to a proxy of a 5,000-route configuration carries about 15,000 clusters and as many load
assignments: building and serialising one such response in one go held the event loop for 30-100 ms, during
which no other stream was served. A message's serialisation is its fields' encodings in field-number order,
and every discovery response has exactly one field numbered below ``resources`` (its version) and the rest
above. So the bytes of the whole response are: the version part, then each slice of resources encoded as the
``resources`` of a response holding only them, then the other fields; each slice after the first waits for a
turn on the loop (``turns.py``), so other streams' slices, sockets and timers run between two slices. The
pieces are the same bytes as serialising the whole message at once (tests hold the two equal).

A state-of-the-world response's elements are ``Any``s of the resources' serialised contents: their encoding
is a header that depends only on the type URL and the content's length, then the content. Such slices are
joined from those (``PackedEntries``) rather than built as messages and serialised, which copied every
resource twice and cost four times as long: every SotW proxy is sent every load assignment again on each
change. Joining them is mostly copying, so a packed slice ends at a count of resources or at a size of
content, whichever comes first. Delta's elements also carry each resource's name and version, and are built
(``BuiltEntries``), sliced the same way.

Serialised on the loop, not in a worker thread: when many streams are sent a large response at once (a change
to a type of thousands of resources, every state-of-the-world proxy sent all of them again), serialising in a
worker thread made the loop's worst stalls longer and the push to all of them slower (``bench/README.md``).
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

from google.protobuf.message import Message

from controlplane.xds.content import XdsResource
from controlplane.xds.server import thread_work
from controlplane.xds.server.turns import Turns
from controlplane.xds.wire import varint

SLICE_RESOURCES = 500
"""Resources built and serialised between two turns on the loop: 500 small clusters, about half a
millisecond."""

PACKED_SLICE_RESOURCES = 2500
"""At most this many ``Any``s joined between two turns on the loop: 2,500 small load assignments (60 bytes
each), 0.6-0.8 ms."""

SLICE_BYTES = 256 * 1024
"""About this many bytes of content at most encoded between two turns on the loop, either way (a slice ends
with the resource that reaches it): large resources are copied more than stepped through. 20 KB resources
held the loop for 35-40 ms a slice joined (2,500 of them) and 15-33 ms built (500); cut by bytes, a slice
of them takes 0.75 ms at most."""


class EntryOf(Protocol):
    """Adds the element that carries ``resource`` to a response's ``resources`` (a repeated field): filled in
    place, as a message made first and then copied in would cost a second copy of every resource."""

    def __call__(self, resources: Any, resource: XdsResource, /) -> None: ...


class Entries(Protocol):
    """How a response's ``resources`` are encoded, a slice at a time."""

    def encode(self, resources: Sequence[XdsResource], /) -> Iterator[tuple[bytes, int]]:
        """The encoding of ``resources`` as the ``resources`` field of a response, in order, one slice at a
        time, each with how many resources it holds: the caller lets other work run between two slices (a
        slice is encoded when it is asked for)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class BuiltEntries:
    """Elements built as messages (``entry``) in a response of ``response_type``, then serialised, a slice
    of at most ``slice_resources`` and about ``slice_bytes`` of content at a time."""

    response_type: type[Message]
    entry: EntryOf
    slice_resources: int = SLICE_RESOURCES
    slice_bytes: int = SLICE_BYTES

    def encode(self, resources: Sequence[XdsResource], /) -> Iterator[tuple[bytes, int]]:
        for window in range(0, len(resources), self.slice_resources):
            in_window = resources[window : window + self.slice_resources]
            start = 0
            for end in _slice_ends(list(map(len, map(_serialized, in_window))), most_bytes=self.slice_bytes):
                part: Any = self.response_type()  # generated classes are untyped
                for resource in in_window[start:end]:
                    self.entry(part.resources, resource)
                encoded: bytes = part.SerializeToString()
                yield encoded, end - start
                start = end


@dataclass(frozen=True, slots=True)
class PackedEntries:
    """Elements that are ``Any``s of ``type_url`` holding each resource's serialised content, joined from
    headers and contents in C (``_AnyHeaders``), a slice of at most ``slice_resources`` and about
    ``slice_bytes`` of content at a time."""

    type_url: str
    slice_resources: int = PACKED_SLICE_RESOURCES
    slice_bytes: int = SLICE_BYTES

    def encode(self, resources: Sequence[XdsResource], /) -> Iterator[tuple[bytes, int]]:
        headers = _any_headers(self.type_url)
        for window in range(0, len(resources), self.slice_resources):
            contents = list(map(_serialized, resources[window : window + self.slice_resources]))
            lengths = list(map(len, contents))
            start = 0
            for end in _slice_ends(lengths, most_bytes=self.slice_bytes):
                pairs = zip(map(headers.__getitem__, lengths[start:end]), contents[start:end], strict=True)
                yield b"".join(itertools.chain.from_iterable(pairs)), end - start
                start = end


def _slice_ends(lengths: list[int], *, most_bytes: int) -> Iterator[int]:
    """Where slices of contents of ``lengths`` end: each with the content that brings it to ``most_bytes``
    (the last with the last content), found in C."""
    if sum(lengths) <= most_bytes:  # as small resources are: one slice, no running totals
        yield len(lengths)
        return
    totals = list(itertools.accumulate(lengths))
    start = 0
    while start < len(lengths):
        reaching = bisect.bisect_left(totals, totals[start] - lengths[start] + most_bytes, lo=start)
        start = min(reaching + 1, len(lengths))
        yield start


_serialized = attrgetter("serialized")


_ANY_HEADERS_KEPT = 65536
"""Headers one type URL's table holds at most (~150 bytes each): one per distinct content length seen, so a
long-running server whose resources keep changing size would otherwise grow it without end. Past it, a
header for a length not kept is made each time it is needed (~2.5 us) and not kept: emptying the table
instead would make every length of a large configuration a miss again, on every stream's push."""


class _AnyHeaders(dict[int, bytes]):
    """Content length -> what precedes a content of that length as an element of ``resources`` (field 2 of
    every discovery response) that is an ``Any`` of one type URL: the element's tag and length, the ``Any``'s
    ``type_url`` (field 1) and its ``value``'s tag and length (field 2; none for an empty value, which proto3
    leaves out). Made once per length: the lengths of a type's resources repeat (at most ``_ANY_HEADERS_KEPT``
    are kept)."""

    def __init__(self, type_url: str) -> None:
        super().__init__()
        encoded = type_url.encode()
        self._type_url_field = b"\x0a" + varint(len(encoded)) + encoded

    def __missing__(self, length: int) -> bytes:
        value_header = b"\x12" + varint(length) if length else b""
        body_length = len(self._type_url_field) + len(value_header) + length
        header = b"\x12" + varint(body_length) + self._type_url_field + value_header
        if len(self) < _ANY_HEADERS_KEPT:
            self[length] = header
        return header


@functools.cache
def _any_headers(type_url: str) -> _AnyHeaders:
    """The one table of headers per type URL (there are five), filled on the loop as lengths come."""
    return _AnyHeaders(type_url)


@dataclass(frozen=True, slots=True)
class Reply:
    """One discovery response, kept in parts until it is serialised."""

    head: Message
    """The response with only its fields numbered below ``resources`` set."""
    resources: Sequence[XdsResource]
    """What goes into ``resources``, in order."""
    entries: Entries
    tail: Message
    """The same message type with only its fields numbered above ``resources`` set."""

    async def serialize(self, *, turns: Turns) -> bytes:
        """The serialised response, each slice of resources after the first in a turn of its own (``turns``;
        the first is encoded in the caller's)."""
        pieces = [self.head.SerializeToString()]
        encoded = 0
        for piece, count in self.entries.encode(self.resources):
            pieces.append(piece)
            encoded += count
            if encoded < len(self.resources):
                await turns.take()  # before the generator is asked for (and encodes) the next slice
        pieces.append(self.tail.SerializeToString())
        if sum(map(len, pieces)) < thread_work.BYTES_WORTH_A_THREAD:
            return b"".join(pieces)
        return await thread_work.in_worker_thread(b"".join, pieces)
