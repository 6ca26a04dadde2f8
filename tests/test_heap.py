"""Loading and translating make no reference cycles, which ``controlplane.heap`` relies on to freeze what
they build without walking it first; ``release_gradually`` frees what only its containers held."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from controlplane.heap import drained, release_gradually
from controlplane.pipeline import Translator, translate
from controlplane.sources.files import FileSource

ROOT = Path(__file__).parent.parent
INPUTS = [ROOT / "examples", *sorted((ROOT / "tests" / "testdata" / "translate").glob("*.in.yaml"))]


def _load_and_translate_everything(translator: Translator) -> None:
    for path in INPUTS:
        resources = FileSource([path]).load().resource_set()
        translator.snapshot(resources)
        translate(resources).snapshot()


@pytest.mark.parametrize("reuse", [True, False], ids=["reusing", "throwaway memo and translator"])
def test_loading_and_translating_every_example_and_golden_input_leaves_no_cyclic_garbage(reuse: bool) -> None:
    translator = Translator(reuse=reuse)
    # Once first: what libraries set up on first use (schemas, caches) is not what every load makes.
    _load_and_translate_everything(translator)
    gc.collect()
    gc.disable()
    try:
        _load_and_translate_everything(translator)
        assert gc.collect() == 0
    finally:
        gc.enable()


class _Node:
    """Something weakly referable, holding more of its kind."""

    def __init__(self, *children: _Node) -> None:
        self.children = children


def test_release_gradually_empties_its_containers_and_frees_what_only_they_held() -> None:
    shared = _Node()
    by_key = {index: _Node(_Node(), shared) for index in range(50)}
    in_order = [_Node(_Node()) for _ in range(50)]
    members = {_Node() for _ in range(50)}
    held = [weakref.ref(node) for node in (*by_key.values(), *in_order, *members)]
    release_gradually(by_key, in_order, members)
    assert (by_key, in_order, members) == ({}, [], set())
    assert [ref for ref in held if ref() is not None] == []
    assert shared.children == ()  # what another holder keeps stays whole


def test_drained_hands_the_items_over_in_order_each_freed_once_the_consumer_lets_go() -> None:
    items = [_Node() for _ in range(20)]
    held = [weakref.ref(node) for node in items]
    handed = drained(items)
    for index in range(20):
        node = next(handed)
        assert node is held[index]()
        del node
        # Everything handed over so far is gone; what is still to come is alive.
        assert [ref() is None for ref in held] == [position <= index for position in range(20)]
    assert next(handed, None) is None
    assert items == []
