"""Problems found in user input, the key that names an object, and a validation error in users' words.

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

from pydantic_core import ErrorDetails

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


# Pydantic's wording names Python types; users think in YAML.
_VALIDATION_MESSAGES = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters long",
    "string_pattern_mismatch": "must match the pattern {pattern}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "literal_error": "must be {expected}",
    "datetime_parsing": "must be an RFC 3339 date-time such as 2024-05-21T10:00:00Z",
    "datetime_from_date_parsing": "must be an RFC 3339 date-time such as 2024-05-21T10:00:00Z",
    "datetime_type": "must be an RFC 3339 date-time such as 2024-05-21T10:00:00Z",
}


def describe_validation_error(error: ErrorDetails) -> tuple[str, str]:
    """(field path, message) for one validation error; never includes the input value (it may be secret)."""
    template = _VALIDATION_MESSAGES.get(error["type"])
    if error["type"] == "string_too_short" and error.get("ctx", {}).get("min_length", 1) > 1:
        template = "must be at least {min_length} characters long"
    try:
        message = error["msg"] if template is None else template.format(**error.get("ctx", {}))
    except KeyError:
        message = error["msg"]
    return field_path(error["loc"]), message


def validation_error_path(error: ErrorDetails) -> str:
    """Where a validation error is (its sort key)."""
    return field_path(error["loc"])
