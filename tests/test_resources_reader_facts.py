"""What the YAML fast path saw of a text (``PlainDocuments``: no nulls, every key) lets parsing skip work,
never change its result.

A model's validator without its null handling (``null_free_validator``), used for documents in which no
mapping holds a null, reads every such document exactly as the model's own validator does: the same object
(field values and which fields were set) or the same errors. On a null it differs, which shows the null
handling is really left out, and the model's own validator keeps it. An object whose input has none of its
noted fields' names (``noted_names``) has no noted field to report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from bench.scale_manifests import route_file
from controlplane.resources import Severity, load_text
from controlplane.resources.core import ConfigMap
from controlplane.resources.fastyaml import plain_documents
from controlplane.resources.meta import null_free_validator
from controlplane.resources.notes import noted_fields, noted_names
from controlplane.resources.registry import Known, lookup
from tests.test_resources_fastyaml import holds_null_value, mapping_keys

_REPO = Path(__file__).parent.parent


def _repository_documents() -> list[dict[str, Any]]:
    texts = [route_file(3, backend_port=20003)]
    for folder in ("examples", "tests/data"):
        texts.extend(path.read_text() for path in sorted((_REPO / folder).rglob("*.yaml")))
    found: list[dict[str, Any]] = []
    for text in texts:
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            continue
        found.extend(
            d
            for d in documents
            if isinstance(d, dict) and isinstance(d.get("kind"), str) and not holds_null_value(d)
        )
    return found


def _read(validate: Any, document: dict[str, Any]) -> tuple[str, Any]:
    try:
        obj = validate(document)
    except ValidationError as exc:
        return "errors", exc.errors(include_url=False)
    assert isinstance(obj, BaseModel)
    return "object", (type(obj), obj, obj.model_dump(exclude_unset=True))


_CASES = [
    (document, found.model)
    for document in _repository_documents()
    if isinstance(found := lookup(str(document.get("apiVersion")), document["kind"]), Known)
]


def test_every_null_free_repository_document_reads_the_same() -> None:
    cases = [(document, model) for document, model in _CASES if not holds_null_value(document)]
    assert len(cases) > 50  # the examples' and fixtures' documents of kinds we read
    kinds = set()
    for document, model in cases:
        expected = _read(model.model_validate, document)
        assert _read(null_free_validator(model).validate_python, document) == expected, document
        kinds.add(model)
    assert len(kinds) > 8


@pytest.mark.parametrize(
    "document",
    [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": 1}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ""}, "data": []},
        {"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "c"}, "extra": 1},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {}},
    ],
)
def test_bad_documents_get_the_same_errors(document: dict[str, Any]) -> None:
    model = ConfigMap
    expected = _read(model.model_validate, document)
    assert expected[0] == "errors"
    assert _read(null_free_validator(model).validate_python, document) == expected


def test_a_null_is_left_to_the_models_own_validator() -> None:
    document = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": None}}
    with pytest.raises(ValidationError) as raised:
        null_free_validator(ConfigMap).validate_python(document)
    assert [error["loc"] for error in raised.value.errors()] == [("metadata", "namespace")]
    # Building that validator left the model's own as it was: a null there still means unset.
    assert ConfigMap.model_validate(document).metadata.namespace == "default"


def test_a_null_map_value_is_still_an_error_naming_the_field() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\n    a:\ndata:\n  k: v\n"
    result = load_text(text, file="c.yaml")
    assert result.objects == []
    assert [(p.severity, p.field_path, p.message) for p in result.problems] == [
        (Severity.ERROR, "metadata.labels.a", "must be a string")
    ]


def test_an_object_with_noted_fields_has_their_names_among_its_keys() -> None:
    noted = 0
    for document, model in _CASES:
        try:
            obj = model.model_validate(document)
        except ValidationError:
            continue
        if noted_fields(obj):
            noted += 1
            assert not noted_names(model).isdisjoint(mapping_keys(document)), document
    assert noted >= 2  # the legacy v1alpha1 fixtures


def test_noted_fields_of_a_text_read_by_the_fast_path_are_reported() -> None:
    text = (_REPO / "tests/data/resources/legacy_v1alpha1.yaml").read_text()
    assert plain_documents(text) is not None
    result = load_text(text, file="legacy.yaml")
    paths = [(p.kind, p.field_path) for p in result.problems if p.severity is not Severity.ERROR]
    assert ("AIGatewayRoute", "spec.targetRefs") in paths
    assert ("AIServiceBackend", "spec.backendSecurityPolicyRef") in paths
