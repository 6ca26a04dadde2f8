"""What an xDS stream hands to a worker thread instead of doing on the event loop, and the thread doing it.

A stream's work is a step per name, reference or resource: tiny for the usual change, tens of thousands of
steps for a proxy's first responses, a reconnect or a rebuilt configuration, during which the loop would serve
no other stream. Such work runs in a worker thread while its stream waits. The loop still shares the
interpreter with that thread: it takes it back when the thread pauses or at the end of a switch interval
(``ads.GIL_SWITCH_INTERVAL_SECONDS``), so every stream's thread work goes to one thread (``WORKER_THREADS``),
and a stream whose work is queued behind another's waits for it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")

ITEMS_WORTH_A_THREAD = 2000
"""The one rule for what a stream does in a worker thread: a piece of work that steps through this many items
or more. The items are the names and references a plan looks at (``Planner.work``), the names a reconnecting
proxy reports, the resources a response carries (serialising them) and the entries that die with what an ACK
replaces or with an ending stream (freed an item at a time). Per 10,000 items these held the loop for 3-10 ms
(passes in C, serialising) up to 50 ms (a plan, in Python). A count, not a time, so one knob moves them all:
the usual change steps through a few items, and stays on the loop, where it costs less than the hop to a
thread and back."""

BYTES_WORTH_A_THREAD = 1 << 20
"""A response of fewer resources is also serialised in a worker thread when they are this large (a route
configuration of thousands of routes is one resource): copying a proxy's first responses at 5,000 routes into
one fresh buffer (faulting its pages in) held the loop for 2-7 ms. Bytes copied, not items stepped through:
the one thread decision that is not ``ITEMS_WORTH_A_THREAD``."""

WORKER_THREADS = 1
"""Threads doing streams' work at once. The loop waits for the interpreter behind whichever of them holds it,
so each more thread lengthens its worst waits without adding a processor's worth of work (Python code holds
the interpreter). Six streams serialising 10,000 resources each at once (a micro-benchmark, two shared
cores): the loop's 1 ms timer was late by 8-43 ms at p99 with the default executor's 6 threads, 7-18 ms with
a pause between slices (``Reply.serialize``), 1-7 ms with that pause and one thread; all in about the same
time overall."""

_workers = ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="xds-stream-work")


def worth_a_thread(items: int) -> bool:
    """Whether work stepping through ``items`` items belongs in a worker thread (``ITEMS_WORTH_A_THREAD``)."""
    return items >= ITEMS_WORTH_A_THREAD


async def in_worker_thread(work: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """``work`` done by the streams' worker thread (after the work queued before it), the caller waiting."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_workers, functools.partial(work, *args, **kwargs))


def start_in_worker_thread(work: Callable[_P, object], /, *args: _P.args, **kwargs: _P.kwargs) -> None:
    """``work`` queued for the streams' worker thread, nobody waiting for it. RuntimeError once the
    interpreter is shutting down."""
    _workers.submit(work, *args, **kwargs)
