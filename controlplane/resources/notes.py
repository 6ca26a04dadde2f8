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
from functools import cache
from typing import Any, get_args

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
    quiet_values: tuple[object, ...] = ()
    """Values that ask for what is done anyway, so set to one of them the field is not noted (compared with
    ``==``: values need not be hashable)."""

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
    found: list[NotedField] = []
    _walk(obj, (), found)
    if len(found) > 1:
        found.sort(key=lambda noted: noted.path)
    return found


def unimplemented_fields(obj: BaseModel) -> list[str]:
    """Paths of fields set on ``obj`` that are declared upstream but not implemented here."""
    return [n.path for n in noted_fields(obj) if n.note.state is FieldState.UNIMPLEMENTED]


def deprecated_fields(obj: BaseModel) -> list[str]:
    """Paths of legacy fields set on ``obj`` (still honoured or ignored, as their note says)."""
    return [n.path for n in noted_fields(obj) if n.note.state is FieldState.DEPRECATED]


# The walk appends to one list instead of yielding: every object of every load is walked, and nested
# generators cost more than the walk itself.
def _walk(model: BaseModel, at: tuple[str | int, ...], found: list[NotedField]) -> None:
    fields_set = model.model_fields_set
    for name, plan in _plan(type(model)):
        value = getattr(model, name)
        if value is None:
            continue  # neither noted (unset) nor holding anything noted
        here = (*at, plan.alias)
        # A field set to its default (as the API server's CRD defaulting does) changes nothing to note.
        if plan.notes and name in fields_set and value != plan.default:
            found.extend(
                NotedField(field_path(here), note) for note in plan.notes if value not in note.quiet_values
            )
        if plan.descend:
            _walk_value(value, here, found)


def _walk_value(value: Any, at: tuple[str | int, ...], found: list[NotedField]) -> None:
    if isinstance(value, BaseModel):
        _walk(value, at, found)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk_value(item, (*at, index), found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk_value(item, (*at, str(key)), found)


@dataclass(frozen=True, slots=True)
class _FieldPlan:
    alias: str
    notes: tuple[FieldNote, ...]
    default: Any
    descend: bool
    """Its value may hold a model with a noted field (worth walking into)."""


@cache
def _plan(model: type[BaseModel]) -> tuple[tuple[str, _FieldPlan], ...]:
    """The fields of ``model`` the walk must look at: those with a note and those that may hold one; the
    rest (most of a manifest) is never walked, which keeps loading thousands of objects cheap."""
    plans = []
    for name, info in model.model_fields.items():
        notes = tuple(meta for meta in info.metadata if isinstance(meta, FieldNote))
        descend = any(_holds_notes(found) for found in _models_in(info.annotation))
        if notes or descend:
            plans.append((name, _FieldPlan(info.alias or name, notes, info.default, descend)))
    return tuple(plans)


@cache
def noted_names(model: type[BaseModel]) -> frozenset[str]:
    """The YAML names of the noted fields ``model`` may hold at any depth. A field is set only through its
    name in the input, so an input none of whose mappings has one of these keys has nothing noted, and a
    reader that saw every key (``resources.fastyaml``) spares the object the walk."""
    names: set[str] = set()
    _collect_names(model, names, visiting=set())
    return frozenset(names)


def _collect_names(model: type[BaseModel], names: set[str], *, visiting: set[type[BaseModel]]) -> None:
    if model in visiting:
        return
    visiting.add(model)
    for name, info in model.model_fields.items():
        if any(isinstance(meta, FieldNote) for meta in info.metadata):
            names.add(info.alias or name)
        for found in _models_in(info.annotation):
            _collect_names(found, names, visiting=visiting)


@cache
def _holds_notes(model: type[BaseModel]) -> bool:
    return _search(model, visiting=set())


def _search(model: type[BaseModel], *, visiting: set[type[BaseModel]]) -> bool:
    if model in visiting:
        return False  # a cycle: whatever it holds is found on the way that entered it
    visiting.add(model)
    for info in model.model_fields.values():
        if any(isinstance(meta, FieldNote) for meta in info.metadata):
            return True
        if any(_search(found, visiting=visiting) for found in _models_in(info.annotation)):
            return True
    return False


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The model classes a field's type names anywhere (in unions, lists, dicts, ``Annotated``); values of
    other types (``Any`` included) are plain data that holds no model."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for argument in get_args(annotation):
        yield from _models_in(argument)
