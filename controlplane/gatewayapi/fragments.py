"""What ``gatewayapi.memo`` keeps of a translation's fragments: what each read, its effects as they are
replayed, and chunks of consecutive fragments replayed as one.

Plain records and the callbacks replayed effects go to, apart from the memo's logic so that each file stays
about one thing; the memo's docstring says how they are used.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import is_
from typing import Any, Protocol

from controlplane.replaced import replaced_positions
from controlplane.resources.problems import ObjectKey

FragmentKey = tuple[str, ObjectKey]
"""What a fragment is for: ("backend" | "pool" | "policy" | "route", the object's key)."""
Effect = tuple[Any, ...]
"""("report", method, key, ...), ("register", table, name, value) or ("use", FragmentKey)."""


@dataclass(slots=True)
class Frame:
    keys: set[Hashable] = field(default_factory=set)
    kinds: set[type] = field(default_factory=set)
    effects: list[Effect] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Replay:
    """Recorded effects as they are replayed: the judged objects at once, the rest in order."""

    judged: tuple[ObjectKey, ...]
    ordered: tuple[Effect, ...]

    @classmethod
    def of(cls, effects: list[Effect]) -> Replay:
        judged = [effect[1] for effect in effects if effect[0] == "report" and effect[2] is None]
        ordered = [effect for effect in effects if effect[0] != "report" or effect[2] is not None]
        return cls(tuple(dict.fromkeys(judged)), tuple(ordered))


@dataclass(frozen=True, slots=True)
class Entry:
    keys: frozenset[Hashable]
    kinds: frozenset[type]
    replay: Replay
    result: Any


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive fragments of one ``cached_each`` loop, replayed as one when none of them read a change:
    a loop over thousands of objects then costs a check per chunk, not a look-up per fragment."""

    objects: tuple[Any, ...]
    """The objects the fragments are about, compared by identity: the same ones at the same places."""
    keys: frozenset[Hashable]
    kinds: frozenset[type]
    entries: dict[FragmentKey, Entry]
    judged: frozenset[ObjectKey]
    """Marked judged as it is (``judged.JudgedKeys`` counts it again only when it is another set)."""
    registered: dict[str, dict[Hashable, Any]]
    ordered: tuple[Effect, ...]
    """The fragments' other effects, in order."""
    uses: frozenset[FragmentKey]
    """The fragments ``ordered`` uses: when all are in place already, using them does nothing, and
    ``without_uses`` is all there is to replay."""
    without_uses: tuple[Effect, ...]
    results: tuple[Any, ...]
    used: UsedInBulk | None
    """The fragments used, and the ones they use, when all they do besides is register and mark objects
    judged (a credential of a BackendSecurityPolicy): put in place at once rather than one use at a time."""

    @classmethod
    def of(
        cls, objects: tuple[Any, ...], entries: dict[FragmentKey, Entry], *, used: dict[FragmentKey, Entry]
    ) -> Chunk:
        """The chunk of ``entries`` (about ``objects``), which used the fragments ``used`` (and no other)."""
        registered: dict[str, dict[Hashable, Any]] = {}
        ordered: list[Effect] = []
        for entry in entries.values():
            for effect in entry.replay.ordered:
                if effect[0] == "register":
                    registered.setdefault(effect[1], {})[effect[2]] = effect[3]
                else:
                    ordered.append(effect)
        judged = frozenset(chain.from_iterable(entry.replay.judged for entry in entries.values()))
        return cls(
            objects=objects,
            keys=frozenset().union(*(entry.keys for entry in entries.values())),
            kinds=frozenset().union(*(entry.kinds for entry in entries.values())),
            entries=entries,
            judged=judged,
            registered=registered,
            ordered=tuple(ordered),
            uses=frozenset(effect[1] for effect in ordered if effect[0] == "use"),
            without_uses=tuple(effect for effect in ordered if effect[0] != "use"),
            results=tuple(entry.result for entry in entries.values()),
            used=UsedInBulk.of(used),
        )

    def fits(self, objects: Sequence[Any], *, changed: set[Hashable], stale: set[type]) -> bool:
        """Whether these fragments are about ``objects`` and none of them read a change."""
        return (
            len(self.objects) == len(objects)
            and all(map(is_, self.objects, objects))
            and self.keys.isdisjoint(changed)
            and self.kinds.isdisjoint(stale)
        )


@dataclass(frozen=True, slots=True)
class UsedInBulk:
    """Fragments a chunk used, with their registrations and judged objects merged."""

    entries: dict[FragmentKey, Entry]
    keys: frozenset[FragmentKey]
    by_kind: dict[str, frozenset[FragmentKey]]
    judged: frozenset[ObjectKey]
    registered: dict[str, dict[Hashable, Any]]

    @classmethod
    def of(cls, entries: dict[FragmentKey, Entry]) -> UsedInBulk | None:
        """None when one of ``entries`` has an effect whose place among the others matters (a finding)."""
        if not entries:
            return None
        registered: dict[str, dict[Hashable, Any]] = {}
        for entry in entries.values():
            for effect in entry.replay.ordered:
                if effect[0] == "register":
                    registered.setdefault(effect[1], {})[effect[2]] = effect[3]
                elif effect[0] != "use":
                    return None
        by_kind: dict[str, set[FragmentKey]] = {}
        for key in entries:
            by_kind.setdefault(key[0], set()).add(key)
        judged = frozenset(chain.from_iterable(entry.replay.judged for entry in entries.values()))
        return cls(
            entries=entries,
            keys=frozenset(entries),
            by_kind={kind: frozenset(keys) for kind, keys in by_kind.items()},
            judged=judged,
            registered=registered,
        )


@dataclass(frozen=True, slots=True)
class Kept:
    inputs: tuple[Any, ...]
    replay: Replay
    result: Any


@dataclass(frozen=True, slots=True)
class ChunkedLoop:
    """One ``cached_each`` loop's chunks, found again by their first object, and where they start.

    A chunk ends after an object whose key's hash is a multiple of the chunk size (or when it is four times
    that long), so an object added or removed changes the chunk it is in, not every chunk after it."""

    objects: tuple[Any, ...]
    starts: tuple[int, ...]
    by_first: dict[int, Chunk]
    """``id()`` of a chunk's first object -> the chunk (which keeps that object, so the id stays its own)."""


def chunk_starts(objects: Sequence[Any], *, size: int) -> tuple[int, ...]:
    """Where each chunk of ``objects`` (which have ``key``) starts (see ``ChunkedLoop``)."""
    if not objects:
        return ()
    starts = [0]
    for index, obj in enumerate(objects[:-1], 1):
        if hash(obj.key) % size == 0 or index - starts[-1] >= 4 * size:
            starts.append(index)
    return tuple(starts)


class EffectSink(Protocol):
    """Applies a replayed effect to the current translation (its report and resolvers)."""

    def __call__(self, effect: Effect, /) -> None: ...


class RegisteredSink(Protocol):
    """Applies replayed ``("register", table, name, value)`` effects all at once, per table: registering
    only writes a table read after the translation, so where they fall among the others does not matter."""

    def __call__(self, tables: Mapping[str, Mapping[Any, Any]], /) -> None: ...


class JudgedSink(Protocol):
    """Applies the replayed ``("report", key, None)`` effects (the object was judged) all at once: they
    only add to sets, so where they fall among the others does not matter."""

    def __call__(self, keys: Collection[ObjectKey], /) -> None: ...


def same_keys(before: Sequence[Any], now: Sequence[Any]) -> bool:
    """Whether ``now`` has the keys ``before`` had (objects with ``key``), in the same places (looked at only
    where the objects differ, which are found without running Python code per object)."""
    if len(before) != len(now):
        return False
    return all(before[index].key == now[index].key for index in replaced_positions(before, now))
