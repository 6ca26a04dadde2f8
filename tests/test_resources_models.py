"""Model semantics of the AI Gateway and Envoy Gateway kinds: upstream defaults, legacy shapes, shared field
sets, durations, fields marked unimplemented, credentials and Backend endpoints. The Kubernetes, Gateway API
and Inference kinds' views and the resource set holding them are ``test_resources_views.py``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from controlplane.resources import Severity, deprecated_fields, load_text, unimplemented_fields
from controlplane.resources.aigateway import (
    AIGatewayRoute,
    AIServiceBackend,
    BackendSecurityPolicy,
    VersionedAPISchema,
)
from controlplane.resources.envoy_gateway import BackendTrafficPolicy
from controlplane.resources.fieldtypes import format_duration, parse_duration
from controlplane.resources.meta import Resource
from tests.resources_support import load_errors


def _one(text: str) -> Resource:
    result = load_text(text)
    assert [p.format() for p in result.problems if p.severity is Severity.ERROR] == []
    (loaded,) = result.objects
    return loaded.object


def _route(spec: str) -> str:
    head = "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\n"
    return f"{head}metadata: {{name: r}}\nspec:\n{spec}"


def test_route_defaults_are_upstreams() -> None:
    route = _one(
        _route(
            "  parentRefs: [{name: gw}]\n  rules:\n    - matches: [{headers: [{name: h, value: v}]}]\n"
            "      backendRefs: [{name: a}]\n"
        )
    )
    assert isinstance(route, AIGatewayRoute)
    assert route.metadata.namespace == "default"
    (parent,) = route.spec.parent_refs
    assert (parent.group, parent.kind, parent.namespace) == ("gateway.networking.k8s.io", "Gateway", None)
    (rule,) = route.spec.rules
    assert rule.matches[0].headers[0].type == "Exact"
    (ref,) = rule.backend_refs
    assert (ref.weight, ref.priority, ref.model_name_override, ref.kind, ref.group) == (1, 0, "", None, None)
    assert rule.request_timeout == timedelta(seconds=60)
    assert rule.models_owned_by == "Envoy AI Gateway"
    assert unimplemented_fields(route) == []


def test_objects_set_alike_share_their_set_of_fields_and_a_copy_changes_only_its_own() -> None:
    # One set of field names per distinct combination, not per object: a third of a large load's memory.
    first, second = (_route(f"  parentRefs: [{{name: gw{index}}}]\n  rules: [{{}}]\n") for index in (1, 2))
    one, two = _one(first), _one(second)
    assert one.metadata.model_fields_set == {"name"}
    assert one.metadata.model_fields_set is two.metadata.model_fields_set
    assert one.model_fields_set is two.model_fields_set
    # Likewise the strings every object repeats: its kind, apiVersion and namespace.
    assert one.kind is two.kind
    assert one.api_version is two.api_version
    in_team = [_one(text.replace("{name: r}", "{name: r, namespace: team-a}")) for text in (first, second)]
    assert in_team[0].metadata.namespace is in_team[1].metadata.namespace

    labelled = one.metadata.model_copy(update={"labels": {"team": "a"}})

    assert labelled.model_fields_set == {"name", "labels"}
    assert one.metadata.model_fields_set == two.metadata.model_fields_set == {"name"}
    assert _one(first).model_dump(exclude_unset=True) == one.model_dump(exclude_unset=True)
    assert one.metadata.model_dump(exclude_unset=True, by_alias=True) == {"name": "r"}


def test_explicit_zero_request_timeout_is_kept() -> None:
    route = _one(_route("  rules: [{timeouts: {request: 0s, backendRequest: 1m30s}}]\n"))
    assert isinstance(route, AIGatewayRoute)
    assert route.spec.rules[0].request_timeout == timedelta(0)
    assert route.spec.rules[0].timeouts is not None
    assert route.spec.rules[0].timeouts.backend_request == timedelta(seconds=90)


def test_legacy_target_refs_conflict_with_parent_refs() -> None:
    spec = (
        "  parentRefs: [{name: a}]\n"
        "  targetRefs: [{name: b, kind: Gateway, group: gateway.networking.k8s.io}]\n"
    )
    assert load_errors(_route(spec + "  rules: []\n")) == [
        ("spec.parentRefs", "cannot be set together with the deprecated targetRefs")
    ]


def test_backend_ref_defaults_to_service_kind() -> None:
    backend = _one(
        "apiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIServiceBackend\nmetadata: {name: b}\n"
        "spec: {schema: {name: OpenAI}, backendRef: {name: svc, port: 80}}\n"
    )
    assert isinstance(backend, AIServiceBackend)
    ref = backend.spec.backend_ref
    assert (ref.group, ref.kind, ref.name, ref.port) == ("", "Service", "svc", 80)


@pytest.mark.parametrize(
    ("schema", "prefix"),
    [
        ({"name": "OpenAI"}, "/v1"),
        ({"name": "OpenAI", "version": "v1"}, "/v1"),
        ({"name": "OpenAI", "version": "v1beta/openai"}, "/v1beta/openai"),
        ({"name": "OpenAI", "version": "v1", "prefix": "/api/v2/"}, "/api/v2"),
        ({"name": "OpenAI", "prefix": "/"}, ""),
        ({"name": "AzureOpenAI", "version": "2025-01-01-preview"}, "/v1"),
        ({"name": "Anthropic", "prefix": "anthropic/v1"}, "/anthropic/v1"),
    ],
)
def test_schema_path_prefix(schema: dict[str, Any], prefix: str) -> None:
    assert VersionedAPISchema.model_validate(schema).path_prefix == prefix


@pytest.mark.parametrize(
    ("text", "value", "canonical"),
    [
        ("60s", timedelta(seconds=60), "1m"),
        ("1m30s", timedelta(seconds=90), "1m30s"),
        ("500ms", timedelta(milliseconds=500), "500ms"),
        ("1h2m3s4ms", timedelta(hours=1, minutes=2, seconds=3, milliseconds=4), "1h2m3s4ms"),
        ("0s", timedelta(0), "0s"),
    ],
)
def test_durations_parse_and_format(text: str, value: timedelta, canonical: str) -> None:
    assert parse_duration(text) == value
    assert format_duration(value) == canonical


@pytest.mark.parametrize("text", ["", "1", "1.5s", "-1s", "1d", "123456s", "1s1s1s1s1s", "5 s"])
def test_invalid_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_fields_marked_unimplemented_are_reported_when_set() -> None:
    text = _route(
        "  llmRequestCosts: [{metadataKey: in, type: InputToken}]\n"
        "  rules:\n"
        "    - backendRefs:\n"
        "        - name: a\n"
        "        - {name: b, bodyMutation: {remove: [x]}}\n"
    )
    result = load_text(text)
    (loaded,) = result.objects
    # llmRequestCosts is implemented (gatewayapi.costs): set here, it is not reported.
    expected = ["spec.rules[0].backendRefs[1].bodyMutation"]
    assert unimplemented_fields(loaded.object) == expected
    assert deprecated_fields(loaded.object) == []
    assert [(p.severity, p.field_path) for p in result.problems] == [
        (Severity.WARNING, path) for path in expected
    ]


def test_unimplemented_fields_of_backend_policy_and_traffic_policy() -> None:
    backend = _one(
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIServiceBackend\nmetadata: {name: b}\n"
        "spec: {schema: {name: OpenAI}, backendRef: {name: s}, bodyMutation: {remove: [x]}}\n"
    )
    policy = _one(
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: BackendSecurityPolicy\nmetadata: {name: p}\n"
        "spec: {type: APIKey, apiKey: {secretRef: {name: s}}, credentialOverride: {fromRequestHeaders: {}}}\n"
    )
    traffic = _one(
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: t}\n"
        "spec: {targetRef: {group: g, kind: K, name: n}, rateLimit: {type: Local}, retry: {}}\n"
    )
    assert unimplemented_fields(backend) == ["spec.bodyMutation"]
    assert unimplemented_fields(policy) == []  # credentialOverride is translated now
    assert unimplemented_fields(traffic) == ["spec.rateLimit"]
    assert isinstance(policy, BackendSecurityPolicy)
    assert policy.spec.credential_override is not None
    assert policy.spec.credential_override.from_request_headers is not None
    assert policy.spec.credential_override.from_request_headers.fallback_to_configured is True
    assert isinstance(traffic, BackendTrafficPolicy)
    assert [r.name for r in traffic.spec.all_target_refs] == ["n"]


@pytest.mark.parametrize(
    "credential",
    [
        "type: AWSCredentials\n"
        "  awsCredentials: {region: us-east-1, credentialsFile: {secretRef: {name: s}}}",
        "type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n    oidcExchangeToken:\n"
        "      oidc: {provider: {issuer: 'https://idp'}, clientID: c, clientSecret: {name: s}}\n"
        "      awsRoleArn: arn:aws:iam::1:role/r",
        "type: AzureAPIKey\n  azureAPIKey: {secretRef: {name: s}}",
        "type: AzureCredentials\n  azureCredentials: {clientID: c, tenantID: t, clientSecretRef: {name: s}}",
        "type: GCPCredentials\n"
        "  gcpCredentials: {projectName: p, region: r, credentialsFile: {secretRef: {name: s}}}",
        "type: AnthropicAPIKey\n  anthropicAPIKey: {secretRef: {name: s}}",
    ],
)
def test_every_upstream_credential_type_loads(credential: str) -> None:
    policy = _one(
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: BackendSecurityPolicy\nmetadata: {name: p}\n"
        "spec:\n  targetRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: pool}]\n  "
        + credential
        + "\n"
    )
    assert isinstance(policy, BackendSecurityPolicy)


def test_credential_must_match_policy_type() -> None:
    text = (
        "apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: BackendSecurityPolicy\nmetadata: {name: p}\n"
        "spec: {type: AWSCredentials, apiKey: {secretRef: {name: s}}}\n"
    )
    assert load_errors(text) == [
        ("spec", "type AWSCredentials needs awsCredentials and no other credential field (found: apiKey)")
    ]


@pytest.mark.parametrize(
    ("endpoints", "path", "message"),
    [
        ("[{}]", "spec.endpoints[0]", "exactly one of fqdn, ip or unix must be set"),
        (
            "[{fqdn: {hostname: h, port: 1}, ip: {address: 1.2.3.4, port: 1}}]",
            "spec.endpoints[0]",
            "exactly one of fqdn, ip or unix must be set",
        ),
        (
            "[{fqdn: {hostname: h, port: 1}}, {ip: {address: 1.2.3.4, port: 1}}]",
            "spec",
            "fqdn endpoints cannot be mixed with ip or unix endpoints",
        ),
        ("[{ip: {address: 1.2.3.4, port: 0}}]", "spec.endpoints[0].ip.port", "must be at least 1"),
    ],
)
def test_backend_endpoint_rules(endpoints: str, path: str, message: str) -> None:
    head = "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata: {name: b}\n"
    text = f"{head}spec: {{endpoints: {endpoints}}}\n"
    assert load_errors(text) == [(path, message)]


def test_traffic_policy_defaults() -> None:
    traffic = _one(
        "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: t}\n"
        "spec: {retry: {}, healthCheck: {passive: {}, active: {type: HTTP, http: {path: /health}}}}\n"
    )
    assert isinstance(traffic, BackendTrafficPolicy)
    assert traffic.spec.retry is not None
    assert traffic.spec.retry.num_retries == 2
    health = traffic.spec.health_check
    assert health is not None
    assert health.passive is not None
    passive = health.passive
    assert (passive.interval, passive.base_ejection_time) == (timedelta(seconds=3), timedelta(seconds=30))
    assert (passive.consecutive_5xx_errors, passive.consecutive_local_origin_failures) == (5, 5)
    assert (passive.max_ejection_percent, passive.consecutive_gateway_errors) == (10, None)
    assert health.active is not None
    assert (health.active.timeout, health.active.unhealthy_threshold, health.active.healthy_threshold) == (
        timedelta(seconds=1),
        3,
        1,
    )
