"""Lists Kubernetes treats as maps (keyed by a field) or sets, and the uniqueness that comes with it.

Upstream declares header and body mutations' ``set`` lists as maps keyed by ``name`` or ``path``, their
``remove`` lists as sets, and a match's headers as a map by ``name``: the API server refuses an item
whose key repeats, and server-side apply merges such lists item by item. Marking the field here does both
halves at once: the model refuses the repeat (what the file source runs) at the same field path the API
server names (``set[1]``), and the generated CRD declares the list type (``controlplane.crdgen``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, InitErrorDetails, PydanticCustomError, core_schema


@dataclass(frozen=True, slots=True)
class ListType:
    """``Annotated`` metadata on a list field: a map keyed by ``map_key`` (a YAML field name), else a set."""

    map_key: str | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._unique, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        out = handler(schema)
        if self.map_key is None:
            out["x-kubernetes-list-type"] = "set"
        else:
            out["x-kubernetes-list-type"] = "map"
            out["x-kubernetes-list-map-keys"] = [self.map_key]
        return out

    def _unique(self, items: list[Any]) -> list[Any]:
        seen: set[Any] = set()
        for index, item in enumerate(items):
            key = item if self.map_key is None else _field(item, self.map_key)
            if key in seen:
                what = self.map_key or "value"
                error = PydanticCustomError(
                    "duplicate", "duplicate {what}: each may appear once", {"what": what}
                )
                # Raised as a ValidationError so that the path names the repeated item, as the API server's.
                raise ValidationError.from_exception_data(
                    "duplicate", [InitErrorDetails(type=error, loc=(index,), input=key)]
                )
            seen.add(key)
        return items


def _field(item: BaseModel, alias: str) -> Any:
    for name, info in type(item).model_fields.items():
        if (info.alias or name) == alias:
            return getattr(item, name)
    raise AttributeError(f"{type(item).__name__} has no field {alias}")


LIST_SET = ListType()
"""A list of unique values."""


def list_map(key: str) -> ListType:
    """A list of objects unique by their ``key`` field."""
    return ListType(map_key=key)
