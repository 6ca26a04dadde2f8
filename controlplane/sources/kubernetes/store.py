"""The objects the watches have delivered, kept per watch scope, and the load they add up to.

Each reflector owns a scope; a relist replaces its scope's objects as a whole, a watch event touches one.
An event that changes nothing the translator reads (a new ``resourceVersion``, ``managedFields``, or our own
status write on a kind whose status is ours) updates the stored object without marking the store dirty, so
status writes do not feed back into rebuilds. Objects are parsed once per change, not once per load.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from controlplane.resources.meta import Resource, split_api_version
from controlplane.resources.parse import Loaded, LoadResult, combine, parse_document
from controlplane.resources.problems import ObjectKey, Problem
from controlplane.sources.kubernetes.reflector import WatchScope

_VOLATILE_METADATA = ("resourceVersion", "managedFields")


@dataclass(frozen=True, slots=True)
class _Entry:
    raw: dict[str, Any]
    fingerprint: str
    loaded: tuple[Loaded, ...]
    problems: tuple[Problem, ...]


class ObjectStore:
    """Not thread-safe: the source calls it from its event loop only."""

    def __init__(self, *, status_is_ours: Iterable[tuple[str, str]]) -> None:
        self._status_is_ours = frozenset(status_is_ours)
        self._scopes: dict[WatchScope, dict[ObjectKey, _Entry]] = {}
        self.dirty = False

    def replace(self, scope: WatchScope, objects: Sequence[dict[str, Any]]) -> None:
        previous = self._scopes.get(scope, {})
        current: dict[ObjectKey, _Entry] = {}
        for raw in objects:
            key = _key(raw)
            current[key] = self._entry(raw, previous.get(key))
        if current.keys() != previous.keys() or any(
            entry.fingerprint != previous[key].fingerprint for key, entry in current.items()
        ):
            self.dirty = True
        self._scopes[scope] = current

    def apply(self, scope: WatchScope, event_type: str, raw: dict[str, Any]) -> None:
        objects = self._scopes.setdefault(scope, {})
        key = _key(raw)
        if event_type == "DELETED":
            if objects.pop(key, None) is not None:
                self.dirty = True
            return
        before = objects.get(key)
        entry = self._entry(raw, before)
        objects[key] = entry
        if before is None or before.fingerprint != entry.fingerprint:
            self.dirty = True

    def drop(self, scope: WatchScope) -> None:
        if self._scopes.pop(scope, None):
            self.dirty = True

    def raw(self, key: ObjectKey) -> dict[str, Any] | None:
        for objects in self._scopes.values():
            entry = objects.get(key)
            if entry is not None:
                return entry.raw
        return None

    def resources(self) -> Iterator[Resource]:
        """Every stored object that parsed, in no particular order."""
        for objects in self._scopes.values():
            for entry in objects.values():
                for loaded in entry.loaded:
                    yield loaded.object

    def load(self) -> LoadResult:
        """Everything stored, parsed: what the translator gets. Clears ``dirty``."""
        self.dirty = False
        results = [
            LoadResult(objects=list(entry.loaded), problems=list(entry.problems))
            for _, objects in sorted(self._scopes.items(), key=lambda item: str(item[0]))
            for _, entry in sorted(objects.items())
        ]
        return combine(results)

    def _entry(self, raw: dict[str, Any], before: _Entry | None) -> _Entry:
        fingerprint = self._fingerprint(raw)
        if before is not None and before.fingerprint == fingerprint:
            return _Entry(raw, fingerprint, before.loaded, before.problems)
        loaded, problems = parse_document(raw)
        return _Entry(raw, fingerprint, tuple(loaded), tuple(problems))

    def _fingerprint(self, raw: dict[str, Any]) -> str:
        metadata = {k: v for k, v in (raw.get("metadata") or {}).items() if k not in _VOLATILE_METADATA}
        content = {**raw, "metadata": metadata}
        group, _ = split_api_version(str(raw.get("apiVersion", "")))
        if (group, raw.get("kind")) in self._status_is_ours:
            content.pop("status", None)
        return json.dumps(content, sort_keys=True, default=str)


def _key(raw: dict[str, Any]) -> ObjectKey:
    group, _ = split_api_version(str(raw.get("apiVersion", "")))
    metadata = raw.get("metadata") or {}
    return ObjectKey(
        group, str(raw.get("kind", "")), str(metadata.get("namespace", "")), str(metadata["name"])
    )
