"""What the translator found about each input object: problems for the CLI and logs, conditions for status.

Every judgement about an object goes through one ``Report`` so that the problem lines users read and the
``status.conditions`` they see with kubectl always agree. Condition types follow Gateway API usage:
``Accepted`` (the object is in use), ``ResolvedRefs`` (everything it points at exists), and a ``Warnings``
condition naming fields that were accepted but have no effect yet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from operator import itemgetter

from controlplane.gatewayapi.fragments import Effect
from controlplane.gatewayapi.judged import JudgedKeys, Pieces
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.resources.meta import Resource
from controlplane.resources.parse import Loaded
from controlplane.resources.problems import ObjectKey, Problem, Severity

SourceLookup = Callable[[ObjectKey], Loaded | None]

_name = itemgetter(3)
"""An ``ObjectKey``'s name."""

_SORT_RUN = 2000
"""Names ``_in_key_order`` sorts in one C call: well under a millisecond, so the GIL changes hands between
runs."""


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class ObjectStatus:
    key: ObjectKey
    conditions: tuple[Condition, ...]
    parents: tuple[ObjectKey, ...] = ()
    """For an InferencePool: the Gateways of ours it serves through routes attached there, the conditions
    applying to each (the Inference Extension's status is per parent)."""
    managed_parents: frozenset[ObjectKey] = frozenset()
    """Every Gateway this control plane programs: a parent entry naming one of them that is not in
    ``parents`` any more is ours to remove; entries naming other Gateways belong to other controllers."""


@dataclass(frozen=True, slots=True)
class StatusTable:
    """A translation's statuses, with what the next one needs to make its own from them quickly."""

    by_key: dict[ObjectKey, ObjectStatus]
    judged: object
    """The ``JudgedKeys.version`` of ``by_key``'s keys: the next translation judged the same objects when
    its version is this very object."""
    unwell: frozenset[ObjectKey]
    """The objects whose status is not all well: made again each time."""


@dataclass(frozen=True, slots=True)
class _Parent:
    """A report effect: the object is served through this Gateway."""

    gateway: ObjectKey


@dataclass(frozen=True, slots=True)
class _Finding:
    severity: Severity | None
    """None: a status condition only; the loader already printed the problem line."""
    field_path: str
    message: str
    condition: str
    reason: str


class Report:
    def __init__(self, *, source_of: SourceLookup, memo: TranslationMemo | None = None) -> None:
        self._source_of = source_of
        self._memo = memo
        self._findings: dict[ObjectKey, list[_Finding]] = defaultdict(list)
        self._parents: dict[ObjectKey, set[ObjectKey]] = defaultdict(set)
        self._judged_pieces: Pieces = {}
        """What ``judged`` was given (by ``id``), for ``JudgedKeys.settle``."""
        self._judged_loose: set[ObjectKey] = set()
        """The other keys judged."""
        self._judged = memo.carried("judged keys", JudgedKeys) if memo is not None else JudgedKeys()

    def consider(self, obj: Resource) -> None:
        """Marks ``obj`` as judged, so it gets a status even when nothing was wrong."""
        self.replay(("report", obj.key, None))

    def reject(self, obj: Resource, field_path: str, message: str, *, reason: str = "Invalid") -> None:
        """``obj`` (or the part at ``field_path``) cannot be used; an error line and ``Accepted=False``."""
        self._add(obj, _Finding(Severity.ERROR, field_path, message, "Accepted", reason))

    def unresolved(
        self, obj: Resource, field_path: str, message: str, *, reason: str = "BackendNotFound"
    ) -> None:
        """A reference in ``obj`` points at nothing usable; the rest of ``obj`` still works."""
        self._add(obj, _Finding(Severity.ERROR, field_path, message, "ResolvedRefs", reason))

    def parent(self, obj: Resource, gateway: ObjectKey) -> None:
        """``obj`` is served through ``gateway`` (a route of ours attached there uses it)."""
        self.replay(("report", obj.key, _Parent(gateway)))

    def warn(
        self, obj: Resource, field_path: str, message: str, *, reason: str = "UnimplementedFields"
    ) -> None:
        self._add(obj, _Finding(Severity.WARNING, field_path, message, "Warnings", reason))

    def note(self, obj: Resource, field_path: str, message: str, *, reason: str) -> None:
        """A ``Warnings`` condition for something the loader has already reported as a problem line."""
        self._add(obj, _Finding(None, field_path, message, "Warnings", reason))

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for key, findings in self._findings.items():
            source = self._source_of(key)
            for finding in findings:
                if finding.severity is None:
                    continue
                if source is not None:
                    # Knows the file, the document and the ``items[i]`` prefix of objects inside a List.
                    out.append(
                        source.problem(
                            severity=finding.severity, message=finding.message, field_path=finding.field_path
                        )
                    )
                else:
                    out.append(
                        Problem(
                            severity=finding.severity,
                            message=finding.message,
                            kind=key.kind,
                            namespace=key.namespace or None,
                            name=key.name,
                            field_path=finding.field_path,
                        )
                    )
        return out

    def statuses(
        self, *, managed_parents: frozenset[ObjectKey] = frozenset(), previous: StatusTable | None = None
    ) -> StatusTable:
        """A status per judged object, in key order. ``previous`` (the last translation's) lends its order
        and its statuses of objects still all well: most of them. ``managed_parents`` (the Gateways that are
        ours) goes with every InferencePool's, which is always made again (see ``ObjectStatus``)."""
        previous = previous or StatusTable({}, None, frozenset())
        before, unwell = previous.by_key, previous.unwell
        judged = self._judged
        judged.settle(self._judged_pieces, self._judged_loose)
        pools = judged.pools
        if previous.judged is judged.version:  # the same objects judged (known without comparing them all)
            # Only those with findings now or before get a status made again; with none, last time's table
            # is this one's (not copied: tens of thousands of statuses, every change).
            remade = {*unwell, *self._findings, *pools}
            out = dict(before) if remade else before
            for key in remade:
                out[key] = self._status(key, managed_parents)
        elif not before:  # a first translation: every status is made, most of them all well
            findings = self._findings
            out = {
                key: self._status(key, managed_parents)
                if key in findings or key in pools
                else ObjectStatus(key, _ALL_WELL)
                for key in _in_key_order(judged.keys)
            }
        else:
            out = {}
            for key in _in_key_order(judged.keys):
                kept = before.get(key)
                if kept is None or key in unwell or key in self._findings or key in pools:
                    out[key] = self._status(key, managed_parents)
                else:
                    out[key] = kept
        # Only a status made now from findings is not all well: the few objects with findings are looked at.
        return StatusTable(
            out,
            judged.version,
            frozenset(key for key in self._findings if out[key].conditions is not _ALL_WELL),
        )

    def _status(self, key: ObjectKey, managed_parents: frozenset[ObjectKey]) -> ObjectStatus:
        findings = self._findings.get(key)
        conditions = _conditions(findings) if findings else _ALL_WELL
        if key in self._judged.pools:
            parents = tuple(sorted(self._parents.get(key, ()), key=ObjectKey.order))
            return ObjectStatus(key, conditions, parents, managed_parents)
        return ObjectStatus(key, conditions)

    def replay(self, effect: Effect) -> None:
        """Records one ``("report", key, finding or None)`` effect for the memo and applies it."""
        if self._memo is not None:
            self._memo.effect(effect)
        self.apply(effect)

    def judged(self, keys: Collection[ObjectKey]) -> None:
        """Applies ``("report", key, None)`` effects all at once (``fragments.JudgedSink``): a replayed
        chunk's, or a just-made chunk's set of what its fragments marked one at a time. An immutable
        collection (frozenset, tuple) is kept as it is: the next translation's ``JudgedKeys`` looks only at
        those that are not the very same objects again."""
        if isinstance(keys, frozenset | tuple):
            self._judged_pieces[id(keys)] = keys
            if self._judged_loose and isinstance(keys, frozenset):
                # Judged through the piece now: the fewer loose keys, the fewer ``JudgedKeys`` compares
                # one by one with the next translation's (a chunk's set, handed over after its fragments
                # marked their objects one at a time).
                self._judged_loose.difference_update(keys)
        else:
            self._judged_loose.update(keys)

    def apply(self, effect: Effect) -> None:
        """Applies one ``("report", key, finding or None)`` effect (a replayed one: nothing to record)."""
        _, key, finding = effect
        self._judged_loose.add(key)
        if finding is None:
            return  # most effects: the object was judged
        if isinstance(finding, _Parent):
            self._parents[key].add(finding.gateway)
            return
        # The same route is judged once per listener it attaches to; say each thing once.
        if finding not in self._findings[key]:
            self._findings[key].append(finding)

    def _add(self, obj: Resource, finding: _Finding) -> None:
        self.replay(("report", obj.key, finding))


def _conditions(findings: Sequence[_Finding]) -> tuple[Condition, ...]:
    if not findings:
        return _ALL_WELL
    by_type: dict[str, list[_Finding]] = defaultdict(list)
    for finding in findings:
        by_type[finding.condition].append(finding)
    conditions = [
        _condition("Accepted", by_type.get("Accepted", []), ok_reason="Accepted"),
        _condition("ResolvedRefs", by_type.get("ResolvedRefs", []), ok_reason="ResolvedRefs"),
    ]
    warnings = by_type.get("Warnings", [])
    if warnings:
        conditions.append(Condition("Warnings", True, warnings[0].reason, _message(warnings)))
    return tuple(conditions)


def _condition(kind: str, findings: list[_Finding], *, ok_reason: str) -> Condition:
    if not findings:
        return Condition(kind, True, ok_reason, "")
    return Condition(kind, False, findings[0].reason, _message(findings))


def _message(findings: list[_Finding]) -> str:
    return "; ".join(f"{f.field_path}: {f.message}" if f.field_path else f.message for f in findings)


_ALL_WELL = (
    Condition("Accepted", True, "Accepted", ""),
    Condition("ResolvedRefs", True, "ResolvedRefs", ""),
)
"""Most objects' conditions: built once, not once per object per translation."""


def _in_key_order(keys: Collection[ObjectKey]) -> list[ObjectKey]:
    """``keys`` in ``ObjectKey.order``: grouped by all but the name (a few groups: kinds per namespace),
    taken in the order of those groups, each group's names sorted. Sorting the names alone compares short
    strings that differ early, several times cheaper than the keys' whole order strings. A group's names are
    sorted in runs of ``_SORT_RUN`` then merged by one more sort (which finds the runs and merges them, a
    fraction of a sort): one sort of 10k names holds the GIL for ~3 ms in a single C call, which the event
    loop's thread waits out; a run holds it well under a millisecond."""
    groups: defaultdict[tuple[str, ...], list[ObjectKey]] = defaultdict(list)
    for key in keys:
        groups[key[:3]].append(key)
    ordered: list[ObjectKey] = []
    for prefix in sorted(groups):
        members = groups[prefix]
        if len(members) <= _SORT_RUN:
            ordered += sorted(members, key=_name)
            continue
        runs: list[ObjectKey] = []
        for start in range(0, len(members), _SORT_RUN):
            runs += sorted(members[start : start + _SORT_RUN], key=_name)
        ordered += sorted(runs, key=_name)
    return ordered
