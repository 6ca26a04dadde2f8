"""A pydantic model as a *structural* OpenAPI v3 schema, the only kind a CRD may carry.

Pydantic's JSON Schema is close but not what the API server accepts: it refers to shared definitions
(``$ref``), spells ``Optional`` as ``anyOf [X, null]``, writes ``exclusiveMinimum`` as a number (OpenAPI v3.0
wants a flag beside ``minimum``), ``const`` for one-value Literals, ``additionalProperties: false`` for
``extra="forbid"`` and a title everywhere. Kubernetes requires every node to say its ``type``, forbids
``$ref`` and value-level ``anyOf``, and reads ``null`` in a non-nullable field as "not set" (pruned before
validation), which is what our models do too. This module rewrites the one into the other and refuses
what it cannot express (a real union, recursion, a field of any type) instead of emitting a schema the API
server would reject.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

JsonSchema = dict[str, Any]

_COPIED = (
    "description",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
)
_FORMATS = frozenset({"date-time", "date", "byte"})
"""Formats the API server checks; others (pydantic's ``duration``; ``int32``, which it does not range-check)
are left out rather than suggest a check that does not happen."""
_UNTYPED = ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")


class SchemaError(ValueError):
    """The model uses a construct a structural schema cannot express; the message names the field."""


def structural_schema(model: type[BaseModel]) -> JsonSchema:
    """``model``'s validation schema (YAML field names) in the form a CRD's ``openAPIV3Schema`` needs."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return _Converter(definitions).convert(raw, path=model.__name__, seen=())


class _Converter:
    def __init__(self, definitions: dict[str, JsonSchema]) -> None:
        self._definitions = definitions

    def convert(self, node: JsonSchema, *, path: str, seen: tuple[str, ...]) -> JsonSchema:
        node, seen = self._inline(node, path=path, seen=seen)
        out: JsonSchema = {key: node[key] for key in _COPIED if key in node}
        if "const" in node:
            out["enum"] = [node["const"]]
        if node.get("format") in _FORMATS:
            out["format"] = node["format"]
        if "exclusiveMinimum" in node:
            out.update(minimum=node["exclusiveMinimum"], exclusiveMinimum=True)
        if "exclusiveMaximum" in node:
            out.update(maximum=node["exclusiveMaximum"], exclusiveMaximum=True)
        default = node.get("default")
        if isinstance(default, str | int | float | bool):
            out["default"] = default
        kind = node.get("type")
        if kind is None and not any(out.get(key) for key in _UNTYPED):
            raise SchemaError(f"{path}: no type (a field of any type cannot be expressed in a CRD)")
        if kind is not None:
            out["type"] = kind
        if kind == "array":
            out["items"] = self.convert(node.get("items", {}), path=f"{path}[]", seen=seen)
        if kind == "object":
            out.update(self._object(node, path=path, seen=seen))
        return out

    def _inline(
        self, node: JsonSchema, *, path: str, seen: tuple[str, ...]
    ) -> tuple[JsonSchema, tuple[str, ...]]:
        """``node`` with ``$ref``, one-member ``allOf`` and ``anyOf [X, null]`` replaced by what they mean;
        the node's own keys (description, default) win over the referred definition's."""
        while True:
            if "$ref" in node:
                name = node["$ref"].rsplit("/", 1)[-1]
                if name in seen:
                    raise SchemaError(f"{path}: {name} contains itself (recursion cannot be expressed)")
                seen = (*seen, name)
                own = {key: value for key, value in node.items() if key != "$ref"}
                node = {**self._definitions[name], **own}
            elif len(node.get("allOf", ())) == 1:
                own = {key: value for key, value in node.items() if key != "allOf"}
                node = {**node["allOf"][0], **own}
            elif "anyOf" in node:
                members = [member for member in node["anyOf"] if member.get("type") != "null"]
                if len(members) != 1:
                    raise SchemaError(f"{path}: a union of {len(members)} types cannot be expressed")
                own = {key: value for key, value in node.items() if key != "anyOf"}
                node = {**members[0], **own}
            else:
                return node, seen

    def _object(self, node: JsonSchema, *, path: str, seen: tuple[str, ...]) -> JsonSchema:
        properties = node.get("properties")
        extra = node.get("additionalProperties")
        if properties:
            out: JsonSchema = {
                "properties": {
                    name: self.convert(child, path=f"{path}.{name}", seen=seen)
                    for name, child in properties.items()
                }
            }
            if node.get("required"):
                out["required"] = sorted(node["required"])
            return out
        if isinstance(extra, dict) and extra.get("type") is not None:
            # A map of typed values (labels, options).
            return {"additionalProperties": self.convert(extra, path=f"{path}.*", seen=seen)}
        # A free-form mapping (``Loose``): kept as given, the one place unknown fields are not pruned.
        return {"x-kubernetes-preserve-unknown-fields": True}
