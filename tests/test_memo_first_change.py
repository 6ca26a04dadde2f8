"""The first change after a full translation costs what later changes do: the judged objects are not all
counted afresh then (``gatewayapi.judged``). A full translation marks its objects judged one at a time,
while a change replays whole chunks of fragments, handing over each chunk's set of judged objects; the
chunks hand those same sets over when they are made, so the first change finds them counted already. At
5,000 routes with policies, counting afresh was most of the first change's cost (row 3 of the benchmarks), and
comparing the loose keys a full translation leaves most of the rest."""

from __future__ import annotations

import pytest

from bench.manifests import gateway_manifests
from bench.scale_manifests import changed_route, edited_route_file, original_route_file
from controlplane.gatewayapi.judged import JudgedKeys, Pieces
from controlplane.pipeline import TranslateOptions, Translator, translate
from controlplane.resources.parse import LoadResult, combine, load_text
from controlplane.resources.problems import ObjectKey

ROUTES = 400
"""Enough for dozens of chunks (800 AIServiceBackends with a policy each), of which a change touches one."""


def _combined(documents: dict[str, LoadResult]) -> LoadResult:
    loaded = combine(documents.values())
    assert loaded.ok, loaded.problems
    return loaded


def test_the_first_change_after_a_full_translation_counts_no_judged_object_afresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    afresh: list[int] = []
    count_afresh = JudgedKeys._count_afresh

    def counted(self: JudgedKeys, pieces: Pieces, loose: set[ObjectKey]) -> None:
        afresh.append(len(pieces))
        count_afresh(self, pieces, loose)

    monkeypatch.setattr(JudgedKeys, "_count_afresh", counted)
    loose_sizes: list[int] = []
    settle = JudgedKeys.settle

    def settled(self: JudgedKeys, pieces: Pieces, loose: set[ObjectKey]) -> None:
        loose_sizes.append(len(loose))
        settle(self, pieces, loose)

    monkeypatch.setattr(JudgedKeys, "settle", settled)
    documents = {"shared": load_text(gateway_manifests(10080), file="shared")}
    for index in range(ROUTES):
        documents[f"r{index}"] = load_text(original_route_file(index, policies=True), file=f"r{index}")
    options = TranslateOptions(listen_address="127.0.0.1")
    translator = Translator(options=options)
    resources = _combined(documents).resource_set()
    translator.snapshot(resources)
    assert len(afresh) == 1  # the full translation
    # What a chunk's set judges is no loose key as well: the first change would compare each one by one.
    assert loose_sizes[-1] < ROUTES, f"{loose_sizes[-1]} loose keys left by the full translation"
    for attempt in range(3):
        index = changed_route(attempt, routes=ROUTES)
        text = edited_route_file(attempt, edit="backend", routes=ROUTES, policies=True)
        # As the file source hands a change over: the files not edited keep their parsed objects.
        documents[f"r{index}"] = load_text(text, file=f"r{index}")
        resources = _combined(documents).resource_set(previous=resources)
        incremental = translator.snapshot(resources)
        assert len(afresh) == 1, f"change {attempt} counted {afresh[-1]} pieces of judged objects afresh"
    fresh = translate(_combined(documents).resource_set(), options=options)
    assert incremental.statuses == fresh.statuses
