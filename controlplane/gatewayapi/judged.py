"""The objects a translation judged (each gets a status), kept up to date from one translation to the next.

A translation judges tens of thousands of objects, almost all of them through replayed fragments
(``gatewayapi.memo``), which hand over the keys they judged as the very same immutable collections as last
time (a chunk's, a fragment's). Putting every key into a fresh set each time, then comparing that set with
last time's to tell whether the statuses can be taken over, cost a few milliseconds a change at 5,000 routes
with policies. ``JudgedKeys`` counts, for each key, the collections (and the loose keys) that judged it;
``settle`` compares this translation's collections with last time's by identity and counts only those that
came or went, so a change costs what changed. The keys with a count are the judged set, and ``version``
stays the same object as long as that set does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from itertools import chain
from operator import itemgetter

from controlplane.resources.groups import INFERENCE_POOL_KIND
from controlplane.resources.problems import ObjectKey

Pieces = dict[int, Collection[ObjectKey]]
"""Immutable collections of judged keys (frozensets, tuples) by ``id``: the same object twice is one."""


class JudgedKeys:
    """The keys judged by the last settled translation, with what judged them."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """Nothing counted, under a new ``version``: the next ``settle`` counts afresh."""
        self._counts: Counter[ObjectKey] = Counter()
        """How many of the pieces and loose keys below judged each key (none with zero)."""
        self._pieces: Pieces = {}
        """The last settled translation's pieces, kept alive so that their ``id`` stays theirs."""
        self._loose: set[ObjectKey] = set()
        self.pools: set[ObjectKey] = set()
        """The InferencePools among the keys."""
        self.version = object()
        """Replaced whenever the set of keys changes."""

    @property
    def keys(self) -> Collection[ObjectKey]:
        """The judged keys (in no particular order)."""
        return self._counts.keys()

    def settle(self, pieces: Pieces, loose: set[ObjectKey]) -> None:
        """Makes the keys those of ``pieces`` and ``loose`` (a translation's), counting only the pieces that
        are not last time's very objects and the loose keys that differ."""
        try:
            self._settle(pieces, loose)
        except BaseException:
            self._reset()  # half counted: the counts no longer match the pieces
            raise

    def _settle(self, pieces: Pieces, loose: set[ObjectKey]) -> None:
        counts, before = self._counts, self._pieces
        gone = [piece for key, piece in before.items() if key not in pieces]
        came = [piece for key, piece in pieces.items() if key not in before]
        if len(gone) + len(came) > len(pieces) // 2:  # most of it changed: counted again, in C
            self._count_afresh(pieces, loose)
            return
        size = len(counts)
        uncounted: list[ObjectKey] = []
        for key in chain(chain.from_iterable(gone), self._loose - loose):
            left = counts.get(key, 0) - 1
            if left > 0:
                counts[key] = left
            elif left == 0:
                counts.pop(key)  # ``del`` would run ``Counter.__delitem__``, Python code
                uncounted.append(key)
            else:  # not counted: the counts are not those of last time's pieces
                self._reset()
                self._count_afresh(pieces, loose)
                return
        added = [*came, loose - self._loose]
        for piece in added:
            counts.update(piece)
        self._pieces, self._loose = dict(pieces), set(loose)  # copies: the caller may add to its own
        removed = [key for key in uncounted if key not in counts]  # not counted again by what came
        if removed or len(counts) != size:
            self.pools.difference_update(key for key in removed if key.kind == INFERENCE_POOL_KIND)
            for piece in added:
                self.pools |= pools_among(piece)
            self.version = object()

    def _count_afresh(self, pieces: Pieces, loose: set[ObjectKey]) -> None:
        before = self._counts.keys()
        counts: Counter[ObjectKey] = Counter(loose)
        for piece in pieces.values():
            counts.update(piece)
        if counts.keys() != before:
            self.pools = set(pools_among(counts.keys()))
            self.version = object()
        self._counts, self._pieces, self._loose = counts, dict(pieces), set(loose)


def pools_among(keys: Collection[ObjectKey]) -> frozenset[ObjectKey]:
    """The InferencePools' keys among ``keys``."""
    if INFERENCE_POOL_KIND not in map(_kind, keys):  # most hold none: found so without Python code per key
        return frozenset()
    return frozenset(key for key in keys if key.kind == INFERENCE_POOL_KIND)


_kind = itemgetter(1)
"""An ``ObjectKey``'s kind (a named tuple's field, read in C)."""
