"""Keeps Python's cyclic garbage collector from stalling the event loop while a large configuration is built.

A full collection walks every tracked object while holding the GIL: with 5,000 routes loaded that is about a
million objects and 0.4-0.9 s during which no xDS stream is served, whichever thread triggered it. Loading
and translating build that many objects, so they trigger full collections just when the loop is busiest.

So the worker threads that build a configuration pause automatic collection, and when the last of them is
done, everything alive is frozen (``gc.freeze``): later collections skip it, and only objects made after
that are ever walked. Frozen objects are still freed by reference counting when the configuration they
belong to is replaced. What freezing would keep forever is garbage held in reference cycles; loading and
translating make none (tests/test_heap.py checks it), and the collector runs normally between builds, so
only cycles the event loop makes during a build could be caught.

Reference counting has the same flaw at the other end: dropping the last reference to a container of
thousands of objects frees them all in one C call, holding the GIL as long (30 ms for a 5,000-route
translation's memo). ``release_gradually`` empties such containers an item at a time instead, and
``drained`` hands a list's items out while emptying it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_building = 0


@contextmanager
def building_configuration() -> Iterator[None]:
    """Around building a configuration in a worker thread (see the module docstring)."""
    global _building
    with _lock:
        _building += 1
        gc.disable()
    try:
        yield
    finally:
        with _lock:
            _building -= 1
            if _building == 0:
                gc.freeze()
                gc.enable()


def release_gradually(*containers: dict[Any, Any] | list[Any] | set[Any]) -> None:
    """Empties ``containers`` one item at a time, so that what only they hold is freed in small pieces
    between which the interpreter can hand the GIL to another thread (the event loop's)."""
    for container in containers:
        if isinstance(container, dict):
            while container:
                container.popitem()
        else:
            while container:
                container.pop()


def drained(items: list[T]) -> Iterator[T]:
    """``items`` in order, each taken out of the list as it is handed over: what only the list held is freed
    an item at a time as the consumer lets go of it, not all at once when the list goes."""
    items.reverse()
    while items:
        yield items.pop()
