"""The compiled YAML fast path reads exactly what PyYAML reads, or hands the text to PyYAML.

The reference is PyYAML through the loader the project used before the fast path (``_StrictLoader``): for
every text, ``plain_documents`` is either None or equal to its documents, and None whenever PyYAML refuses
the text. Texts come from three places: every YAML file in the repository, generated manifests whose
scalars are drawn from the tokens where YAML 1.1 and 1.2 disagree, and random fragments of YAML syntax.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.scale_manifests import route_file
from controlplane.resources import load_text
from controlplane.resources.fastyaml import plain_documents
from controlplane.resources.parse import _StrictLoader

_REPO = Path(__file__).parent.parent
_REPO_YAML = sorted(
    path
    for folder in ("examples", "tests", "crds", "helm", "bench")
    for pattern in ("*.yaml", "*.yml")
    for path in (_REPO / folder).rglob(pattern)
)
_SETTINGS = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _pyyaml(text: str) -> list[Any] | None:
    """What PyYAML reads, or None if it refuses the text."""
    try:
        return list(yaml.load_all(text, Loader=_StrictLoader))
    except (yaml.YAMLError, RecursionError):
        return None


def holds_null_value(value: Any) -> bool:
    """Whether some mapping in ``value`` has a null value (what ``null_free`` says it has not)."""
    if isinstance(value, dict):
        return any(item is None or holds_null_value(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_null_value(item) for item in value)
    return False


def mapping_keys(value: Any) -> set[Any]:
    """Every mapping key in ``value`` (what ``keys`` says)."""
    if isinstance(value, dict):
        return set(value).union(*(mapping_keys(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(mapping_keys(item) for item in value))
    return set()


def _assert_same_or_declined(text: str) -> None:
    fast = plain_documents(text)
    if fast is None:
        return
    reference = _pyyaml(text)
    assert reference is not None, f"the fast path read a text PyYAML refuses: {text!r}"
    assert fast.documents == reference, text
    assert [type(document) for document in fast.documents] == [type(d) for d in reference], text
    assert fast.null_free is not holds_null_value(reference), text
    assert fast.keys == [mapping_keys(document) for document in reference], text


def test_repository_yaml_reads_the_same() -> None:
    assert len(_REPO_YAML) > 20  # the repository's examples, fixtures and CRDs
    for path in _REPO_YAML:
        _assert_same_or_declined(path.read_text(encoding="utf-8", errors="replace"))


def test_a_plain_manifest_takes_the_fast_path() -> None:
    text = route_file(7, backend_port=20007)
    fast = plain_documents(text)
    assert fast is not None
    assert fast.documents == _pyyaml(text)
    assert len(fast.documents) == 5
    assert fast.null_free


@pytest.mark.parametrize(
    "text", ["a:\n  b:\n", "a: ~\n", "a:\n- b: null\n", "a: 1\n---\nb:\n  - c: Null\n", "a:\n  b: NULL\n"]
)
def test_a_null_value_anywhere_is_noticed(text: str) -> None:
    fast = plain_documents(text)
    assert fast is not None
    assert fast.documents == _pyyaml(text)
    assert not fast.null_free


def test_a_null_list_item_is_not_a_null_value() -> None:
    fast = plain_documents("a:\n- x\n-\n")
    assert fast is not None
    assert fast.documents == [{"a": ["x", None]}]
    assert fast.null_free


@pytest.mark.parametrize(
    "text",
    [
        "a: yes\n",  # YAML 1.1 bool, 1.2 string
        "a: 0777\n",  # 1.1 octal 511, 1.2 decimal
        "a: 0o17\n",  # 1.2 octal, 1.1 string
        "a: 1e3\n",  # 1.2 float, 1.1 string
        "a: 1:20\n",  # 1.1 sexagesimal 80
        "a: 2024-05-21\n",  # 1.1 date
        "a: !custom 5\n",  # a tag PyYAML refuses
        "<<: {a: 1}\nb: 2\n",  # merge key
        "a: &x 1\nb: *x\n",  # anchor and alias
        "a: 1\na: 2\n",  # repeated key (PyYAML's error, with its position)
        "- a\n- b\n",  # a document that is a list looks like several documents to yaml_rs
        "---\n- a: 1\n",
        "a: 'true'\n",  # a quoted string that would not be one if plain: PyYAML decides
        "a: b\u2028c\n",
        "a: b\x01c\n",  # control characters, which an ASCII text is checked for through a byte table
        "a: b\x7fc\n",
        "a:\tb\n",
        "a: b\rc\n",
        "\ufeffa: 1\n",
        "a: [1,\n",
    ],
)
def test_texts_where_the_versions_differ_go_to_pyyaml(text: str) -> None:
    assert plain_documents(text) is None


def test_a_text_pyyaml_refuses_keeps_its_located_error() -> None:
    result = load_text("kind: Backend\nkind: Backend\n", file="f.yaml")
    (problem,) = result.problems
    assert "duplicate key" in problem.message
    assert "line 2" in problem.message


_TRICKY_SCALARS = st.sampled_from(
    [
        "yes",
        "No",
        "ON",
        "off",
        "y",
        "n",
        "true",
        "False",
        "TRUE",
        "tRUE",
        "null",
        "Null",
        "~",
        "",
        "0",
        "-0",
        "+1",
        "007",
        "0o7",
        "0x1F",
        "0X1F",
        "0b101",
        "0B1",
        "1_000",
        "1__0",
        "1_",
        "_1",
        "+12",
        "1:20",
        "-1:20:30",
        "1.5",
        ".5",
        "1.",
        "1e3",
        "1.0e+3",
        "1E3",
        ".inf",
        "-.Inf",
        ".NaN",
        "=",
        "2024-05-21",
        "2024-05-21T10:00:00Z",
        "12:30",
        "123456789012345678901234567890",
        "v1",
        "a b",
        "gpt-4o",
        "127.0.0.1",
        "http://h:8080/p?q=1",
        "-",
        "- x",
        ":",
        "a: b",
        "#x",
        "x #y",
        "'",
        '"',
    ]
)
_KEYS = st.sampled_from(["a", "name", "port", "on", "yes", "1", "null", "x-y", "0", "true"])


def _scalar(scalar: str, style: int) -> str:
    if style == 1:
        return "'" + scalar.replace("'", "''") + "'"
    if style == 2 and '"' not in scalar:
        return f'"{scalar}"'
    return scalar


def _block(value: Any, indent: str) -> str:
    """``value`` (a written-out scalar, or a list or dict of them) as block YAML after a key or a dash."""
    if isinstance(value, str):
        return f" {value}\n"
    if not value:
        return " x\n"
    inner = indent + "  "
    if isinstance(value, list):
        return "\n" + "".join(f"{inner}-{_block(item, inner)}" for item in value)
    return "\n" + "".join(f"{inner}{key}:{_block(item, inner)}" for key, item in value.items())


_ORDINARY_SCALARS = st.sampled_from(["r1", "default", "8080", "true", "gpt-4o", "x y", "-1", "https://h/v1"])
_TREES = st.recursive(
    st.tuples(st.one_of(_ORDINARY_SCALARS, _TRICKY_SCALARS), st.integers(0, 2)).map(
        lambda pair: _scalar(*pair)
    ),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(_KEYS, children, max_size=3)),
    max_leaves=8,
)
_DOCUMENTS = st.dictionaries(_KEYS, _TREES, min_size=1, max_size=4).map(
    lambda entries: "".join(f"{key}:{_block(value, '')}" for key, value in entries.items())
)


@_SETTINGS
@given(st.lists(_DOCUMENTS, min_size=1, max_size=3), st.booleans())
def test_generated_manifests_read_the_same(documents: list[str], leading_marker: bool) -> None:
    text = ("---\n" if leading_marker else "") + "---\n".join(documents)
    _assert_same_or_declined(text)


_FRAGMENTS = st.sampled_from(
    [
        "a",
        "b",
        "0",
        "1",
        "_",
        "-",
        "+",
        ".",
        "e",
        "x",
        "o",
        ":",
        ": ",
        "- ",
        ", ",
        "[",
        "]",
        "{",
        "}",
        "'",
        '"',
        "#",
        "---",
        "...",
        "\n",
        "  ",
        "yes",
        "null",
        "|",
        ">",
        "|-",
        "?",
        " ",
        "\n  ",
        "{}",
        "[]",
        " *a",
        " &a",
        " !a",
        "\\",
        "%",
        "<<",
        "0x1",
        "0o1",
        "0b1",
        "1_0",
    ]
)


@_SETTINGS
@given(st.lists(_FRAGMENTS, max_size=30).map("".join), st.booleans())
def test_random_yaml_fragments_read_the_same(text: str, final_line_break: bool) -> None:
    _assert_same_or_declined(text + "\n" if final_line_break else text)


@pytest.mark.parametrize("text", ["a: |\n", "a: >\n", "a: |+\n", "a: |\n\n", "- |\n", "a:\n- |\n"])
def test_an_empty_block_scalar_ending_the_text_reads_as_pyyaml_reads_it(text: str) -> None:
    # yaml_rs reads one line break there; PyYAML (and YAML) nothing.
    _assert_same_or_declined(text)


def test_deep_nesting_is_declined_without_harm() -> None:
    """The compiled parser runs on the caller's stack, as loads do in a worker thread: deep nesting must
    come back as an answer (here: read it with PyYAML), never take the process down."""
    answers: list[object] = []
    deep = "b: " + "- " * 100_000 + "x\n"
    thread = threading.Thread(target=lambda: answers.append(plain_documents(deep)))
    thread.start()
    thread.join()
    assert answers == [None]
