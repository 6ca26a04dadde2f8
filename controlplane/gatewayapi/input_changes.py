"""Which input objects differ from the last translation's: what ``memo.TranslationMemo`` recomputes from.

Apart from the memo so that the memo is about fragments and this about the input. A source that can say what
it loaded again since the set the last translation read (``ResourceSet.changes``) is believed, and only
those keys are compared; otherwise every object is, and identical objects (the same ones, a first
translation's none) cost next to nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from controlplane.resources.problems import ObjectKey
from controlplane.resources.resource_set import ResourceSet


class InputChanges:
    """The last translation's input, compared with each next one."""

    def __init__(self) -> None:
        self._input: dict[ObjectKey, Any] = {}
        self._generation: object = None
        """``_input``'s ``ResourceSet.generation``: a set saying what changed since then is not compared."""
        self.reloaded: Collection[ObjectKey] | None = None
        """The keys the input says were loaded again since the last translation (changed or not, moved or
        not); None when it cannot tell."""

    def differing(self, resources: ResourceSet) -> tuple[Sequence[ObjectKey], Mapping[ObjectKey, Any]]:
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
