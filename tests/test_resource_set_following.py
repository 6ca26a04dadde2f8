"""A ResourceSet built from the previous one says what changed and holds what a set built from scratch
holds, whether the entries come in the same places (compared by position), in another order, or with
some added or removed (indexed again)."""

from __future__ import annotations

import pytest

from controlplane.resources.core import ConfigMap, Secret
from controlplane.resources.parse import Loaded, load_text
from controlplane.resources.problems import ObjectKey
from controlplane.resources.resource_set import ResourceSet


def _entry(kind: str, name: str, value: str) -> Loaded:
    data = "stringData" if kind == "Secret" else "data"
    text = (
        f"apiVersion: v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: default}}\n"
        f"{data}: {{k: {value}}}\n"
    )
    result = load_text(text, file=f"{name}.yaml")
    assert result.ok, result.problems
    return result.objects[0]


def _entries() -> list[Loaded]:
    return [
        _entry(kind, f"{kind.lower()}-{index}", "v0")
        for index in range(4)
        for kind in ("Secret", "ConfigMap")
    ]


def _same_as_from_scratch(resources: ResourceSet, entries: list[Loaded]) -> None:
    fresh = ResourceSet(entries)
    assert list(resources) == list(fresh)
    assert resources.of_type(Secret) == fresh.of_type(Secret)
    assert resources.of_type(ConfigMap) == fresh.of_type(ConfigMap)


def _key(kind: str, name: str) -> ObjectKey:
    return ObjectKey("", kind, "default", name)


@pytest.mark.parametrize("reordered", [False, True])
def test_a_replaced_entry_is_the_only_change(reordered: bool) -> None:
    entries = _entries()
    previous = ResourceSet(entries)
    previous.of_type(Secret)  # class lists built: the next set patches them
    entries[3] = _entry("ConfigMap", "configmap-1", "v1")
    given = list(reversed(entries)) if reordered else entries
    resources = ResourceSet(given, previous=previous)
    assert resources.changes is not None
    assert resources.changes.since is previous.generation
    assert resources.changes.keys == {_key("ConfigMap", "configmap-1")}
    _same_as_from_scratch(resources, entries)
    assert previous.of_type(ConfigMap)[1].data == {"k": "v0"}  # the previous set is left as it was
    assert resources.of_type(ConfigMap)[1].data == {"k": "v1"}


def test_added_and_removed_entries_are_changes() -> None:
    entries = _entries()
    previous = ResourceSet(entries)
    removed = entries.pop(0)
    entries.append(_entry("Secret", "secret-9", "v0"))
    resources = ResourceSet(entries, previous=previous)
    assert resources.changes is not None
    assert resources.changes.keys == {removed.key, _key("Secret", "secret-9")}
    _same_as_from_scratch(resources, entries)
    # And back: the next set follows this one by position again.
    entries[3] = _entry("Secret", "secret-2", "v1")
    following = ResourceSet(entries, previous=resources)
    assert following.changes is not None
    assert following.changes.keys == {_key("Secret", "secret-2")}
    _same_as_from_scratch(following, entries)


def test_a_duplicate_is_refused_whatever_came_before() -> None:
    entries = _entries()
    previous = ResourceSet(entries)
    with pytest.raises(ValueError, match="duplicate object Secret/default/secret-0"):
        ResourceSet([*entries, _entry("Secret", "secret-0", "v1")], previous=previous)
