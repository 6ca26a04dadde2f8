"""Which reads of the last translation the input changed: what ``memo.TranslationMemo`` recomputes from.

Apart from the memo so that the memo is about fragments and this about the input. A source that can say what
it loaded again since the set the last translation read (``ResourceSet.changes``) is believed, and only
those keys are compared; otherwise every object is, and identical objects (the same ones, a first
translation's none) cost next to nothing. The objects that differ are turned into the reads they answer
(``recording``'s keys): the objects' own keys, the targets a changed BackendSecurityPolicy named before or
names now, minted tokens, and the kinds whose scans are stale.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Any, NamedTuple

from controlplane.gatewayapi.recording import TOKENS_MODE, policy_target, token_key
from controlplane.resources.aigateway import BackendSecurityPolicy
from controlplane.resources.problems import ObjectKey
from controlplane.resources.resource_set import ResourceSet

_SLICE = 1024
"""Keys added to a set per C call where there may be tens of thousands (a fraction of a millisecond each)."""


class ChangedReads(NamedTuple):
    """The reads whose answer differs from the last translation's."""

    keys: set[Hashable]
    """Looked-up keys (objects, policy targets, tokens) whose answer changed."""
    stale_kinds: set[type]
    """Kinds a scan of which is stale: every class a changed object is an instance of."""


class InputChanges:
    """The last translation's input, compared with each next one."""

    def __init__(self) -> None:
        self._input: dict[ObjectKey, Any] = {}
        self._generation: object = None
        """``_input``'s ``ResourceSet.generation``: a set saying what changed since then is not compared."""
        self._tokens: dict[ObjectKey, Any] = {}
        self._minting: bool | None = None
        self.reloaded: Collection[ObjectKey] | None = None
        """The keys the input says were loaded again since the last translation (changed or not, moved or
        not); None when it cannot tell."""

    def changed_reads(self, resources: ResourceSet, *, wanted: bool) -> ChangedReads:
        """The reads ``resources`` answers differently from the last translation's input, which it replaces.
        ``wanted``: False when nothing of the last translation is kept (a first translation), so there is
        nothing to look through 25k changed objects for (tokens are compared all the same: they are few)."""
        differing, before = self._differing(resources)
        if not wanted:
            differing = ()
        changed: set[Hashable] = set()
        for start in range(0, len(differing), _SLICE):
            # A slice at a time: many keys (a folder rewritten) hashed in one C call hold the GIL for ms.
            changed.update(differing[start : start + _SLICE])
        kinds: set[type] = set()
        for key in differing:
            for obj in (before.get(key), resources.get(key)):
                if obj is not None:
                    kinds.add(type(obj))
                    if isinstance(obj, BackendSecurityPolicy):
                        # Which policy applies to a target changes only for the targets a policy named
                        # before or names now (a legacy ``backendSecurityPolicyRef`` is read as a key).
                        changed.update(
                            policy_target(ref.kind, obj.namespace, ref.name) for ref in obj.spec.target_refs
                        )
        tokens = dict(resources.tokens())
        changed.update(
            token_key(key)
            for key in tokens.keys() | self._tokens.keys()
            if tokens.get(key) != self._tokens.get(key)
        )
        if resources.minting != self._minting:
            changed.add(TOKENS_MODE)
        self._tokens, self._minting = tokens, resources.minting
        # A scan of a kind is stale when an object of it or of a subclass changed.
        return ChangedReads(changed, {kind for changed_kind in kinds for kind in changed_kind.__mro__})

    def _differing(self, resources: ResourceSet) -> tuple[Sequence[ObjectKey], Mapping[ObjectKey, Any]]:
        """The keys whose object differs from the last translation's input, and the objects they had
        there; keeps ``resources`` as the input to compare the next one with."""
        changes = resources.changes
        self.reloaded = None
        if changes is not None and changes.since is self._generation:
            self.reloaded = changes.keys
            before = {key: self._input.get(key) for key in changes.keys}
            for key in changes.keys:
                obj = resources.get(key)
                if obj is None:
                    self._input.pop(key, None)
                else:
                    self._input[key] = obj
            # Read again but equal (a file saved unchanged, an event changing nothing read): not a change.
            differing: list[ObjectKey] = [key for key in changes.keys if before[key] != self._input.get(key)]
        else:
            current = {loaded.key: loaded.object for loaded in resources}
            before = self._input
            # ``None != obj`` would run the model's own (Python) ``__eq__``: on a first translation, for each.
            differing = (
                [
                    key
                    for key, obj in current.items()
                    if (old := before.get(key)) is not obj and (old is None or old != obj)
                ]
                + [key for key in before if key not in current]
                if before
                else list(current)
            )
            self._input = current
        self._generation = resources.generation
        return differing, before
