"""A discovery response serialised a slice of resources at a time, so a large one does not stall the loop.

The first response to a proxy of a 5,000-route configuration carries about 15,000 clusters and as many load
assignments: building and serialising one such response in one go held the event loop for 30-100 ms, during
which no other stream was served. A message's serialisation is its fields' encodings in field-number order,
and every discovery response has exactly one field numbered below ``resources`` (its version) and the rest
above. So the bytes of the whole response are: the version part, then each slice of resources serialised as a
response holding only them, then the other fields; each slice waits for a turn on the loop (``turns.py``), so
other streams' slices, sockets and timers run between two slices. The pieces
are the same bytes as serialising the whole message at once (tests hold the two equal).

Serialised on the loop, not in a worker thread: when many streams are sent a large response at once (a change
to a type of thousands of resources, every state-of-the-world proxy sent all of them again), serialising in a
worker thread made the loop's worst stalls longer and the push to all of them slower (``bench/README.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf.message import Message

from controlplane.xds.content import XdsResource
from controlplane.xds.server import thread_work
from controlplane.xds.server.turns import Turns

SLICE_RESOURCES = 500
"""Resources serialised between two yields to the loop: 500 small clusters, about half a millisecond."""


class EntryOf(Protocol):
    """Adds the element that carries ``resource`` to a response's ``resources`` (a repeated field): filled in
    place, as a message made first and then copied in would cost a second copy of every resource."""

    def __call__(self, resources: Any, resource: XdsResource, /) -> None: ...


@dataclass(frozen=True, slots=True)
class Reply:
    """One discovery response, kept in parts until it is serialised."""

    head: Message
    """The response with only its fields numbered below ``resources`` set."""
    resources: Sequence[XdsResource]
    """What goes into ``resources``, in order."""
    entry: EntryOf
    tail: Message
    """The same message type with only its fields numbered above ``resources`` set."""

    async def serialize(self, *, turns: Turns) -> bytes:
        """The serialised response, each slice of resources after the first in a turn of its own (``turns``;
        the first is serialised in the caller's)."""
        response_type: Any = type(self.head)  # generated classes are untyped
        pieces = [self.head.SerializeToString()]
        for start in range(0, len(self.resources), SLICE_RESOURCES):
            if start:
                await turns.take()
            part = response_type()
            for resource in self.resources[start : start + SLICE_RESOURCES]:
                self.entry(part.resources, resource)
            pieces.append(part.SerializeToString())
        pieces.append(self.tail.SerializeToString())
        if sum(map(len, pieces)) < thread_work.BYTES_WORTH_A_THREAD:
            return b"".join(pieces)
        return await thread_work.in_worker_thread(b"".join, pieces)
