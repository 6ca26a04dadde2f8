"""Which entries of a table of named things (IR nodes, Envoy resources) were replaced in place since the
previous table: the incremental paths use it to touch only those instead of rebuilding from every entry.

The translator hands over tables whose unchanged entries are the very same objects as last time, in the
same (name) order, so comparing by position and identity finds the replaced ones at the cost of a pointer
comparison per entry; a table whose names changed (an entry added, removed or renamed) is reported as such
and the caller starts over from the whole table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=Named)


def replaced_in_place(before: Sequence[N], after: Sequence[N]) -> list[N] | None:
    """The entries of ``after`` that are not the very object at their place in ``before`` but have its
    name; None when names were added, removed or moved."""
    if len(before) != len(after):
        return None
    pairs = [(old, new) for old, new in zip(before, after, strict=True) if old is not new]
    if any(old.name != new.name for old, new in pairs):
        return None
    return [new for _, new in pairs]
