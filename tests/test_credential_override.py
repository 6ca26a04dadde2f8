"""``credentialOverride`` in translation: which header each policy type reads by default, and every override
that cannot be honoured reported on its policy with the field named (the policy's backends left out), or, for
dynamic metadata with a fallback, a warning and the configured credential. Through Envoy:
``tests/test_e2e_credential_override.py``."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from controlplane.gatewayapi import TranslateOptions
from controlplane.pipeline import PipelineResult, translate
from controlplane.resources.aigateway import BackendSecurityPolicy
from controlplane.resources.parse import load_text
from controlplane.resources.problems import Severity
from controlplane.xds.resource import LISTENER

HOP = "route/default/r/rule/0/backend/0"
POLICY = BackendSecurityPolicy.key_for("default", "p")
_ROUTE = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: g, namespace: default}
spec:
  gatewayClassName: ai-gateway
  listeners: [{name: http, protocol: HTTP, port: 8080}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: g}]
  rules: [{backendRefs: [{name: b}]}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {name: b, namespace: default}
spec:
  schema: {name: SCHEMA}
  backendRef: {name: h, kind: Backend, group: gateway.envoyproxy.io}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: h, namespace: default}
spec:
  endpoints: [{ip: {address: 127.0.0.1, port: 9000}}]
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: default}
stringData: {apiKey: sk-unit-override-key, client-secret: unit-override-client-secret}
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: BackendSecurityPolicy
metadata: {name: p, namespace: default}
spec:
  targetRefs: [{group: aigateway.envoyproxy.io, kind: AIServiceBackend, name: b}]
"""


def _translate(policy_spec: str, *, schema: str = "OpenAI") -> PipelineResult:
    text = _ROUTE.replace("SCHEMA", schema) + "".join(f"  {line}\n" for line in policy_spec.splitlines())
    loaded = load_text(text, file="override.yaml")
    assert [problem.message for problem in loaded.problems] == []
    return translate(loaded.resource_set(), options=TranslateOptions(listen_address="127.0.0.1"))


def _hop(result: PipelineResult) -> str | None:
    listener = result.snapshot().get(LISTENER).get(HOP)
    return None if listener is None else json_format.MessageToJson(listener.message)


def _policy_problems(result: PipelineResult) -> list[tuple[Severity, str]]:
    return [
        (problem.severity, f"{problem.field_path}: {problem.message}")
        for problem in result.problems
        if problem.kind == "BackendSecurityPolicy"
    ]


@pytest.mark.parametrize(
    ("spec", "schema", "header", "sent_as"),
    [
        ("type: APIKey\napiKey: {secretRef: {name: s}}", "OpenAI", "x-aigw-api-key", "Authorization"),
        (
            "type: AnthropicAPIKey\nanthropicAPIKey: {secretRef: {name: s}}",
            "Anthropic",
            "x-aigw-anthropic-api-key",
            "x-api-key",
        ),
        (
            "type: AzureAPIKey\nazureAPIKey: {secretRef: {name: s}}",
            "AzureOpenAI, version: '2024-10-21'",
            "x-aigw-azure-api-key",
            "api-key",
        ),
        (
            "type: AzureCredentials\n"
            "azureCredentials: {clientID: c, tenantID: t, clientSecretRef: {name: s}}",
            "AzureOpenAI, version: '2024-10-21'",
            "x-aigw-azure-access-token",
            "Authorization",
        ),
    ],
    ids=["APIKey", "AnthropicAPIKey", "AzureAPIKey", "AzureCredentials"],
)
def test_each_type_reads_its_default_header_into_its_credential_header(
    spec: str, schema: str, header: str, sent_as: str
) -> None:
    result = _translate(f"{spec}\ncredentialOverride: {{fromRequestHeaders: {{}}}}", schema=schema)
    assert _policy_problems(result) == []
    hop = _hop(result)
    assert hop is not None
    assert f'"key": "{sent_as}"' in hop
    assert f"%REQ({header})%" in hop
    assert f'"remove": "{header}"' in hop
    assert "no-credential" not in hop  # falls back to the configured key: no 401 route


API_KEY = "type: APIKey\napiKey: {secretRef: {name: s}}\n"
HEADER_PATH = "spec.credentialOverride.fromRequestHeaders.header"
METADATA_PATH = "spec.credentialOverride.fromDynamicMetadata"
NO_METADATA = (
    "no filter of this gateway writes dynamic metadata for a backend's hop (Envoy Gateway's ext_authz is not "
    "translated)"
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            API_KEY + "credentialOverride: {fromRequestHeaders: {header: X-AI-EG-Key}}",
            f"{HEADER_PATH}: x-ai-eg-key is one of the gateway's own x-ai-eg-* headers",
        ),
        (
            API_KEY + "credentialOverride: {fromRequestHeaders: {header: Authorization}}",
            f"{HEADER_PATH}: authorization is where the request's host or credential travels; "
            "name another header",
        ),
        (
            API_KEY + "credentialOverride: {fromRequestHeaders: {header: 'tenant key'}}",
            f"{HEADER_PATH}: 'tenant key' is not an HTTP header name",
        ),
        (
            API_KEY + "credentialOverride: {fromDynamicMetadata: {namespace: envoy.filters.http.ext_authz, "
            "fallbackToConfigured: false}}",
            f"{METADATA_PATH}: {NO_METADATA}; with fallbackToConfigured false every request would be refused",
        ),
        (
            "type: AWSCredentials\nawsCredentials: {region: us-east-1}\n"
            "credentialOverride: {fromRequestHeaders: {}}",
            "spec.credentialOverride: per-request AWS keys are not supported: Envoy's aws_request_signing "
            "signs only with keys from its configuration, files, environment or the cloud's metadata "
            "services, never from the request",
        ),
    ],
    ids=["reserved", "credential-header", "not-a-name", "metadata-without-fallback", "aws"],
)
def test_an_override_that_cannot_be_honoured_is_reported_and_its_backend_left_out(
    spec: str, expected: str
) -> None:
    result = _translate(spec)
    assert (Severity.ERROR, expected) in _policy_problems(result)
    assert result.statuses[POLICY].conditions[0].status is False
    assert _hop(result) is None


def test_dynamic_metadata_with_fallback_uses_the_configured_key_with_a_warning() -> None:
    result = _translate(
        API_KEY + "credentialOverride: {fromDynamicMetadata: {namespace: envoy.filters.http.ext_authz}}"
    )
    assert _policy_problems(result) == [
        (
            Severity.WARNING,
            f"{METADATA_PATH}: {NO_METADATA}, so the configured credential is always used",
        )
    ]
    hop = _hop(result)
    assert hop is not None
    assert "credential_injector" in hop
    assert "header_mutation" not in hop


def test_exactly_one_source_is_required() -> None:
    text = _ROUTE.replace("SCHEMA", "OpenAI") + (
        "  type: APIKey\n  apiKey: {secretRef: {name: s}}\n"
        "  credentialOverride: {fromRequestHeaders: {}, fromDynamicMetadata: {namespace: n}}\n"
    )
    (problem,) = load_text(text, file="override.yaml").problems
    assert problem.field_path == "spec.credentialOverride"
    assert "exactly one of fromRequestHeaders or fromDynamicMetadata" in problem.message
