"""The server's ``Translator`` (which reuses Envoy resources from one load to the next) against a fresh
``translate`` of the same input, over random sequences of edits.

A hypothesis state machine adds, modifies and deletes objects of every kind found in ``examples/``, in
the translation goldens' inputs and in ``testdata/incremental/`` (routes with timeouts and model lists,
AIServiceBackends, security policies, Backends, Secrets, Gateways, Services, EndpointSlices, InferencePools
with endpoint pickers and their member Pods and AIServiceBackends, BackendTrafficPolicies, grants, ...),
with the Inference Extension on or off for the whole sequence. A modification changes one field of the
object: a number, a string (a name a reference no longer resolves, a kind nobody knows, ...) or a
field's type, so objects also become invalid and must be rejected alone. After every step the snapshot
(every resource's name and version, each type's version, the snapshot's version), the statuses and the
problems must equal a from-scratch translation, and a resource that did not change must be the very same
object as before (so Delta sends nothing for it). As in ``serve``, each step's input is built from the
previous step's (``ResourceSet(previous=...)``), an unedited document keeping its parsed object, so the
translator is handed the changed keys instead of comparing everything: they must include every key a
full comparison finds changed, and the set must list its objects as one built from scratch does. The
snapshot's consistency problems (checked again only for replaced resources) must be a fresh check's.
The IR's tables of upstreams, credentials and CA bundles must list what a fresh ``build_ir``'s do, in the
same order: Envoy is sent only the clusters a hop uses, so the snapshot alone would not show them all.

The translator's loops over many objects replay unchanged fragments a chunk at a time (``gatewayapi.memo``);
chunks are made small here so that a few objects make several.

``PIPELINE_PROPERTY_EXAMPLES`` sets how many edit sequences run (default 60; e.g. 2000 for a long soak).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from controlplane.gatewayapi import build_ir, memo
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.pipeline import TranslateOptions, Translator, translate
from controlplane.resources.parse import LoadResult, combine, load_text
from controlplane.resources.resource_set import ResourceSet
from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import TYPE_URLS

ROOT = Path(__file__).parent.parent
SOURCES = sorted(
    [
        *ROOT.glob("examples/**/*.yaml"),
        *ROOT.glob("tests/testdata/translate/*.in.yaml"),
        *ROOT.glob("tests/testdata/incremental/*.yaml"),
    ]
)

DocKey = tuple[str, str, str, str]


def _file_documents(path: Path) -> list[dict[str, Any]]:
    return [
        document
        for document in yaml.safe_load_all(path.read_text())
        if isinstance(document, dict) and isinstance(document.get("metadata"), dict)
    ]


FILES = [_file_documents(path) for path in SOURCES]
POOL = [document for documents in FILES for document in documents]


def _key(document: dict[str, Any]) -> DocKey:
    metadata = document.get("metadata") or {}
    return (
        str(document.get("apiVersion")),
        str(document.get("kind")),
        str(metadata.get("namespace", "")),
        str(metadata.get("name")),
    )


def _leaves(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths to every scalar under ``value`` (apiVersion and kind excepted: those make another object)."""
    if isinstance(value, dict):
        return [
            path
            for key, item in value.items()
            if at or key not in ("apiVersion", "kind")
            for path in _leaves(item, (*at, key))
        ]
    if isinstance(value, list):
        return [path for index, item in enumerate(value) for path in _leaves(item, (*at, index))]
    return [at]


def _mutated(document: dict[str, Any], path: tuple[Any, ...], how: int) -> dict[str, Any]:
    copy: dict[str, Any] = yaml.safe_load(yaml.safe_dump(document))
    parent: Any = copy
    for step in path[:-1]:
        parent = parent[step]
    old = parent[path[-1]]
    if how == 0 and isinstance(old, bool):
        new: Any = not old
    elif how == 0 and isinstance(old, int | float):
        new = old + 1
    elif how == 0 and isinstance(old, str):
        new = old + "x"
    elif how == 1:
        new = ["not", "a", "scalar"]  # the wrong type: the object is rejected alone
    else:
        new = None  # the field removed
    parent[path[-1]] = new
    return copy


def _versions(snapshot: Snapshot) -> dict[str, dict[str, str]]:
    return {
        type_url: {name: r.version for name, r in snapshot.get(type_url).items()} for type_url in TYPE_URLS
    }


class EditSequences(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[DocKey, dict[str, Any]] = {}
        self.options = TranslateOptions()
        self.translator = Translator()
        self.memo = TranslationMemo()
        """Builds the memo'd IR the translator's (private) memo builds: it is given the same inputs."""
        self.previous: Snapshot | None = None
        self.resources: ResourceSet | None = None
        self.parsed: dict[DocKey, tuple[dict[str, Any], LoadResult]] = {}
        """Each document's parse, kept while the document is not edited (as the file source does)."""

    @initialize(inference_extension=st.booleans())
    def choose_options(self, inference_extension: bool) -> None:
        """Off, every InferencePool is rejected; on, pools resolve to Pods, members and pickers."""
        self.options = TranslateOptions(inference_extension=inference_extension)
        self.translator = Translator(options=self.options)
        self.memo = TranslationMemo()

    @rule(index=st.integers(min_value=0, max_value=len(POOL) - 1))
    def add(self, index: int) -> None:
        document = POOL[index]
        self.objects[_key(document)] = document

    @rule(index=st.integers(min_value=0, max_value=len(FILES) - 1))
    def add_file(self, index: int) -> None:
        """A whole example at once: a configuration whose references resolve."""
        for document in FILES[index]:
            self.objects[_key(document)] = document

    @precondition(lambda self: bool(self.objects))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.objects)))
        del self.objects[key]

    @precondition(lambda self: bool(self.objects))
    @rule(data=st.data())
    def touch(self, data: st.DataObject) -> None:
        """Saved again unchanged (a file rewritten, an object delivered again): read anew, equal value."""
        key = data.draw(st.sampled_from(sorted(self.objects)))
        self.objects[key] = copy.deepcopy(self.objects[key])

    @precondition(lambda self: bool(self.objects))
    @rule(data=st.data(), how=st.integers(min_value=0, max_value=2))
    def modify(self, data: st.DataObject, how: int) -> None:
        key = data.draw(st.sampled_from(sorted(self.objects)))
        document = self.objects[key]
        leaves = _leaves(document)
        if not leaves:
            return
        path = data.draw(st.sampled_from(leaves))
        mutated = _mutated(document, path, how)
        del self.objects[key]
        self.objects[_key(mutated)] = mutated

    def _load(self) -> LoadResult:
        results = []
        for key, document in sorted(self.objects.items()):
            parsed = self.parsed.get(key)
            if parsed is None or parsed[0] is not document:
                parsed = self.parsed[key] = (
                    document,
                    load_text(yaml.safe_dump(document), file=f"{key}.yaml"),
                )
            results.append(parsed[1])
        return combine(results)

    @invariant()
    def equals_a_fresh_translation(self) -> None:
        loaded = self._load()
        resources = loaded.resource_set(previous=self.resources)
        self._check_changes(resources, before=self.resources)
        self.resources = resources
        incremental = self.translator.snapshot(resources)
        fresh = translate(resources, options=self.options)
        expected = fresh.snapshot()
        assert _versions(incremental.snapshot) == _versions(expected)
        assert dict(incremental.snapshot.type_versions) == dict(expected.type_versions)
        assert incremental.snapshot.version == expected.version
        # Worked out from the previous snapshot's findings when only some resources were replaced.
        assert incremental.snapshot.consistency_problems() == expected.consistency_problems()
        assert incremental.statuses == fresh.statuses
        assert incremental.problems == fresh.problems
        for type_url in TYPE_URLS:
            for name, resource in incremental.snapshot.get(type_url).items():
                assert resource.message.SerializeToString(deterministic=True) == expected.get(type_url)[
                    name
                ].message.SerializeToString(deterministic=True)
                before = self.previous.get(type_url).get(name) if self.previous else None
                if before is not None and before.version == resource.version:
                    assert before is resource, f"unchanged {name} was rebuilt"
        self.previous = incremental.snapshot
        self._check_registered_tables(resources)

    def _check_registered_tables(self, resources: ResourceSet) -> None:
        memoized = build_ir(resources, options=self.options, memo=self.memo).infra
        fresh = build_ir(resources, options=self.options).infra
        # Tuples: in the same order too. Stale or missing names show here even with no hop using them.
        assert memoized.upstreams == fresh.upstreams
        assert memoized.credentials == fresh.credentials
        assert memoized.ca_bundles == fresh.ca_bundles

    @staticmethod
    def _check_changes(resources: ResourceSet, *, before: ResourceSet | None) -> None:
        scratch = ResourceSet(resources)
        assert [loaded.key for loaded in resources] == [loaded.key for loaded in scratch]
        for model in {type(loaded.object) for loaded in resources}:
            assert [id(obj) for obj in resources.of_type(model)] == [
                id(obj) for obj in scratch.of_type(model)
            ]
        if before is None:
            return
        assert resources.changes is not None
        assert resources.changes.since is before.generation
        keys = {loaded.key for loaded in resources} | {loaded.key for loaded in before}
        differing = {key for key in keys if resources.get(key) != before.get(key)}
        assert differing <= resources.changes.keys


SETTINGS = settings(
    max_examples=int(os.environ.get("PIPELINE_PROPERTY_EXAMPLES", "60")),
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_incremental_translation_equals_a_fresh_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Chunks of 3 fragments: the loops over a few objects span several chunks, some replayed as one and
    # some fragment by fragment, as they do at 64 over thousands of objects.
    monkeypatch.setattr(memo, "CHUNK_SIZE", 3)
    run_state_machine_as_test(EditSequences, settings=SETTINGS)
