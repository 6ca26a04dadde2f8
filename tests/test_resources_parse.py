"""Parsing: the seed manifests load, and every kind of bad input becomes a located Problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.resources import LoadResult, Problem, Severity, load_text
from controlplane.resources.aigateway import AIGatewayRoute
from controlplane.resources.core import ConfigMap
from controlplane.sources.file_reading import load_paths

DATA = Path(__file__).parent / "data" / "resources"

BACKEND = """
apiVersion: aigateway.envoyproxy.io/{version}
kind: AIServiceBackend
metadata:
  name: {name}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{name: b, kind: Backend, group: gateway.envoyproxy.io}}
"""


def _errors(result: LoadResult) -> list[Problem]:
    return [p for p in result.problems if p.severity is Severity.ERROR]


def _lines(result: LoadResult, severity: Severity) -> list[str]:
    return [p.format() for p in result.problems if p.severity is severity]


def test_seed_002_header_routing_to_pool_or_backend_loads() -> None:
    result = load_paths([DATA / "seed002_inference_pool.yaml"])
    assert result.ok
    resources = result.resource_set()
    (route,) = resources.routes()
    pool_rule, backend_rule = route.spec.rules
    assert pool_rule.matches[0].headers[0].value == "yes"
    assert pool_rule.backend_refs[0].is_inference_pool
    assert not backend_rule.backend_refs[0].is_inference_pool
    pool = resources.inference_pool("default", pool_rule.backend_refs[0].name)
    assert pool is not None
    members = [
        b.name
        for b in resources.backends()
        if pool.match_labels.items() <= b.metadata.labels.items() and b.namespace == pool.namespace
    ]
    assert members == ["pool-member-a", "pool-member-b"]


def test_seed_003_priorities_model_override_and_key_load() -> None:
    result = load_paths([DATA / "seed003_model_failover.yaml"])
    assert _errors(result) == []
    resources = result.resource_set()
    (route,) = resources.routes()
    refs = route.spec.rules[0].backend_refs
    assert [(r.model_name_override, r.priority, r.weight) for r in refs] == [
        ("gpt-4o", 0, 1),
        ("gpt-4.0-turbo", 1, 1),
        ("gpt-3.5-turbo", 2, 1),
    ]
    assert route.spec.rules[0].request_timeout.total_seconds() == 120
    (policy,) = resources.security_policies()
    assert policy.spec.type == "APIKey"
    assert policy.spec.api_key is not None
    secret = resources.secret("kgateway-system", policy.spec.api_key.secret_ref.name)
    assert secret is not None
    key = secret.value("apiKey")
    assert key is not None
    assert key.get_secret_value() == "sk-test-seed003-not-a-real-key"
    (traffic,) = resources.backend_traffic_policies()
    assert traffic.spec.retry is not None
    assert traffic.spec.retry.num_attempts_per_priority == 1


def test_legacy_v1alpha1_manifest_loads_with_deprecations_reported() -> None:
    result = load_paths([DATA / "legacy_v1alpha1.yaml"])
    assert _errors(result) == []
    resources = result.resource_set()
    route = resources.find(AIGatewayRoute, "default", "legacy")
    assert route is not None
    assert [(p.group, p.kind, p.name) for p in route.spec.parent_refs] == [
        ("gateway.networking.k8s.io", "Gateway", "legacy-gateway")
    ]
    backend = resources.backend("default", "legacy-openai")
    assert backend is not None
    assert backend.spec.api_schema.path_prefix == "/v1beta/openai"
    assert backend.spec.backend_security_policy_ref is not None
    assert backend.spec.backend_security_policy_ref.name == "legacy-apikey"
    deprecated = {(p.name, p.field_path) for p in result.problems if p.message.startswith("deprecated")}
    assert deprecated == {
        ("legacy", "spec.filterConfig"),
        ("legacy", "spec.schema"),
        ("legacy", "spec.targetRefs"),
        ("legacy-openai", "spec.backendSecurityPolicyRef"),
        ("legacy-openai", "spec.timeouts"),
    }
    assert _lines(result, Severity.INFO)[-1] == (
        f"{DATA / 'legacy_v1alpha1.yaml'}:6: Deployment/default/legacy-testupstream: -: "
        "skipped: kind Deployment (apps/v1) is not one this control plane reads"
    )


def test_invalid_yaml_rejects_that_file_only(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BACKEND.format(version="v1beta1", name="x") + "---\nspec: [unclosed\n")
    (tmp_path / "good.yaml").write_text(BACKEND.format(version="v1beta1", name="ok"))
    result = load_paths([tmp_path])
    assert not result.ok
    assert [o.object.name for o in result.objects] == ["ok"]
    (problem,) = result.problems
    assert problem.file == str(tmp_path / "bad.yaml")
    assert problem.doc_index == 1
    assert problem.message.startswith("invalid YAML at line 11, column 1:")
    assert problem.message.endswith("nothing in this file was loaded")


def test_repeated_mapping_key_is_invalid_yaml() -> None:
    result = load_text(
        "apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata: {name: x}\n", file="dup.yaml"
    )
    assert [p.format() for p in result.problems] == [
        "dup.yaml:0: -: -: invalid YAML at line 3, column 1: found duplicate key 'kind'; "
        "nothing in this file was loaded"
    ]


def test_duplicate_object_across_files_and_versions_is_an_error_on_the_second(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BACKEND.format(version="v1alpha1", name="same"))
    (tmp_path / "b.yaml").write_text(BACKEND.format(version="v1beta1", name="same"))
    result = load_paths([tmp_path])
    assert [o.file for o in result.objects] == [str(tmp_path / "a.yaml")]
    assert [p.format() for p in result.problems] == [
        f"{tmp_path / 'b.yaml'}:0: AIServiceBackend/default/same: metadata.name: duplicate "
        f"AIServiceBackend/default/same, already defined at {tmp_path / 'a.yaml'}:0; this one is ignored"
    ]


def test_inference_pools_of_both_groups_may_share_a_name() -> None:
    text = """
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool}
spec: {selector: {matchLabels: {app: a}}, targetPorts: [{number: 8000}]}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: pool}
spec: {selector: {app: a}, targetPortNumber: 8000}
"""
    result = load_text(text)
    assert result.problems == []
    assert len(result.resource_set().inference_pools()) == 2


def test_unknown_field_is_an_error_naming_its_yaml_path() -> None:
    text = """
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {name: r, namespace: team}
spec:
  rules:
    - backendRefs:
        - name: a
        - name: b
          wieght: 2
"""
    result = load_text(text, file="route.yaml")
    assert result.objects == []
    assert [p.format() for p in result.problems] == [
        "route.yaml:0: AIGatewayRoute/team/r: spec.rules[0].backendRefs[1].wieght: unknown field"
    ]


def test_known_kind_at_unknown_version_is_an_error_on_api_version() -> None:
    result = load_text(BACKEND.format(version="v2", name="x"), file="f.yaml")
    (problem,) = result.problems
    assert problem.severity is Severity.ERROR
    assert problem.field_path == "apiVersion"
    assert "aigateway.envoyproxy.io/v2" in problem.message


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [
        ("apps/v1", "Deployment"),
        ("v1", "Namespace"),
        ("v1", "ServiceAccount"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("gateway.envoyproxy.io/v1alpha1", "EnvoyProxy"),
        ("gateway.envoyproxy.io/v1alpha1", "ClientTrafficPolicy"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
        ("gateway.networking.k8s.io/v1alpha2", "TCPRoute"),
    ],
)
def test_kinds_this_control_plane_does_not_read_are_skipped_with_info(api_version: str, kind: str) -> None:
    result = load_text(
        f"apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x}}\nspec: {{any: thing}}\n"
    )
    assert result.objects == []
    (problem,) = result.problems
    assert problem.severity is Severity.INFO
    assert problem.message == f"skipped: kind {kind} ({api_version}) is not one this control plane reads"


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("- just\n- a list\n", "", "document must be a mapping with apiVersion, kind and metadata"),
        ("kind: ConfigMap\nmetadata: {name: x}\n", "apiVersion", "required field is missing"),
        ("apiVersion: v1\nmetadata: {name: x}\n", "kind", "required field is missing"),
        ("apiVersion: 1\nkind: ConfigMap\n", "apiVersion", "must be a non-empty string"),
        ("apiVersion: v1\nkind: ConfigMap\n", "metadata", "required field is missing"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "metadata.name", "required field is missing"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ''}\n", "metadata.name", "must not be empty"),
        ("apiVersion: v1\nkind: List\nitems: 3\n", "items", "must be a list"),
    ],
)
def test_malformed_documents_name_the_missing_field(text: str, path: str, message: str) -> None:
    result = load_text(text, file="f.yaml")
    assert result.objects == []
    assert [(p.severity, p.field_path, p.message) for p in result.problems] == [
        (Severity.ERROR, path, message)
    ]


def test_list_items_are_expanded_with_item_paths() -> None:
    text = """
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: first}
  - apiVersion: v1
    kind: ConfigMap
    metadata: {name: second}
    bogus: true
"""
    result = load_text(text, file="dump.yaml")
    assert [o.object.name for o in result.objects] == ["first"]
    assert isinstance(result.objects[0].object, ConfigMap)
    assert [p.format() for p in result.problems] == [
        "dump.yaml:0: ConfigMap/default/second: items[1].bogus: unknown field"
    ]


def test_null_fields_read_as_unset_like_kubernetes() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  labels:\n  namespace: null\ndata:\n"
    result = load_text(text)
    assert result.problems == []
    (loaded,) = result.objects
    assert isinstance(loaded.object, ConfigMap)
    assert (loaded.object.metadata.labels, loaded.object.namespace, loaded.object.data) == ({}, "default", {})


def test_empty_documents_are_ignored_but_counted() -> None:
    result = load_text(
        "---\n# only a comment\n---\n" + BACKEND.format(version="v1beta1", name="x"), file="f.yaml"
    )
    assert result.problems == []
    assert [(o.file, o.doc_index) for o in result.objects] == [("f.yaml", 1)]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "null",
        "42",
        "\t",
        "apiVersion: [1]\nkind: {a: b}\n",
        "apiVersion: v1\nkind: Secret\nmetadata: []\n",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: [1, 2]\n",
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\nmetadata: {name: r}\nspec: 5\n",
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\nmetadata: {name: r}\n"
        "spec: {rules: [{backendRefs: [[]], matches: {}}]}\n",
        "? [a, b]\n: c\n",
        "&a [*a]",
        "!!python/object:os.system {}",
    ],
)
def test_garbage_never_raises(text: str) -> None:
    result = load_text(text, file="junk.yaml")
    assert result.objects == []
    assert all(p.file == "junk.yaml" for p in result.problems)


def test_problem_line_format_for_unknown_location_and_cluster_scoped_kinds() -> None:
    assert Problem(severity=Severity.ERROR, message="boom").format() == "-:-: -: -: boom"
    problem = Problem(
        severity=Severity.WARNING,
        message="m",
        file="f.yaml",
        doc_index=3,
        kind="GatewayClass",
        namespace="",
        name="gc",
        field_path="spec.controllerName",
    )
    assert problem.format() == "f.yaml:3: GatewayClass/gc: spec.controllerName: m"
