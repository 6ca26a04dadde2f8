"""Reads plain manifest texts with a compiled YAML parser, several times faster than PyYAML.

PyYAML's C parser still builds every node as a Python object and calls back into Python to resolve each
scalar's type: at 1,000 routes (5,000 objects) that is most of a full load. ``yaml_rs`` (Rust) builds the
data directly, but it reads YAML 1.2, while PyYAML, like Kubernetes' own YAML reader, reads YAML 1.1: plain
scalars such as ``yes``, ``on``, ``0777``, ``1e3`` or ``2024-05-21`` mean different things, and it accepts
tags and keys PyYAML refuses. So ``plain_documents`` answers only when its result is certain to be what
PyYAML would read:

- the text uses none of the features where the two differ or where PyYAML says more than the data (tags,
  anchors and aliases, merge keys, directives, escapes, octal-looking numbers, line breaks and characters
  PyYAML treats on its own);
- every string in the result, keys included, would also be a string if it had been written plain under
  YAML 1.1 (a quoted ``"true"`` does not qualify: it is read again, correctly, by PyYAML), and the result
  has no float, date or non-string key.

Otherwise, and on any error, it returns None and the caller reads the text with PyYAML, which gives the same
data or the error with its position: this module only ever changes how fast a text is read.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from itertools import repeat
from typing import Any, NamedTuple

import yaml_rs
from yaml.resolver import Resolver

_NODE_START_MARKERS = frozenset("!&*%")
"""A text starting with a tag, an anchor, an alias or a directive."""
_NODE_PROPERTY = re.compile(r"[ \n][!&*]")
"""A tag, an anchor or an alias (PyYAML resolves these itself) where a node starts."""
_PREFIXED_NUMBER = re.compile(r"[ \n][-+]?0[0-9oOxXbB_]")
"""A scalar starting like an octal, hexadecimal or binary number, which the two versions read differently."""
_PREFIXED_NUMBER_FIRST = re.compile(r"[-+]?0[0-9oOxXbB_]")
_UNDERSCORED_NUMBER = re.compile(r"[0-9]_|_[0-9]")
"""``yaml_rs`` drops underscores anywhere in a number (``_1`` is 1), YAML 1.1 only after its first digit."""


def _not_a_string_pattern() -> str:
    """PyYAML's patterns for plain scalars that are not strings, each behind a look-ahead for the first
    characters PyYAML tries it on (the empty string for ``""``), as PyYAML resolves a plain scalar. The
    look-ahead also makes the pattern fail at once on most strings, which a full load checks by the ten
    thousand."""
    first_characters: dict[str, set[str]] = {}
    for first, resolvers in Resolver.yaml_implicit_resolvers.items():
        for _, pattern in resolvers:
            first_characters.setdefault(pattern.pattern, set()).add(first)
    alternatives = []
    for pattern, firsts in sorted(first_characters.items()):
        starts = "".join(re.escape(character) for character in sorted(firsts) if character)
        openings = [f"[{starts}]"] if starts else []
        if "" in firsts:
            openings.append(r"\Z")
        alternatives.append(f"(?=(?:{'|'.join(openings)}))(?:{pattern})")
    return "|".join(alternatives)


_NOT_A_STRING_IN_YAML_1_1 = re.compile(_not_a_string_pattern(), re.VERBOSE)
"""A string PyYAML would not read as a string if it were written plain."""
_RESOLVED_FIRST = frozenset(Resolver.yaml_implicit_resolvers)
"""The first characters PyYAML tries its implicit resolvers on (``""``: the empty string, as in PyYAML)."""
_CHECKED_FIRST = _RESOLVED_FIRST | {"\n"}
"""The first characters of a string that may not read the same (``_stays_string``)."""
_CONTENT_LINE = re.compile(r"^(?!\s*(?:#|$)|---\s*(?:#|$))", re.MULTILINE)
"""The first line that is neither blank, a comment nor a bare document start."""
_MAPPING_START = re.compile(r"(?:---[ ]+)?[ ]*[A-Za-z0-9_\"']")


class PlainDocuments(NamedTuple):
    """What ``plain_documents`` read, with what its check of every value saw on the way (for later steps,
    which would otherwise walk the documents again to learn it)."""

    documents: list[Any]
    null_free: bool
    """No mapping in them holds a null (``key: null``, ``key: ~``, an empty ``key:``)."""
    keys: list[AbstractSet[str]]
    """Every mapping key in each of them."""


def plain_documents(text: str) -> PlainDocuments | None:
    """The documents of ``text`` as PyYAML would load them, or None to have PyYAML read it."""
    if not _plain_text(text) or not _first_document_is_mapping(text):
        return None
    try:
        # Any failure (a syntax error, a repeated key, too deep) is PyYAML's to report, with its position.
        loaded = yaml_rs.loads(text, parse_datetime=False)
        # One document comes back as itself, several as a list of them: a text whose first document could
        # be a list was sent to PyYAML above, so a list here is always several documents. None is no
        # document or one empty one (PyYAML tells which).
        if loaded is None:
            return None
        documents = loaded if isinstance(loaded, list) else [loaded]
        keys: list[set[Any]] = [set() for _ in documents]
        nulls: list[None] = []
        same = all(map(_same_under_yaml_1_1, documents, keys, repeat(nulls)))
        if same and all(map(_keys_stay_strings, keys)):
            return PlainDocuments(documents, null_free=not nulls, keys=list(keys))  # checked: strings
    except Exception:  # see above: the fast path never decides an error
        return None
    return None


def _plain_text(text: str) -> bool:
    """Whether ``text`` keeps to the part of YAML the two versions read alike (see the module docstring)."""
    return (
        text.endswith("\n")  # a block scalar's last line break, when the text ends without one, differs
        # Printable in Python's sense is narrower than in YAML 1.1, and leaves out TAB, CR, NEL, the
        # byte-order mark and the Unicode line and paragraph separators, which the versions read differently.
        and _printable(text)
        and text[:1] not in _NODE_START_MARKERS
        # Each search for two characters runs only if the first is there (a search for one is much cheaper).
        and ("%" not in text or "\n%" not in text)  # a directive
        and ("<" not in text or "<<" not in text)  # a merge key
        and ("\\" not in text or '"' not in text)  # escapes in a double-quoted string
        # Flow collections other than an empty ``{}`` or ``[]``: their rules for plain scalars differ most.
        and ("{" not in text or text.count("{") == text.count("{}"))
        and ("[" not in text or text.count("[") == text.count("[]"))
        # The searches below scan the whole text: each runs only if the character it needs is there.
        and not (("!" in text or "&" in text or "*" in text) and _NODE_PROPERTY.search(text))
        and not ("_" in text and _UNDERSCORED_NUMBER.search(text))
        # The search scans every character: it runs only if a line or a value may start with a zero.
        and not (_may_start_with_zero(text) and _PREFIXED_NUMBER.search(text))
        and _PREFIXED_NUMBER_FIRST.match(text) is None
    )


_PRINTABLE_ASCII_AND_LINE_BREAK = bytes(range(0x20, 0x7F)) + b"\n"


def _printable(text: str) -> bool:
    """Whether every character is printable (in Python's sense) or a line break. An ASCII text, most
    manifests, is checked through a byte table: several times cheaper than ``isprintable``."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _PRINTABLE_ASCII_AND_LINE_BREAK)
    return text.replace("\n", "").isprintable()


def _may_start_with_zero(text: str) -> bool:
    """Whether ``_PREFIXED_NUMBER`` may match (substring tests, much faster than its search; a signed zero is
    looked for only if its sign and zero, or its sign alone, are there)."""
    return (
        " 0" in text
        or "\n0" in text
        or ("-0" in text and (" -0" in text or "\n-0" in text))
        or ("+" in text and (" +0" in text or "\n+0" in text))
    )


def _first_document_is_mapping(text: str) -> bool:
    """Whether the first line with content opens a mapping (or there is none): a first document that is a
    list would come back from ``yaml_rs`` just like several documents."""
    first = _CONTENT_LINE.search(text)
    return first is None or _MAPPING_START.match(text, first.start()) is not None


def _same_under_yaml_1_1(value: Any, keys: set[Any], nulls: list[None]) -> bool:
    """Whether the values in ``value`` read the same under YAML 1.1 (the keys are checked once, from
    ``keys``, where every mapping's are added); a null found as a mapping's value is added to ``nulls``."""
    kind = type(value)
    if kind is dict:
        keys.update(value)
        for item in value.values():
            # String values are checked here rather than by a call each: a full load has a hundred thousand.
            if type(item) is str:
                if item[:1] in _CHECKED_FIRST and not _stays_string(item):
                    return False
            elif item is None:
                nulls.append(None)
            elif not _same_under_yaml_1_1(item, keys, nulls):
                return False
        return True
    if kind is str:
        return _stays_string(value)
    if kind is list:
        # map: no generator frame per item
        return all(map(_same_under_yaml_1_1, value, repeat(keys), repeat(nulls)))
    return value is None or kind is int or kind is bool


def _stays_string(text: str) -> bool:
    first = text[:1]
    if first == "\n":
        # Only line breaks: an empty block scalar (``a: |`` ending the text) is one line break for
        # ``yaml_rs`` and, as YAML says, nothing for PyYAML; one with more content reads the same in both.
        return text.strip("\n") != ""
    # Most strings start with a character no implicit resolver is tried on: no pattern needed for those.
    return first not in _RESOLVED_FIRST or _NOT_A_STRING_IN_YAML_1_1.match(text) is None


_PLAIN_KEYS: set[str] = set()
"""Keys found to stay strings: field names, the same few hundred in every file, so that a text's keys are
mostly checked by one set difference (values are not kept: they may be secret)."""
_PLAIN_KEYS_KEPT = 4096


def _keys_stay_strings(keys: set[Any]) -> bool:
    for key in keys - _PLAIN_KEYS:
        if type(key) is not str or not _stays_string(key):
            return False
        if len(_PLAIN_KEYS) < _PLAIN_KEYS_KEPT:
            _PLAIN_KEYS.add(key)
    return True
