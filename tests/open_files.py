"""What a test opened and left open, told apart from everything else this process has open.

A count of open descriptors is the whole process's: earlier tests' threads open and close sockets, and the
garbage collector closes what earlier tests dropped, at any moment, so a count taken before and after a test
moves for reasons of its own (and a leak can hide behind a descriptor closed meanwhile). A descriptor's
target (``socket:[inode]``, ``pipe:[inode]``, a path) names the open file itself, so comparing targets finds
what was opened in between and is still open, whatever else closed.
"""

from __future__ import annotations

import os
from collections import Counter

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


def opened_since(before: Counter[str]) -> Counter[str]:
    """What is open now that was not in ``before`` (an ``open_files()``), by target."""
    return open_files() - before
