"""The one way tests wait for something that happens in another process or thread: poll with a deadline.

Nothing in a test sleeps a fixed time and hopes; it polls a check until the check holds, so a loaded
machine only makes a test slower, never wrong.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")

NOT_YET = (AssertionError, httpx.HTTPError, ConnectionError)
"""What a check may raise to say "not yet": a failed assertion or a peer not answering (yet)."""


def wait_until(
    check: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.05, message: str = ""
) -> T:
    """Calls ``check`` until it returns a truthy value, and returns that value.

    A check may also assert: raising one of ``NOT_YET`` counts as a falsy answer. At the deadline the last
    such error is raised again (it says most about what was wrong), or an ``AssertionError`` naming
    ``message`` when the check only ever returned falsy values.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except NOT_YET:
            if time.monotonic() > deadline:
                raise
        else:
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {message or 'a condition'}: {value!r}"
                )
        time.sleep(interval)
