"""Incremental translation: each resolved backend, pool, credential and route is kept with what it read.

``build_ir`` resolves every AIServiceBackend, then translates every route; resolving a route's backendRefs
resolves InferencePools and credentials on first use. Each of those is one *fragment*, computed through
``TranslationMemo.cached``, which records while it runs:

- its **reads**: every ``ResourceSet`` look-up it makes (an object's key, found or not) and every scan of a
  kind (``routes()``, ``security_policies()``, ...), including the reads of the fragments it uses;
- its **effects**: what it reports about any object, the clusters, CA bundles and credential secrets it
  registers, and which other fragments it uses (so they are in place even if whoever computed them first
  is gone).

The next translation compares the new input with the previous one (only the keys the input says changed, when
it can tell: ``ResourceSet.changes``). A fragment none of whose reads changed (no key it looked up was added,
removed or modified, no kind it scanned had a change) is not computed again: its effects are replayed, in the
same order as a full translation would make them (except that the objects it judged are marked so all at once,
and the clusters, secrets and tokens it registers are put in their tables at once: both only add to sets and
tables read after the translation), and its result is reused. The loops over every AIServiceBackend and route
(``cached_each``) go a chunk of fragments at a time: a chunk about the same objects as last time whose
fragments read no change is replayed as one (a check against the few changed keys, a few bulk updates), so
such a loop costs a few hundred steps at 10,000 objects. A fragment computed again whose result equals last
time's gives back last time's objects, so whatever is built from it can tell by identity that nothing changed.
Steps that combine many fragments' results (ordering routes, merging them into virtual hosts and listeners) go
through ``TranslationMemo.kept``: given the very same inputs as last time (compared by value, which for the
same objects is identity and costs next to nothing), they give back last time's result and replay its effects
instead of sorting and building again. The map of which BackendSecurityPolicy applies to what keeps itself up
to date (``policy_targets.PolicyTargets``, held through ``carried``), re-filing only the policies and
AIServiceBackends that changed; a fragment asking it about a target records a read of that target
(``recording.policy_target``), which a change of a policy naming the target (before or after) marks changed,
so a policy's change recomputes what it names, not every backend. A replayed chunk whose fragments used
fragments that only register and judge (a backend's policy credential) puts those in place at once. The
objects' noted fields come from last time's objects with notes unless one loaded again had or has some
(``reloaded``), and statuses are made again only for objects with findings now or before
(``report.StatusTable``). The set of judged objects and the tables of registrations are not filled afresh
either: a chunk hands over its very same judged set and registration dicts as last time (a made chunk its
judged sets too, so the first change after a full translation finds them counted already), and only those
that are not last time's objects are counted in (``judged.JudgedKeys``, ``registered.NamedTable``).
Which reads the input changed (objects' keys, the targets a changed policy names, minted tokens, scanned
kinds) is ``input_changes.InputChanges``'s to say. Gateways -> listeners and the
other policy maps are recomputed each time; they are linear in objects that are few. The recorded reads are
the dependency index, taken from the code that does the reading, so it cannot drift from it. ``translate``
computes everything, through the same code, with a memo that records nothing (``one_shot.OneShotMemo``);
tests/test_pipeline_incremental.py checks on random edit sequences that both give the same snapshot,
statuses and problems.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Sequence
from functools import partial
from itertools import chain
from typing import Any, TypeVar

from controlplane.gatewayapi.fragments import (
    Chunk,
    ChunkedLoop,
    Effect,
    EffectSink,
    Entry,
    FragmentKey,
    Frame,
    JudgedSink,
    Kept,
    RegisteredSink,
    Replay,
    UsedInBulk,
    chunk_starts,
    same_keys,
)
from controlplane.gatewayapi.input_changes import InputChanges
from controlplane.gatewayapi.recording import RecordingResourceSet
from controlplane.resources.meta import Resource
from controlplane.resources.parse import Loaded
from controlplane.resources.problems import ObjectKey
from controlplane.resources.resource_set import ResourceSet

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


CHUNK_SIZE = 64
"""Fragments per ``Chunk``: small enough that a change recomputes few checks, large enough that a loop
over 10,000 objects is a few hundred of them."""


class TranslationMemo:
    """Fragments of the previous translation and the recording of the current one (one at a time)."""

    def __init__(self) -> None:
        self._previous: dict[FragmentKey, Entry] = {}
        self._current: dict[FragmentKey, Entry] = {}
        self._kept_previous: dict[Hashable, Kept] = {}
        self._kept_current: dict[Hashable, Kept] = {}
        self._chunks_previous: dict[str, ChunkedLoop] = {}
        self._chunks_current: dict[str, ChunkedLoop] = {}
        self._carried: dict[Hashable, Any] = {}
        """What ``carried`` keeps from one translation to the next."""
        self._used: dict[str, set[FragmentKey]] = {}
        """The fragments of each kind ``cached`` put in place in this translation (a loop over the kind
        finds them there already)."""
        self._used_in_bulk: dict[str, list[frozenset[FragmentKey]]] = {}
        """The same for those put in place at once (``_place_used``), a set per chunk: rarely looked at (by
        a loop over their kind), so not merged."""
        self._placed: set[FragmentKey] = set()
        """``_current``'s keys again, as a set: a chunk's uses are looked for there without hashing them."""
        self._input = InputChanges()
        self._changed_keys: set[Hashable] = set()
        self._stale_kinds: set[type] = set()
        self._frames: list[Frame | None] = []
        self._sink: EffectSink | None = None
        self._judged: JudgedSink | None = None
        self._registered: RegisteredSink | None = None
        self.computed = 0
        """How many fragments the last translation computed (the others were replayed)."""
        self.statuses: Any = None
        """The last translation's ``report.StatusTable``, which the next one takes unchanged statuses from."""
        self.noted: dict[ObjectKey, Loaded] | None = None
        """The last translation's objects with noted fields, in input order (``gatewayapi._note_fields``)."""

    def begin(self, resources: ResourceSet) -> ResourceSet:
        """Starts a translation of ``resources``; returns the view of them the translation must read."""
        self._changed_keys, self._stale_kinds = self._input.changed_reads(resources, wanted=self._keeps_any())
        # What a translation that did not finish (an error) had put in place counts as well; after one that
        # finished there is none, and the tens of thousands of previous entries are not copied again.
        self._previous, self._current = _with(self._previous, self._current), {}
        self._kept_previous, self._kept_current = _with(self._kept_previous, self._kept_current), {}
        self._chunks_previous, self._chunks_current = _with(self._chunks_previous, self._chunks_current), {}
        self._used, self._used_in_bulk = {}, {}
        self._placed = set()
        self.computed = 0
        return RecordingResourceSet(resources, memo=self)

    def _keeps_any(self) -> bool:
        """Whether anything of an earlier translation is kept to be reused."""
        return any(
            (
                self._previous,
                self._current,
                self._kept_previous,
                self._kept_current,
                self._chunks_previous,
                self._chunks_current,
            )
        )

    @property
    def reloaded(self) -> Collection[ObjectKey] | None:
        """The keys the input says were loaded again since the last translation (``InputChanges``)."""
        return self._input.reloaded

    def bind(self, sink: EffectSink, *, judged: JudgedSink, registered: RegisteredSink) -> None:
        """Where replayed effects go in this translation (``judged``: those saying an object was judged,
        ``registered``: a chunk's registrations at once)."""
        self._sink, self._judged, self._registered = sink, judged, registered

    def finish(self) -> None:
        """Keeps only what this translation used, for the next one."""
        self._previous, self._current = self._current, {}
        self._kept_previous, self._kept_current = self._kept_current, {}
        self._chunks_previous, self._chunks_current = self._chunks_current, {}
        self._sink = self._judged = self._registered = None

    # --- recording ---

    def read_key(self, key: Hashable) -> None:
        frame = self._frames[-1] if self._frames else None
        if frame is not None:
            frame.keys.add(key)

    def read_kind(self, kind: type) -> None:
        frame = self._frames[-1] if self._frames else None
        if frame is not None:
            frame.kinds.add(kind)

    def effect(self, effect: Effect) -> None:
        """Called by the report and the resolvers for everything they do; applied by them as well."""
        frame = self._frames[-1] if self._frames else None
        if frame is not None:
            frame.effects.append(effect)

    def cached(self, key: FragmentKey, compute: Callable[[], T]) -> T:
        """``compute()``, or what it gave last time if nothing it read has changed (see the docstring)."""
        entry = self._current.get(key)
        if entry is None:
            previous = self._previous.get(key)
            if (
                previous is not None
                and previous.keys.isdisjoint(self._changed_keys)
                and previous.kinds.isdisjoint(self._stale_kinds)
            ):
                entry = previous
                self._replay(entry.replay)
            else:
                entry = self._compute(key, compute, previous=previous)
            self._current[key] = entry
            self._placed.add(key)
            self._used.setdefault(key[0], set()).add(key)
        parent = self._frames[-1] if self._frames else None
        if parent is not None:
            parent.keys |= entry.keys
            parent.kinds |= entry.kinds
            parent.effects.append(("use", key))
        result: T = entry.result
        return result

    def cached_each(self, kind: str, objects: Sequence[Resource], compute: Callable[[int], T]) -> list[T]:
        """``cached((kind, objects[i].key), lambda: compute(i))`` for each ``i`` in turn, for a loop over
        many objects at the top level. The fragments go in chunks of ``CHUNK_SIZE``: a chunk about the very
        same objects as last time none of whose fragments read a change is replayed as one (its judged
        objects and registrations at once, the fragments it used put in place at once when they only
        register and judge, its few other effects in order); in the others, each replayed fragment costs a
        look-up and its other effects (usually none or one)."""
        assert not self._frames, "cached_each() is for the top level"
        judged, registered = self._judged, self._registered
        assert judged is not None, "bind() first"
        assert registered is not None, "bind() first"
        current, previous = self._current, self._previous
        changed, stale = self._changed_keys, self._stale_kinds
        loop = self._chunks_previous.get(kind)
        if loop is not None and same_keys(loop.objects, objects):
            starts = loop.starts  # the same keys in the same places: the same chunks, without hashing each
        else:
            starts = chunk_starts(objects, size=CHUNK_SIZE)
        before = loop.by_first if loop is not None else {}
        spans = list(zip(starts, (*starts[1:], len(objects))[: len(starts)], strict=True))
        # First what can be replayed, so the objects judged by all of it are marked at once.
        plans: list[tuple[Sequence[Resource], Chunk | list[Entry | None]]] = []
        for start, end in spans:
            part = objects[start:end]
            chunk = before.get(id(part[0]))
            if chunk is not None and chunk.fits(part, changed=changed, stale=stale):
                judged(chunk.judged)
                plans.append((part, chunk))
                continue
            fresh: list[Entry | None] = []
            for obj in part:
                key = (kind, obj.key)
                entry = previous.get(key)
                fit = entry is not None and entry.keys.isdisjoint(changed) and entry.kinds.isdisjoint(stale)
                fresh.append(entry if fit and key not in current else None)
            judged(tuple(chain.from_iterable(entry.replay.judged for entry in fresh if entry is not None)))
            plans.append((part, fresh))
        results: list[T] = []
        chunks: dict[int, Chunk] = {}
        for (start, _), (part, plan) in zip(spans, plans, strict=True):
            if isinstance(plan, Chunk) and self._none_placed(kind, plan.entries):
                registered(plan.registered)
                used = plan.used
                if used is not None:  # placed already or not (judged again: harmless), as when it was made
                    judged(used.judged)
                if used is not None and used.keys.isdisjoint(self._placed):
                    self._place_used(used, none_placed=True)  # as a rule: all of them, at once
                    placed_all = True
                else:
                    placed_all = plan.uses <= self._placed
                    if used is not None and not placed_all:
                        self._place_used(used, none_placed=False)
                        placed_all = True
                self._replay_ordered(plan.without_uses if placed_all else plan.ordered)
                current.update(plan.entries)
                self._placed.update(plan.entries)
                results.extend(plan.results)
                chunks[id(part[0])] = plan
                continue
            fresh = list(plan.entries.values()) if isinstance(plan, Chunk) else plan
            entries: dict[FragmentKey, Entry] = {}
            for index, (obj, entry) in enumerate(zip(part, fresh, strict=True), start):
                key = (kind, obj.key)
                found = current.get(key)  # a fragment used by an earlier one is in place already
                if found is None and entry is not None:
                    self._replay_ordered(entry.replay.ordered)
                    found = current[key] = entry
                    self._placed.add(key)
                elif found is None:
                    found = self._compute(key, partial(compute, index), previous=previous.get(key))
                    current[key] = found
                    self._placed.add(key)
                entries[key] = found
                results.append(found.result)
            made = chunks[id(part[0])] = Chunk.of(tuple(part), entries, used=self._used_by(entries))
            judged(made.judged)  # the very sets a replay of it hands over (see the module docstring)
            if made.used is not None:
                judged(made.used.judged)
        self._chunks_current[kind] = ChunkedLoop(tuple(objects), starts, chunks)
        return results

    def _none_placed(self, kind: str, entries: dict[FragmentKey, Entry]) -> bool:
        """Whether none of ``entries`` (fragments of ``kind``) was put in place already in this
        translation, by ``cached`` or along with a chunk that used it."""
        used = self._used.get(kind)
        if used and not used.isdisjoint(entries):
            return False
        return all(keys.isdisjoint(entries) for keys in self._used_in_bulk.get(kind, ()))

    def _used_by(self, entries: dict[FragmentKey, Entry]) -> dict[FragmentKey, Entry]:
        """The fragments ``entries`` use, and the ones those use, as placed in this translation."""
        found: dict[FragmentKey, Entry] = {}
        pending = [
            effect[1] for entry in entries.values() for effect in entry.replay.ordered if effect[0] == "use"
        ]
        while pending:
            key = pending.pop()
            if key not in found:
                found[key] = entry = self._current[key]
                pending.extend(effect[1] for effect in entry.replay.ordered if effect[0] == "use")
        return found

    def _place_used(self, used: UsedInBulk, *, none_placed: bool) -> None:
        """Puts a replayed chunk's used fragments in place at once, as using each would: their reads are
        the chunk's, so they read no change either. Registering again is harmless; the caller has marked
        their objects judged. ``none_placed``: none of them is in place yet (the caller has just looked)."""
        registered = self._registered
        assert registered is not None, "bind() first"
        registered(used.registered)
        if none_placed:  # as a rule: then all at once
            self._current.update(used.entries)
            for kind, keys in used.by_kind.items():
                self._used_in_bulk.setdefault(kind, []).append(keys)
        else:
            for key in used.keys - self._placed:
                self._current[key] = used.entries[key]
                self._used.setdefault(key[0], set()).add(key)
        self._placed |= used.keys

    def kept(self, key: Hashable, inputs: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """``compute()``, or what it gave last translation (its effects replayed) if it was given ``inputs``
        equal to these then: for a step that combines fragments' results, which are the same objects as
        last time when nothing they read changed. ``compute`` may read only ``inputs``."""
        assert not self._frames, "kept() combines fragments; it is not part of one"
        assert key not in self._kept_current, f"kept({key!r}) twice in one translation"
        previous = self._kept_previous.get(key)
        if previous is not None and previous.inputs == inputs:
            self._replay(previous.replay)
            # Kept with today's inputs: equal ones that are other objects (an object loaded again unchanged)
            # are compared again next time only if they are reloaded again, not on every change from now on.
            entry = Kept(inputs, previous.replay, previous.result)
        else:
            frame = Frame()
            self._frames.append(frame)
            try:
                result = compute()
            finally:
                self._frames.pop()
            entry = Kept(inputs, Replay.of(frame.effects), result)
        self._kept_current[key] = entry
        kept: T = entry.result
        return kept

    def carried(self, key: Hashable, make: Callable[[], T]) -> T:
        """The object kept under ``key`` since an earlier translation, or ``make()``'s, kept from now on: for
        a step that keeps its own state up to date with the input (``policy_targets.PolicyTargets``). A
        memo that records nothing (``one_shot``) is used once, so the step starts from nothing there."""
        found = self._carried.get(key)
        if found is None:
            found = self._carried[key] = make()
        carried: T = found
        return carried

    def _compute(self, key: FragmentKey, compute: Callable[[], Any], *, previous: Entry | None) -> Entry:
        frame = Frame(keys={key[1]})  # the object the fragment is about, which it may not look up itself
        self._frames.append(frame)
        try:
            result = compute()
        finally:
            self._frames.pop()
        self.computed += 1
        if previous is not None and previous.result == result:
            result = previous.result  # the same objects: what is built from them is seen to be unchanged
        return Entry(frozenset(frame.keys), frozenset(frame.kinds), Replay.of(frame.effects), result)

    def _replay(self, replay: Replay) -> None:
        judged = self._judged
        assert judged is not None, "bind() first"
        judged(replay.judged)
        self._replay_ordered(replay.ordered)

    def _replay_ordered(self, ordered: tuple[Effect, ...]) -> None:
        if not ordered:
            return
        sink = self._sink
        assert sink is not None, "bind() first"
        current = self._current
        # Not recording: what a replayed fragment uses is already in its own recorded reads and effects
        # (nothing records at the top level anyway).
        nested = bool(self._frames)
        if nested:
            self._frames.append(None)
        try:
            for effect in ordered:
                # A used fragment already in place needs nothing: ``cached`` would only find it there.
                if effect[0] != "use" or effect[1] not in current:
                    sink(effect)
        finally:
            if nested:
                self._frames.pop()


def _with(earlier: dict[K, V], later: dict[K, V]) -> dict[K, V]:
    """``earlier`` with ``later``'s entries put in: ``earlier`` itself when ``later`` is empty."""
    return {**earlier, **later} if later else earlier
