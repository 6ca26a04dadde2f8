"""Base classes for every resource model: the pydantic configuration, object metadata and identity.

One configuration for all models keeps the user-facing contract uniform: YAML field names are the upstream
camelCase names (aliases; snake_case is the Python side only), unknown fields are errors, models are
immutable once loaded.
"""

from __future__ import annotations

import sys
import threading
from functools import cache, cached_property
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import CoreConfig, PydanticCustomError, SchemaValidator

from controlplane.resources.problems import ObjectKey

DEFAULT_NAMESPACE = "default"

Tolerated = Annotated[Any, Field(default=None, exclude=True, repr=False)]
"""A field Kubernetes adds (uid, managedFields, status, ...): accepted so cluster dumps load; unused."""

Loose = dict[str, Any]
"""An upstream sub-object declared without its inner schema; its contents are not checked or used."""


_FIELD_SETS: dict[frozenset[str], set[str]] = {}
"""One set of field names per distinct combination seen (see ``Model.model_post_init``)."""
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
"""Sets an instance's ``__pydantic_fields_set__`` slot directly (cheaper than ``object.__setattr__``, which
looks the slot up first: once for every object and sub-object of a load)."""


class Model(BaseModel):
    """Strict base: camelCase aliases only, unknown fields are errors, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
        # Field docstrings are the field descriptions our CRDs carry (controlplane.crdgen).
        use_attribute_docstrings=True,
    )

    def model_post_init(self, context: Any, /) -> None:
        # Every instance gets a set of the fields its input set (``model_fields_set``), 216 bytes or more
        # each: a third of what the objects of a large configuration hold (33 MiB at 5,000 routes), while
        # only a few distinct sets occur. Equal ones are shared; pydantic never changes a frozen model's set
        # in place (a copy gets a copy of it).
        fields_set = self.__pydantic_fields_set__
        shared = _FIELD_SETS.setdefault(frozenset(fields_set), fields_set)
        if shared is not fields_set:
            _set_fields_set(self, shared)

    @model_validator(mode="before")
    @classmethod
    def _null_means_unset(cls, data: Any) -> Any:
        # Kubernetes (Go's JSON decoding) reads `field: null` or an empty `field:` as "not set".
        # (``None in`` compares plain data by identity first, without a generator per model.)
        if isinstance(data, dict) and None in data.values():
            return {key: value for key, value in data.items() if value is not None}
        return data


_null_free_building = threading.Lock()


@cache
def null_free_validator(model: type[Model]) -> SchemaValidator:
    """``model``'s own validator without ``_null_means_unset``, for data where no mapping holds a null: that
    hook changes nothing there, and is a Python call for every object and sub-object of a load (a fifth of
    validating it). Every check, default and error is the model's."""
    schema = _without_null_hook(model.__pydantic_core_schema__)
    classes = _model_classes(schema, set())
    # pydantic-core builds a model it meets in a schema from the class's own validator (hook included) when
    # the class says it is complete: the classes say otherwise while this one is built from ``schema``.
    # (Validation never reads the mark; the lock keeps two builds from restoring it under each other.)
    with _null_free_building:
        complete = {cls: cls.__dict__.get("__pydantic_complete__", False) for cls in classes}
        try:
            for cls in classes:
                cls.__pydantic_complete__ = False
            return SchemaValidator(schema, CoreConfig(title=model.__name__))
        finally:
            for cls, was in complete.items():
                cls.__pydantic_complete__ = was


def _without_null_hook(schema: Any) -> Any:
    """A copy of a core schema (nested dicts and lists) in which every ``_null_means_unset`` step is replaced
    by the schema it leads to."""
    if isinstance(schema, dict):
        if schema.get("type") == "function-before" and _is_null_hook(schema["function"].get("function")):
            return _without_null_hook(schema["schema"])
        return {key: _without_null_hook(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_without_null_hook(item) for item in schema]
    return schema


def _model_classes(schema: Any, found: set[type[BaseModel]]) -> set[type[BaseModel]]:
    """The model classes of a core schema's ``model`` steps, added to ``found``."""
    if isinstance(schema, dict):
        if schema.get("type") == "model":
            found.add(schema["cls"])
        for value in schema.values():
            _model_classes(value, found)
    elif isinstance(schema, list):
        for item in schema:
            _model_classes(item, found)
    return found


def _is_null_hook(function: Any) -> bool:
    return getattr(function, "__func__", None) is Model._null_means_unset.__func__


class LooseModel(Model):
    """For Kubernetes-owned types (Service, Pod, ...) of which we read a few fields among many.

    Their schemas belong to Kubernetes and carry dozens of fields a dump from a cluster contains, so
    undeclared fields are ignored there instead of being errors.
    """

    model_config = ConfigDict(extra="ignore")


class ObjectMeta(Model):
    name: str = Field(min_length=1)
    namespace: str = DEFAULT_NAMESPACE
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: Tolerated
    resource_version: Tolerated
    generation: Tolerated
    generate_name: Tolerated
    creation_timestamp: Tolerated
    deletion_timestamp: Tolerated
    deletion_grace_period_seconds: Tolerated
    managed_fields: Tolerated
    owner_references: Tolerated
    finalizers: Tolerated
    self_link: Tolerated

    @field_validator("namespace")
    @classmethod
    def _empty_namespace_is_default(cls, value: str) -> str:
        # Interned: thousands of objects name the same few namespaces, each from a string of its own.
        return sys.intern(value) if value else DEFAULT_NAMESPACE


class Resource(Model):
    """A top-level Kubernetes-style object. Subclasses set the class variables that identify their kind."""

    api_group: ClassVar[str]
    api_kind: ClassVar[str]
    api_versions: ClassVar[tuple[str, ...]]
    cluster_scoped: ClassVar[bool] = False

    api_version: str
    kind: str
    metadata: ObjectMeta
    status: Tolerated

    @field_validator("kind")
    @classmethod
    def _kind_matches_class(cls, value: str) -> str:
        if value != cls.api_kind:
            raise PydanticCustomError("kind_mismatch", "expected kind {expected}", {"expected": cls.api_kind})
        return cls.api_kind  # equal, and one string for every object of the kind

    @field_validator("api_version")
    @classmethod
    def _version_known(cls, value: str) -> str:
        if value not in _served_versions(cls):
            raise PydanticCustomError(
                "api_version_unknown",
                "{kind} is not served at apiVersion {value}",
                {"kind": cls.api_kind, "value": value},
            )
        return sys.intern(value)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        """Empty for cluster-scoped kinds, whatever the manifest says (Kubernetes ignores it too)."""
        return "" if self.cluster_scoped else self.metadata.namespace

    @cached_property
    def key(self) -> ObjectKey:
        """Worked out once per object (it is immutable): translations look keys up thousands of times."""
        return ObjectKey(self.api_group, self.api_kind, self.namespace, self.metadata.name)

    @classmethod
    def key_for(cls, namespace: str, name: str) -> ObjectKey:
        """The key an object of this class would have; used to resolve references."""
        return ObjectKey(cls.api_group, cls.api_kind, "" if cls.cluster_scoped else namespace, name)


class LooseResource(Resource):
    """A recognised kind we do not translate (yet): its spec is kept as given and not checked."""

    spec: Loose = Field(default_factory=dict)


@cache
def _served_versions(model: type[Resource]) -> frozenset[str]:
    """The ``apiVersion`` values ``model`` is read at (asked for every object of every load)."""
    return frozenset(api_version(model.api_group, version) for version in model.api_versions)


def api_version(group: str, version: str) -> str:
    """``apps`` + ``v1`` gives ``apps/v1``; the core group has no prefix (``v1``)."""
    return f"{group}/{version}" if group else version


def split_api_version(value: str) -> tuple[str, str]:
    """The inverse of ``api_version``: ``(group, version)``."""
    group, _, version = value.rpartition("/")
    return group, version
