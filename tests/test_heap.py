"""Loading and translating make no reference cycles, which ``controlplane.heap`` relies on to freeze what
they build without walking it first."""

from __future__ import annotations

import gc
from pathlib import Path

from controlplane.pipeline import Translator, translate
from controlplane.sources.files import FileSource

ROOT = Path(__file__).parent.parent
INPUTS = [ROOT / "examples", *sorted((ROOT / "tests" / "testdata" / "translate").glob("*.in.yaml"))]


def test_loading_and_translating_every_example_and_golden_input_leaves_no_cyclic_garbage() -> None:
    translator = Translator()
    # Earlier tests' garbage can take more than one pass (finalizers that free further cycles): clear it all.
    for _ in range(10):
        if gc.collect() == 0:
            break
    gc.disable()
    try:
        for path in INPUTS:
            resources = FileSource([path]).load().resource_set()
            translator.snapshot(resources)
            translate(resources).snapshot()
        assert gc.collect() == 0
    finally:
        gc.enable()
