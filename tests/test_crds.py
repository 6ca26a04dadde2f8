"""Our CRDs: generated from the models and committed in step, structural, with upstream's names and limits,
and refusing in a folder of files exactly what they make the API server refuse.

The API server's side of the same table is ``test_kubernetes_crds``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.cli import main
from controlplane.crdgen.definitions import custom_resource_definition, our_kinds
from controlplane.crdgen.render import drift, generated_files
from controlplane.crdgen.schema import SchemaError, structural_schema
from controlplane.resources import Severity
from controlplane.resources.meta import Model
from controlplane.resources.parse import parse_document
from tests.crd_cases import ACCEPTED, FORBIDDEN, Case

REPO = Path(__file__).resolve().parents[1]
CRDS = REPO / "crds"

_FORBIDDEN_KEYWORDS = {"$ref", "anyOf", "oneOf", "allOf", "not", "const", "title", "nullable", "$defs"}
_UNTYPED_MARKERS = ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")


def _crds() -> dict[str, dict[str, Any]]:
    return {kind.kind: custom_resource_definition(kind) for kind in our_kinds()}


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}.*")


def _schema(kind: str) -> dict[str, Any]:
    (version, *_) = _crds()[kind]["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _at(kind: str, path: str) -> dict[str, Any]:
    node = _schema(kind)
    for step in path.split("."):
        node = node["items"] if step == "[]" else node["properties"][step]
    return node


# --- In step with the models ----------------------------------------------------------------------------


def test_committed_crds_are_what_the_models_generate() -> None:
    assert drift(CRDS) == [], "crds/ is out of step with the models: run `make crds` and commit"
    assert sorted(path.name for path in CRDS.glob("*.yaml")) == sorted(generated_files())


def test_the_command_writes_the_files_and_check_finds_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["crds", "--output", str(tmp_path)]) == 0
    assert main(["crds", "--output", str(tmp_path), "--check"]) == 0
    written = tmp_path / "aigateway.envoyproxy.io_aigatewayroutes.yaml"
    assert written.read_text() == (CRDS / written.name).read_text()

    written.write_text(written.read_text().replace("maxItems: 15", "maxItems: 99"))
    (tmp_path / "aigateway.envoyproxy.io_stale.yaml").write_text("{}\n")
    capsys.readouterr()
    assert main(["crds", "--output", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert f"{written}: differs from the models" in err
    assert "aigateway.envoyproxy.io_stale.yaml: not generated from any model" in err


def test_generation_is_deterministic() -> None:
    assert generated_files() == generated_files()
    for text in generated_files().values():
        # No YAML aliases (both versions share one schema object).
        assert "&id" not in text
        assert "*id" not in text


# --- Names, versions, columns: upstream's ---------------------------------------------------------------


def test_names_scope_and_versions_are_envoy_ai_gateways() -> None:
    crds = _crds()
    assert sorted(crds) == ["AIGatewayRoute", "AIServiceBackend", "BackendSecurityPolicy"]
    plurals = {"AIGatewayRoute": "aigatewayroutes", "AIServiceBackend": "aiservicebackends"}
    plurals["BackendSecurityPolicy"] = "backendsecuritypolicies"
    for kind, crd in crds.items():
        spec = crd["spec"]
        assert crd["metadata"]["name"] == f"{plurals[kind]}.aigateway.envoyproxy.io"
        assert spec["group"] == "aigateway.envoyproxy.io"
        assert spec["scope"] == "Namespaced"
        assert spec["names"] == {
            "kind": kind,
            "listKind": f"{kind}List",
            "plural": plurals[kind],
            "singular": kind.lower(),
        }
        versions = {version["name"]: version for version in spec["versions"]}
        assert sorted(versions) == ["v1alpha1", "v1beta1"]
        assert [name for name, v in versions.items() if v["storage"]] == ["v1beta1"]
        assert all(v["served"] for v in versions.values())
        assert versions["v1alpha1"]["deprecated"] is True
        assert "use aigateway.envoyproxy.io/v1beta1" in versions["v1alpha1"]["deprecationWarning"]
        for version in versions.values():
            assert version["subresources"] == {"status": {}}
            columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
            assert columns["Accepted"]["jsonPath"] == '.status.conditions[?(@.type=="Accepted")].status'
            assert columns["Age"] == {
                "name": "Age",
                "type": "date",
                "jsonPath": ".metadata.creationTimestamp",
            }


# --- Structural -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["AIGatewayRoute", "AIServiceBackend", "BackendSecurityPolicy"])
def test_schemas_are_structural(kind: str) -> None:
    for path, node in _nodes(_schema(kind)):
        assert not _FORBIDDEN_KEYWORDS & node.keys(), f"{kind}{path}: {_FORBIDDEN_KEYWORDS & node.keys()}"
        if not any(node.get(marker) for marker in _UNTYPED_MARKERS):
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties") is not False, path
        assert node.get("uniqueItems") is not True, path  # the API server refuses it
        assert isinstance(node.get("exclusiveMinimum", False), bool), path
        if node.get("type") == "array":
            assert "items" in node, path
        for required in node.get("required", []):
            assert required in node["properties"], f"{kind}{path}: required {required} is not a property"


def test_only_free_form_fields_keep_unknown_fields() -> None:
    kept = {
        f"{kind}{path}"
        for kind in _crds()
        for path, node in _nodes(_schema(kind))
        if node.get("x-kubernetes-preserve-unknown-fields")
    }
    assert kept == {
        "AIGatewayRoute.spec.filterConfig",
        "BackendSecurityPolicy.spec.awsCredentials.oidcExchangeToken.oidc",
        "BackendSecurityPolicy.spec.azureCredentials.oidcExchangeToken.oidc",
        "BackendSecurityPolicy.spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc",
    }


def test_status_has_the_standard_condition_shape() -> None:
    condition = _at("AIServiceBackend", "status.conditions.[]")
    assert sorted(condition["required"]) == ["lastTransitionTime", "message", "reason", "status", "type"]
    assert condition["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert condition["properties"]["message"]["maxLength"] == 32768
    assert condition["properties"]["lastTransitionTime"]["format"] == "date-time"
    assert condition["properties"]["observedGeneration"]["minimum"] == 0


def test_constructs_a_crd_cannot_hold_are_refused_with_the_field_named() -> None:
    class Union(Model):
        value: int | str

    class Anything(Model):
        value: Any

    with pytest.raises(SchemaError, match=r"Union\.value: a union of 2 types"):
        structural_schema(Union)
    with pytest.raises(SchemaError, match=r"Anything\.value: no type"):
        structural_schema(Anything)


# --- Upstream's limits, carried by the models -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "path", "limits"),
    [
        ("AIGatewayRoute", "spec", {"required": ["rules"]}),
        ("AIGatewayRoute", "spec.rules", {"maxItems": 15}),
        ("AIGatewayRoute", "spec.parentRefs", {"maxItems": 16}),
        ("AIGatewayRoute", "spec.hostnames", {"maxItems": 16}),
        ("AIGatewayRoute", "spec.hostnames.[]", {"maxLength": 253, "minLength": 1}),
        ("AIGatewayRoute", "spec.llmRequestCosts", {"maxItems": 36}),
        ("AIGatewayRoute", "spec.parentRefs.[].name", {"maxLength": 253, "minLength": 1}),
        ("AIGatewayRoute", "spec.parentRefs.[].namespace", {"maxLength": 63, "minLength": 1}),
        ("AIGatewayRoute", "spec.parentRefs.[].port", {"minimum": 1, "maximum": 65535}),
        ("AIGatewayRoute", "spec.parentRefs.[].kind", {"default": "Gateway", "maxLength": 63}),
        ("AIGatewayRoute", "spec.rules.[].backendRefs", {"maxItems": 128}),
        ("AIGatewayRoute", "spec.rules.[].matches", {"maxItems": 128}),
        ("AIGatewayRoute", "spec.rules.[].matches.[].headers", {"maxItems": 16}),
        ("AIGatewayRoute", "spec.rules.[].matches.[].headers.[].name", {"maxLength": 256, "minLength": 1}),
        ("AIGatewayRoute", "spec.rules.[].matches.[].headers.[].value", {"maxLength": 4096, "minLength": 1}),
        (
            "AIGatewayRoute",
            "spec.rules.[].matches.[].headers.[].type",
            {"enum": ["Exact", "RegularExpression"]},
        ),
        ("AIGatewayRoute", "spec.rules.[].backendRefs.[].weight", {"default": 1, "minimum": 0}),
        ("AIGatewayRoute", "spec.rules.[].backendRefs.[].priority", {"default": 0, "minimum": 0}),
        ("AIGatewayRoute", "spec.rules.[].modelsOwnedBy", {"default": "Envoy AI Gateway"}),
        ("AIGatewayRoute", "spec.rules.[].modelsCreatedAt", {"format": "date-time"}),
        ("AIServiceBackend", "spec", {"required": ["backendRef", "schema"]}),
        ("AIServiceBackend", "spec.backendRef.group", {"default": "", "maxLength": 253}),
        (
            "AIServiceBackend",
            "spec.headerMutation.set",
            {"maxItems": 16, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        ),
        ("AIServiceBackend", "spec.headerMutation.remove", {"x-kubernetes-list-type": "set"}),
        ("AIServiceBackend", "spec.bodyMutation.remove", {"maxItems": 16}),
        ("BackendSecurityPolicy", "spec", {"required": ["type"]}),
        ("BackendSecurityPolicy", "spec.targetRefs", {"maxItems": 16}),
        ("BackendSecurityPolicy", "spec.targetRefs.[]", {"required": ["group", "kind", "name"]}),
        ("BackendSecurityPolicy", "spec.awsCredentials.credentialsFile.profile", {"default": "default"}),
    ],
)
def test_upstream_limits_are_in_the_schema(kind: str, path: str, limits: dict[str, Any]) -> None:
    node = _at(kind, path)
    assert {key: node.get(key) for key in limits} == limits


def test_enums_list_every_upstream_value() -> None:
    assert _at("AIServiceBackend", "spec.schema.name")["enum"] == [
        "OpenAI",
        "Cohere",
        "AWSBedrock",
        "AzureOpenAI",
        "GCPVertexAI",
        "GCPAnthropic",
        "Anthropic",
        "AWSAnthropic",
    ]
    assert set(_at("BackendSecurityPolicy", "spec.type")["enum"]) == {
        "APIKey",
        "AWSCredentials",
        "AzureAPIKey",
        "AzureCredentials",
        "GCPCredentials",
        "AnthropicAPIKey",
    }


def test_durations_are_checked_by_pattern() -> None:
    pattern = _at("AIGatewayRoute", "spec.rules.[].timeouts.request")["pattern"]
    assert pattern == r"^(?:[0-9]{1,5}(?:h|ms|m|s)){1,4}$"


def test_descriptions_come_from_the_models() -> None:
    assert "Routes OpenAI-compatible requests" in _schema("AIGatewayRoute")["description"]
    assert "tried first" in _at("AIGatewayRoute", "spec.rules.[].backendRefs.[].priority")["description"]
    assert _at("AIGatewayRoute", "spec.targetRefs")["description"].startswith("Deprecated: ")
    assert (
        "not implemented yet"
        in _at("AIGatewayRoute", "spec.rules.[].backendRefs.[].bodyMutation")["description"]
    )


def test_committed_files_parse_as_the_crds() -> None:
    for name, crd in (
        (f"aigateway.envoyproxy.io_{k.plural}.yaml", custom_resource_definition(k)) for k in our_kinds()
    ):
        assert yaml.safe_load((CRDS / name).read_text()) == crd


# --- The file source refuses what the API server refuses --------------------------------------------------


@pytest.mark.parametrize("case", FORBIDDEN, ids=lambda case: case.id)
def test_the_file_source_refuses_what_the_crds_forbid(case: Case) -> None:
    objects, problems = parse_document(case.object(), file="case.yaml", doc_index=0)
    errors = [p for p in problems if p.severity is Severity.ERROR]
    assert objects == []
    assert [p.field_path for p in errors] == [case.field_path], [p.format() for p in errors]


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda case: case.id)
def test_the_file_source_takes_what_the_crds_take(case: Case) -> None:
    objects, problems = parse_document(case.object(), file="case.yaml", doc_index=0)
    assert [p.format() for p in problems if p.severity is Severity.ERROR] == []
    assert len(objects) == 1
