"""A discovery response kept in parts and serialised a slice of resources at a time.

The first response to a proxy of a 5,000-route configuration carries about 15,000 clusters and as many load
assignments: building and serialising one such response on the event loop held it for 30-100 ms, during which
no other stream was served. So a stream serialises a large response in a worker thread (``thread_work`` says
which are large), and this module keeps each C call of that work short and pauses the thread between two, so
the loop can take the interpreter back: a message's serialisation is its fields' encodings in field-number
order, and every discovery response has exactly one field numbered below ``resources`` (its version) and the
rest above. The bytes of the whole response are: the version part, then each slice of resources serialised
as a response holding only them, then the other fields. The pieces are the same bytes as serialising the
whole message at once (tests hold the two equal).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf.message import Message

from controlplane.xds.content import XdsResource

SLICE_RESOURCES = 500
"""Resources serialised by one C call. The loop takes the interpreter back from a worker thread between two
calls, never during one: a count of resources keeps each call short (500 small clusters: 0.01 ms; filling a
slice, a Python step per resource, about 0.4 ms), though a slice of large ones (route configurations) takes
longer."""


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

    def serialize(self, *, in_worker_thread: bool = False) -> bytes:
        """The serialised response. Reads nothing but the reply, so any thread may call it; the final copy
        of a response of a megabyte or more releases the interpreter while it runs (``bytes.join``). A worker
        thread pauses between slices, handing the interpreter to the loop if it waits for it (rather than
        after a switch interval); the loop does not pause, as a worker thread could then keep it waiting."""
        response_type: Any = type(self.head)  # generated classes are untyped
        pieces = [self.head.SerializeToString()]
        for start in range(0, len(self.resources), SLICE_RESOURCES):
            if start and in_worker_thread:
                time.sleep(0)
            part = response_type()
            for resource in self.resources[start : start + SLICE_RESOURCES]:
                self.entry(part.resources, resource)
            pieces.append(part.SerializeToString())
        pieces.append(self.tail.SerializeToString())
        return b"".join(pieces)

    def resource_bytes(self) -> int:
        """The serialised size of the resources carried: a pass over them, in Python (fewer than
        ``thread_work.ITEMS_WORTH_A_THREAD``, where the stream asks)."""
        return sum(len(resource.serialized) for resource in self.resources)
