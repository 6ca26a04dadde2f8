"""What a test opened and left open, told apart from everything else this process has open.

A count of open descriptors is the whole process's: earlier tests' threads open and close sockets, and the
garbage collector closes what earlier tests dropped, at any moment, so a count taken before and after a test
moves for reasons of its own (and a leak can hide behind a descriptor closed meanwhile). A socket's or a
pipe's target (``socket:[inode]``, ``pipe:[inode]``) names the open file itself, so comparing targets finds
those opened in between and still open, whatever else closed; and what another thread opened in between is
closed again soon, while a leak stays. Shared targets (a path, ``anon_inode:[eventpoll]``) are only counted:
one of them leaked while another thread closed one of the same kind goes unseen.
"""

from __future__ import annotations

import os
from collections import Counter

from tests.polling import wait_until

_DESCRIPTORS = "/proc/self/fd"


def open_files() -> Counter[str]:
    """Every open descriptor's target, counted (some targets, such as ``anon_inode:[eventpoll]``, are shared
    by all files of a kind)."""
    targets: Counter[str] = Counter()
    for descriptor in os.listdir(_DESCRIPTORS):
        try:
            targets[os.readlink(f"{_DESCRIPTORS}/{descriptor}")] += 1
        except FileNotFoundError:  # closed since the listing: the listing's own descriptor, at least
            continue
    return targets


def wait_until_closed(before: Counter[str]) -> None:
    """Waits until nothing opened since ``before`` (an ``open_files()``) is open any more: what other threads
    opened meanwhile is closed again soon, a leak stays and fails the wait, named."""

    def closed() -> bool:
        still_open = open_files() - before
        assert not still_open, f"opened since and still open: {still_open}"
        return True

    wait_until(closed, interval=0.01)
