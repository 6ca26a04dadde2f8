"""Loading and translating make no reference cycles, which ``controlplane.heap`` relies on to freeze what
they build without walking it first."""

from __future__ import annotations

import gc
from pathlib import Path

from controlplane.pipeline import Translator, translate
from controlplane.sources.files import FileSource

ROOT = Path(__file__).parent.parent
INPUTS = [ROOT / "examples", *sorted((ROOT / "tests" / "testdata" / "translate").glob("*.in.yaml"))]


def _load_and_translate_everything(translator: Translator) -> None:
    for path in INPUTS:
        resources = FileSource([path]).load().resource_set()
        translator.snapshot(resources)
        translate(resources).snapshot()


def test_loading_and_translating_every_example_and_golden_input_leaves_no_cyclic_garbage() -> None:
    translator = Translator()
    # Once first: what libraries set up on first use (schemas, caches) is not what every load makes.
    _load_and_translate_everything(translator)
    gc.collect()
    gc.disable()
    try:
        _load_and_translate_everything(translator)
        assert gc.collect() == 0
    finally:
        gc.enable()
