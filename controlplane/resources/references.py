"""The Secrets and ConfigMaps an object refers to, found by walking its model.

A source that must not read a cluster's Secrets wholesale (the Kubernetes source) watches exactly these.
Walking the models, instead of listing the fields that hold such references, keeps the answer right when a
field is added: any nested reference with a ``kind`` of Secret or ConfigMap and a ``name`` is found, with
the referring object's namespace when the reference names none.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel

from controlplane.resources.core import ConfigMap, Secret
from controlplane.resources.meta import Resource
from controlplane.resources.problems import ObjectKey

_REFERABLE = {model.api_kind: model for model in (Secret, ConfigMap)}


def referenced_secrets_and_config_maps(objects: Iterable[Resource]) -> set[ObjectKey]:
    """Keys of every Secret and ConfigMap that ``objects`` reference (whether they exist or not)."""
    found: set[ObjectKey] = set()
    for obj in objects:
        if isinstance(obj, Secret | ConfigMap):
            continue
        for reference in _references(obj):
            model = _REFERABLE[reference.kind]
            namespace = getattr(reference, "namespace", None) or obj.namespace
            found.add(model.key_for(namespace, reference.name))
    return found


def _references(model: BaseModel) -> Iterator[Any]:
    for name in type(model).model_fields:
        yield from _walk(getattr(model, name))


def _walk(value: Any) -> Iterator[Any]:
    if isinstance(value, BaseModel):
        kind, name = getattr(value, "kind", None), getattr(value, "name", None)
        if kind in _REFERABLE and isinstance(name, str) and getattr(value, "group", "") in ("", None):
            yield value
        yield from _references(value)
        # A model keeping an upstream object loose names the references inside it itself.
        loose = getattr(value, "loose_references", None)
        if callable(loose):
            yield from loose()
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
