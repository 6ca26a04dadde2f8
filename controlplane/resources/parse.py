"""Parses manifests (YAML text, or documents decoded by the Kubernetes API) into typed resources, turning
every defect of the input into a Problem.

Parsing never raises on input: a broken text, document or object is reported (with file, document index,
object and field path) and everything else still loads, so one bad manifest cannot take the rest of a
user's configuration down with it. A text with invalid YAML is rejected as a whole, because loading the
documents before the error would apply half an edit. Where texts come from (files, a cluster) is the
sources' business (``controlplane.sources``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import InitVar, dataclass, field
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from controlplane.resources.fastyaml import plain_documents
from controlplane.resources.meta import DEFAULT_NAMESPACE, Resource, null_free_validator
from controlplane.resources.notes import FieldState, NotedField, noted_fields, noted_names
from controlplane.resources.problems import (
    ObjectKey,
    Problem,
    Severity,
    describe_validation_error,
    join_path,
    sorted_problems,
    validation_error_path,
)
from controlplane.resources.registry import Known, Skipped, lookup
from controlplane.resources.resource_set import ResourceSet


@dataclass(frozen=True, slots=True)
class Loaded:
    """One accepted object and where it came from (file and document are None for non-file sources)."""

    object: Resource
    file: str | None = None
    doc_index: int | None = None
    path_prefix: str = ""
    """Set for an object inside a ``kind: List`` document (``items[3]``); field paths are relative to it."""
    noted: tuple[NotedField, ...] = field(init=False, repr=False, compare=False)
    """The object's noted fields, walked once here: both the load's problems and the translation's status
    conditions need them, and an unchanged object is not walked again on the next load."""
    may_note: InitVar[bool] = True
    """False when the input is known to hold none of the noted fields' names (``notes.noted_names``)."""

    key: ObjectKey = field(init=False, repr=False, compare=False)
    """The object's key, worked out once: every load looks it up for every object."""
    order: str = field(init=False, repr=False, compare=False)
    """``key.order()``, worked out once: every ``ResourceSet`` sorts every object by it, and an unchanged
    object keeps its ``Loaded`` from one load to the next."""

    def __post_init__(self, may_note: bool) -> None:
        object.__setattr__(self, "noted", tuple(noted_fields(self.object)) if may_note else ())
        object.__setattr__(self, "key", self.object.key)
        object.__setattr__(self, "order", self.key.order())

    def problem(self, *, severity: Severity, message: str, field_path: str = "") -> Problem:
        """A problem about this object, located at ``field_path`` (relative to the object, YAML names)."""
        return Problem(
            severity=severity,
            message=message,
            file=self.file,
            doc_index=self.doc_index,
            kind=self.object.kind,
            namespace=self.object.namespace,
            name=self.object.name,
            field_path=join_path(self.path_prefix, field_path),
        )

    def location(self) -> str:
        where = f"{self.file or '-'}:{'-' if self.doc_index is None else self.doc_index}"
        return f"{where} {self.path_prefix}" if self.path_prefix else where


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Accepted objects (each with where it came from) and every problem found on the way."""

    objects: list[Loaded]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        """True when nothing was rejected (warnings and info lines do not count)."""
        return not any(p.severity is Severity.ERROR for p in self.problems)

    def resource_set(self, *, previous: ResourceSet | None = None) -> ResourceSet:
        """The accepted objects as the pipeline's input; ``previous`` (the same source's last set) lets it
        say what changed since (``ResourceSet.changes``)."""
        return ResourceSet(self.objects, previous=previous)


def combine(results: Iterable[LoadResult], *, problems: Iterable[Problem] = ()) -> LoadResult:
    """Several texts' results (files, say) as one, with objects defined twice across them reported and
    dropped."""
    objects: list[Loaded] = []
    all_problems = list(problems)
    for result in results:
        objects.extend(result.objects)
        all_problems.extend(result.problems)
    return _finish(objects, all_problems)


def load_text(text: str, *, file: str | None = None) -> LoadResult:
    """Loads one multi-document YAML text; ``file`` only labels problems."""
    objects: list[Loaded] = []
    problems: list[Problem] = []
    _parse_stream(text, file=file, objects=objects, problems=problems)
    return _finish(objects, problems)


def parse_document(
    raw: Any,
    *,
    file: str | None = None,
    doc_index: int | None = None,
    path_prefix: str = "",
    null_free: bool = False,
    keys: AbstractSet[str] | None = None,
) -> tuple[list[Loaded], list[Problem]]:
    """Reads one decoded document (from YAML or from the Kubernetes API). ``kind: List`` yields its items.
    What the reader of ``raw`` saw, when it knows: ``null_free``, no mapping holds a null (validation then
    skips looking for them); ``keys``, every mapping key in it, or more (an object none of whose noted
    fields' names is among them is not walked for them)."""
    at = _Where(file, doc_index, path_prefix)
    if not isinstance(raw, dict):
        return [], [
            at.problem(Severity.ERROR, "", "document must be a mapping with apiVersion, kind and metadata")
        ]
    missing = _require_string(raw, "apiVersion", at) or _require_string(raw, "kind", at)
    if missing is not None:
        return [], [missing]
    api_version, kind = str(raw["apiVersion"]), str(raw["kind"])
    if kind == "List":
        return _parse_list(raw, at, null_free=null_free, keys=keys)
    found = lookup(api_version, kind)
    if isinstance(found, Skipped):
        return [], [at.problem(Severity.INFO, "", found.reason, raw=raw)]
    if not isinstance(found, Known):
        return [], [at.problem(Severity.ERROR, "apiVersion", found.reason, raw=raw)]
    try:
        validator = null_free_validator(found.model) if null_free else found.model.__pydantic_validator__
        obj = validator.validate_python(raw)
    except ValidationError as exc:
        scoped = found.model.cluster_scoped
        errors = sorted(exc.errors(include_input=False, include_url=False), key=validation_error_path)
        return [], [
            at.problem(Severity.ERROR, *describe_validation_error(e), raw=raw, cluster_scoped=scoped)
            for e in errors
        ]
    may_note = keys is None or not noted_names(found.model).isdisjoint(keys)
    loaded = Loaded(obj, file, doc_index, path_prefix, may_note)
    return [loaded], _note_problems(loaded)


class _Where(NamedTuple):
    """Where a document is, for its problems (a tuple: every document of a load makes one)."""

    file: str | None
    doc_index: int | None
    path_prefix: str

    def problem(
        self, severity: Severity, path: str, message: str, *, raw: Any = None, cluster_scoped: bool = False
    ) -> Problem:
        kind, namespace, name = _identity(raw, cluster_scoped=cluster_scoped)
        return Problem(
            severity=severity,
            message=message,
            file=self.file,
            doc_index=self.doc_index,
            kind=kind,
            namespace=namespace,
            name=name,
            field_path=join_path(self.path_prefix, path),
        )


def _require_string(raw: dict[str, Any], name: str, at: _Where) -> Problem | None:
    value = raw.get(name)
    if isinstance(value, str) and value:
        return None
    message = "required field is missing" if value is None else "must be a non-empty string"
    return at.problem(Severity.ERROR, name, message, raw=raw)


def _identity(raw: Any, *, cluster_scoped: bool) -> tuple[str | None, str | None, str | None]:
    """Best-effort kind/namespace/name of a document that may be malformed, for problem lines."""
    if not isinstance(raw, dict):
        return None, None, None
    metadata = raw.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    kind, namespace, name = (
        value if isinstance(value, str) else None
        for value in (raw.get("kind"), metadata.get("namespace"), metadata.get("name"))
    )
    if cluster_scoped:
        namespace = ""
    elif not namespace and name is not None:
        namespace = DEFAULT_NAMESPACE
    return kind, namespace, name


def _parse_list(
    raw: dict[str, Any], at: _Where, *, null_free: bool, keys: AbstractSet[str] | None
) -> tuple[list[Loaded], list[Problem]]:
    items = raw.get("items")
    if not isinstance(items, list):
        return [], [at.problem(Severity.ERROR, "items", "must be a list", raw=raw)]
    objects: list[Loaded] = []
    problems: list[Problem] = []
    for index, item in enumerate(items):
        prefix = join_path(at.path_prefix, f"items[{index}]")
        found, found_problems = parse_document(
            item, file=at.file, doc_index=at.doc_index, path_prefix=prefix, null_free=null_free, keys=keys
        )
        objects.extend(found)
        problems.extend(found_problems)
    return objects, problems


def _note_problems(loaded: Loaded) -> list[Problem]:
    out = []
    for noted in loaded.noted:
        if noted.note.state is FieldState.UNIMPLEMENTED:
            out.append(
                loaded.problem(severity=Severity.WARNING, message=noted.note.reason, field_path=noted.path)
            )
        else:
            message = f"deprecated: {noted.note.reason}"
            out.append(loaded.problem(severity=Severity.INFO, message=message, field_path=noted.path))
    return out


# --- YAML ---------------------------------------------------------------------------------------------


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_PLAIN_SCALARS = frozenset(
    {"tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
)


_general_resolve: Callable[[Any, type[yaml.Node], Any, tuple[bool, bool]], str] = yaml.CSafeLoader.resolve


class _NotPlain(Exception):
    """The document needs PyYAML's own constructor (see ``_StrictLoader.construct_document``)."""


class _StrictLoader(yaml.CSafeLoader):
    """Safe YAML that refuses a key repeated in one mapping (PyYAML silently keeps the last one)."""

    def construct_document(self, node: yaml.Node) -> Any:
        # Manifests are plain data (mappings with string keys, lists, strings, numbers, booleans): built
        # straight from the node tree, several times faster than PyYAML's general constructor. Anything
        # else (an alias, a merge key, another tag, a repeated or non-string key, extreme nesting) goes
        # through PyYAML's constructor, which gives the same data or the error with its position.
        try:
            return self._plain(node, set())
        except (_NotPlain, RecursionError):
            return super().construct_document(node)

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: tuple[bool, bool]) -> str:
        # Called for every node while composing. Without path resolvers (none are set up), a mapping, a
        # sequence, a quoted scalar and a plain one that no implicit resolver starts with take the default
        # tag; only the rest needs PyYAML's lookup.
        if self.yaml_path_resolvers or None in self.yaml_implicit_resolvers:
            return _general_resolve(self, kind, value, implicit)
        if kind is yaml.ScalarNode:
            if implicit[0] and (not value or value[0] in self.yaml_implicit_resolvers):
                return _general_resolve(self, kind, value, implicit)
            return _STR
        return _MAP if kind is yaml.MappingNode else _SEQ

    def _plain(self, node: yaml.Node, seen: set[int]) -> Any:
        if id(node) in seen:
            raise _NotPlain  # an alias: shared or recursive data
        seen.add(id(node))
        tag, kind = node.tag, type(node)
        if kind is yaml.ScalarNode:
            if tag == _STR:
                return node.value
            if tag in _PLAIN_SCALARS:
                return self.yaml_constructors[tag](self, node)
        elif kind is yaml.MappingNode and tag == _MAP:
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag != _STR or type(key_node) is not yaml.ScalarNode or key_node.value in out:
                    raise _NotPlain
                out[key_node.value] = self._plain(value_node, seen)
            return out
        elif kind is yaml.SequenceNode and tag == _SEQ:
            return [self._plain(item, seen) for item in node.value]
        raise _NotPlain

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


def _parse_stream(text: str, *, file: str | None, objects: list[Loaded], problems: list[Problem]) -> None:
    plain = plain_documents(text)
    keys: list[AbstractSet[str]] | list[None]
    if plain is not None:
        documents, null_free, keys = plain
    else:  # not plain data: PyYAML reads it (and reports where it breaks)
        documents, null_free = [], False
        try:
            for document in yaml.load_all(text, Loader=_StrictLoader):
                documents.append(document)
        except yaml.YAMLError as exc:
            problem = Problem(
                severity=Severity.ERROR, file=file, doc_index=len(documents), message=_yaml_message(exc)
            )
            problems.append(problem)
            return
        keys = [None] * len(documents)
    for index, (raw, raw_keys) in enumerate(zip(documents, keys, strict=True)):
        if raw is None:
            continue
        found, found_problems = parse_document(
            raw, file=file, doc_index=index, null_free=null_free, keys=raw_keys
        )
        objects.extend(found)
        problems.extend(found_problems)


def _yaml_message(exc: yaml.YAMLError) -> str:
    # Built from the parser's description and position only: its snippet of the line could hold a secret.
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        return f"invalid YAML at {where}: {exc.problem}; nothing in this file was loaded"
    return f"invalid YAML ({type(exc).__name__}); nothing in this file was loaded"


# --- Duplicates ---------------------------------------------------------------------------------------


def _finish(objects: list[Loaded], problems: list[Problem]) -> LoadResult:
    if len({loaded.key for loaded in objects}) == len(objects):
        # No duplicates (every load of a valid configuration, thousands of objects per change).
        return LoadResult(objects=objects, problems=sorted_problems(problems))
    first: dict[ObjectKey, Loaded] = {}
    kept: list[Loaded] = []
    for loaded in objects:
        original = first.get(loaded.key)
        if original is None:
            first[loaded.key] = loaded
            kept.append(loaded)
            continue
        message = f"duplicate {loaded.key}, already defined at {original.location()}; this one is ignored"
        problems.append(loaded.problem(severity=Severity.ERROR, field_path="metadata.name", message=message))
    return LoadResult(objects=kept, problems=sorted_problems(problems))
