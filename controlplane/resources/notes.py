"""Markers for upstream fields we accept but do not (or no longer) act on, and the walk that finds them.

Users' manifests must load unchanged, so every upstream field is declared; a field that is declared but
not translated must still be reported, never dropped silently. Marking the field where it is declared
(``Annotated[T, UNIMPLEMENTED]``) keeps that list next to the schema, and one generic walk turns it into
field paths for warnings and status conditions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from controlplane.resources.problems import field_path


class FieldState(StrEnum):
    UNIMPLEMENTED = "unimplemented"
    DEPRECATED = "deprecated"


@dataclass(frozen=True, slots=True)
class FieldNote:
    """``Annotated`` metadata on a model field; ``reason`` is shown to users next to the field path."""

    state: FieldState
    reason: str

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Shown by `kubectl explain` on our CRDs, which are generated from the JSON schema.
        schema = handler(core_schema)
        note = f"{self.reason[0].upper()}{self.reason[1:]}."
        if self.state is FieldState.DEPRECATED:
            note = f"Deprecated: {note}"
        schema["description"] = f"{schema['description']}\n\n{note}" if "description" in schema else note
        return schema


UNIMPLEMENTED = FieldNote(FieldState.UNIMPLEMENTED, "accepted but not implemented yet; it has no effect")


def deprecated(reason: str) -> FieldNote:
    return FieldNote(FieldState.DEPRECATED, reason)


@dataclass(frozen=True, slots=True)
class NotedField:
    path: str
    """Relative to the object root, with YAML (camelCase) names: ``spec.rules[0].modelsOwnedBy``."""
    note: FieldNote


def noted_fields(obj: BaseModel) -> list[NotedField]:
    """Every marked field the input set on ``obj`` to other than its default, sorted by path."""
    return sorted(_walk(obj, ()), key=lambda noted: noted.path)


def unimplemented_fields(obj: BaseModel) -> list[str]:
    """Paths of fields set on ``obj`` that are declared upstream but not implemented here."""
    return [n.path for n in noted_fields(obj) if n.note.state is FieldState.UNIMPLEMENTED]


def deprecated_fields(obj: BaseModel) -> list[str]:
    """Paths of legacy fields set on ``obj`` (still honoured or ignored, as their note says)."""
    return [n.path for n in noted_fields(obj) if n.note.state is FieldState.DEPRECATED]


def _walk(model: BaseModel, at: tuple[str | int, ...]) -> Iterator[NotedField]:
    fields = type(model).model_fields
    for name, info in fields.items():
        value = getattr(model, name)
        here = (*at, info.alias or name)
        # A field set to its default (as the API server's CRD defaulting does) changes nothing to note.
        if name in model.model_fields_set and value is not None and value != info.default:
            for meta in info.metadata:
                if isinstance(meta, FieldNote):
                    yield NotedField(field_path(here), meta)
        yield from _walk_value(value, here)


def _walk_value(value: Any, at: tuple[str | int, ...]) -> Iterator[NotedField]:
    if isinstance(value, BaseModel):
        yield from _walk(value, at)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk_value(item, (*at, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_value(item, (*at, str(key)))
