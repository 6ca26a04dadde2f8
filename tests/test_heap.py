"""Loading and translating make no reference cycles, which ``controlplane.heap`` relies on to freeze what
they build without walking it first; ``release_gradually`` frees what only its containers held."""

from __future__ import annotations

import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from controlplane.heap import release_gradually

ROOT = Path(__file__).parent.parent

_COUNT_CYCLIC_GARBAGE = """
import gc, sys
from pathlib import Path
from controlplane.pipeline import Translator, translate
from controlplane.sources.files import FileSource

root = Path(sys.argv[1])
inputs = [root / "examples", *sorted((root / "tests" / "testdata" / "translate").glob("*.in.yaml"))]
translator = Translator(reuse=sys.argv[2] == "reusing")

def load_and_translate_everything():
    for path in inputs:
        resources = FileSource([path]).load().resource_set()
        translator.snapshot(resources)
        translate(resources).snapshot()

# Once first: what libraries set up on first use (schemas, caches) is not what every load makes.
load_and_translate_everything()
gc.collect()
gc.disable()
load_and_translate_everything()
print(gc.collect())  # the last line: a log line the load prints may come before it
"""


@pytest.mark.envoy  # starts a Python process of its own
@pytest.mark.parametrize("reuse", ["reusing", "throwaway"], ids=["reusing", "throwaway memo and translator"])
def test_loading_and_translating_every_example_and_golden_input_leaves_no_cyclic_garbage(reuse: str) -> None:
    # In a process of its own: the collector counts every thread's garbage, and in this one earlier tests may
    # leave threads running (servers not yet collected) that make some while the measured part runs.
    counted = subprocess.run(
        [sys.executable, "-c", _COUNT_CYCLIC_GARBAGE, str(ROOT), reuse],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert (counted.returncode, counted.stdout.splitlines()[-1:]) == (0, ["0"]), counted.stderr


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
