"""Problems found in user input, and the key that names an object.

Every layer that judges user input (loader, translator, file watcher, CLI) reports through the same
``Problem`` so that one line format reaches users: ``controlplane translate`` prints
``FILE:DOC_INDEX: Kind/namespace/name: field.path: message`` and other tools parse it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

UNKNOWN = "-"
"""Printed in a problem line for any part that is not known (no file, no object, no field)."""

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class ObjectKey(NamedTuple):
    """Identifies one object: two objects with the same key are the same object, whatever their version.

    ``namespace`` is empty for cluster-scoped kinds (GatewayClass). Ordering is by group, kind, namespace,
    name, which is the order every emitted list of objects uses. A named tuple: a translation hashes and
    compares keys hundreds of thousands of times, which tuples do without running any Python code.
    """

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    def order(self) -> str:
        """The sort key of the ordering above, for ``sorted(..., key=...)``: one string (the parts joined by
        a character no part contains, so it sorts like the parts in turn), several times faster to compare
        than the parts on thousands of keys."""
        return "\0".join(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    """One finding about user input.

    ``doc_index`` counts YAML documents in ``file`` from 0, empty documents included, so that it matches the
    position of the ``---`` separated document in the file. Objects that do not come from a file (a
    Kubernetes watch) have ``file`` and ``doc_index`` set to None and print ``-:-``. Messages never contain
    secret values.
    """

    severity: Severity
    message: str
    file: str | None = None
    doc_index: int | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    field_path: str = ""

    def format(self) -> str:
        """The CLI line: ``FILE:DOC_INDEX: Kind/namespace/name: field.path: message``."""
        doc = UNKNOWN if self.doc_index is None else str(self.doc_index)
        where = f"{self.file or UNKNOWN}:{doc}"
        return f"{where}: {self._object_part()}: {self.field_path or UNKNOWN}: {self.message}"

    def sort_key(self) -> tuple[str, int, str, str, str, str, str]:
        """Orders problems by where they are, so that output is deterministic."""
        return (
            self.file or "",
            -1 if self.doc_index is None else self.doc_index,
            self.kind or "",
            self.namespace or "",
            self.name or "",
            self.field_path,
            self.message,
        )

    def _object_part(self) -> str:
        if not self.kind:
            return UNKNOWN
        parts = [self.kind]
        if self.namespace:
            parts.append(self.namespace)
        parts.append(self.name or UNKNOWN)
        return "/".join(parts)


def sorted_problems(problems: Sequence[Problem]) -> list[Problem]:
    return sorted(problems, key=Problem.sort_key)


def field_path(parts: Sequence[str | int]) -> str:
    """Renders a location as users write it in YAML: ``spec.rules[0].backendRefs[1].weight``.

    Map keys that are not plain identifiers (label keys such as ``app.kubernetes.io/name``) are quoted in
    brackets so that the path stays unambiguous.
    """
    out: list[str] = []
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f'["{part}"]')
    return "".join(out)


def join_path(prefix: str, path: str) -> str:
    """Appends a relative field path to a prefix such as ``items[2]`` (objects inside a ``List``)."""
    if not prefix:
        return path
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"
