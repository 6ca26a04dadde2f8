"""What an xDS stream hands to a worker thread instead of doing on the event loop, decided in one place.

A stream's work is a step per name, reference or resource: tiny for the usual change, tens of thousands of
steps for a proxy's first responses, a reconnect or a rebuilt configuration, during which the loop would serve
no other stream. ``Stream._in_thread`` runs such work while only its own stream waits; this module says which.
"""

from __future__ import annotations

ITEMS_WORTH_A_THREAD = 2000
"""The one rule for what a stream does in a worker thread: a piece of work that steps through this many items
or more. The items are the names and references a plan looks at (``Planner.work``), the names a reconnecting
proxy reports, the resources a response carries (serialising them) and the entries that die with what an ACK
replaces or with an ending stream (freed an item at a time). Per 10,000 items these held the loop for 3-10 ms
(passes in C, serialising) up to 50 ms (a plan, in Python). A count, not a time, so one knob moves them all:
the usual change steps through a few items, and stays on the loop, where it costs less than the hop to a
thread and back. While the thread works, only its stream waits: the loop serves the others."""

BYTES_WORTH_A_THREAD = 1 << 20
"""A response of fewer resources is also serialised in a worker thread when they are this large (a route
configuration of thousands of routes is one resource): copying a proxy's first responses at 5,000 routes into
one fresh buffer (faulting its pages in) held the loop for 2-7 ms. Bytes copied, not items stepped through:
the one thread decision that is not ``ITEMS_WORTH_A_THREAD``."""


def worth_a_thread(items: int) -> bool:
    """Whether work stepping through ``items`` items belongs in a worker thread (``ITEMS_WORTH_A_THREAD``)."""
    return items >= ITEMS_WORTH_A_THREAD
