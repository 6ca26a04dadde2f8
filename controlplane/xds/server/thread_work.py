"""What an xDS stream hands to a worker thread instead of doing on the event loop, decided in one place.

A stream's work is a step per name, reference or resource: tiny for the usual change, tens of thousands of
steps for a proxy's first responses, a reconnect or a rebuilt configuration, during which the loop would serve
no other stream. Such work runs in a worker thread while its stream waits. The loop still shares the
interpreter with that thread, taking it back when the thread releases it or at the end of a switch interval
(``ads.GIL_SWITCH_INTERVAL_SECONDS``): a thread's work still delays the loop, more so the more threads work
at once. Serialising responses stays on the loop for that reason (``reply.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")

ITEMS_WORTH_A_THREAD = 2000
"""The one rule for what a stream does in a worker thread: a piece of work that steps through this many items
or more. The items are the names and references a plan looks at (``Planner.work``), the names a reconnecting
proxy reports and the entries that die with what an ACK replaces or with an ending stream (freed an item at a
time). Per 10,000 items these held the loop for 3-10 ms (passes in C) up to 50 ms (a plan, in Python). A
count, not a time, so one knob moves them all: the usual change steps through a few items, and stays on the
loop, where it costs less than the hop to a thread and back."""

BYTES_WORTH_A_THREAD = 1 << 20
"""A serialised response this large is joined into one buffer in a worker thread: copying a proxy's first
responses at 5,000 routes into one fresh buffer (faulting its pages in) held the loop for 2-7 ms, and
``bytes.join`` releases the interpreter while it copies that much. Bytes copied, not items stepped through:
the one thread decision that is not ``ITEMS_WORTH_A_THREAD``."""


def worth_a_thread(items: int) -> bool:
    """Whether work stepping through ``items`` items belongs in a worker thread (``ITEMS_WORTH_A_THREAD``)."""
    return items >= ITEMS_WORTH_A_THREAD


async def in_worker_thread(work: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``work`` done in a worker thread (the loop's default executor), the caller waiting: the one way a
    stream's work leaves the loop and comes back."""
    return await asyncio.to_thread(work, *args, **kwargs)
