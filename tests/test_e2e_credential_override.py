"""A BackendSecurityPolicy's ``credentialOverride`` through a real Envoy configured by our xDS server.

With ``fromRequestHeaders`` the caller's own credential, in the policy's header (``x-aigw-api-key`` by
default), reaches the backend where the configured one would (``Authorization: Bearer``) and the header
itself does not; without the header the configured key is used, or, with ``fallbackToConfigured: false``,
the request gets 401 and nothing reaches the backend. Envoy does it natively: no external processor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from controlplane.devtools.stack import LocalStack
from tests.e2e import CHAT, answered_by, everywhere_but_upstream, running_stack
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

CONFIGURED_KEY = "sk-e2e-override-configured-4e1b"
TENANT_KEY = "tenant-e2e-key-90c2"
MANIFESTS = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: override, namespace: default}}
spec:
  gatewayClassName: ai-gateway
  listeners: [{{name: http, protocol: HTTP, port: 10094}}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {{name: override, namespace: default}}
spec:
  parentRefs: [{{name: override}}]
  rules:
  - matches: [{{headers: [{{name: x-ai-eg-model, value: fallback}}]}}]
    backendRefs: [{{name: fallback}}]
  - matches: [{{headers: [{{name: x-ai-eg-model, value: strict}}]}}]
    backendRefs: [{{name: strict}}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {{name: fallback, namespace: default}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{name: fallback-host, kind: Backend, group: gateway.envoyproxy.io}}
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {{name: strict, namespace: default}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{name: strict-host, kind: Backend, group: gateway.envoyproxy.io}}
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: BackendSecurityPolicy
metadata: {{name: fallback, namespace: default}}
spec:
  targetRefs: [{{group: aigateway.envoyproxy.io, kind: AIServiceBackend, name: fallback}}]
  type: APIKey
  apiKey: {{secretRef: {{name: configured}}}}
  credentialOverride: {{fromRequestHeaders: {{}}}}
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: BackendSecurityPolicy
metadata: {{name: strict, namespace: default}}
spec:
  targetRefs: [{{group: aigateway.envoyproxy.io, kind: AIServiceBackend, name: strict}}]
  type: APIKey
  apiKey: {{secretRef: {{name: configured}}}}
  credentialOverride: {{fromRequestHeaders: {{header: X-Tenant-Key, fallbackToConfigured: false}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: configured, namespace: default}}
stringData: {{apiKey: {CONFIGURED_KEY}}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: fallback-host, namespace: default}}
spec:
  endpoints: [{{ip: {{address: 127.0.0.1, port: 18222}}}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: strict-host, namespace: default}}
spec:
  endpoints: [{{ip: {{address: 127.0.0.1, port: 18223}}}}]
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    manifests = tmp_path_factory.mktemp("override-manifests") / "route.yaml"
    manifests.write_text(MANIFESTS, encoding="utf-8")
    with running_stack(manifests, tmp_path_factory.mktemp("override")) as running:
        wait_until(lambda: _post(running, "fallback", {}).status_code == 200)
        wait_until(lambda: _post(running, "strict", {"x-tenant-key": TENANT_KEY}).status_code == 200)
        yield running


def _post(stack: LocalStack, model: str, headers: dict[str, str]) -> httpx.Response:
    body: dict[str, Any] = {**CHAT, "model": model}
    return httpx.post(stack.url(10094), json=body, headers=headers, timeout=10)


def test_the_callers_key_replaces_the_configured_one_and_its_header_is_stripped(stack: LocalStack) -> None:
    backend = stack.backends["fallback-host"]
    backend.clear()
    headers = {"x-aigw-api-key": TENANT_KEY, "authorization": "Bearer client-own"}
    assert answered_by(_post(stack, "fallback", headers)) == "fallback-host"
    (received,) = backend.received
    assert received.headers.getall("authorization") == [f"Bearer {TENANT_KEY}"]
    assert "x-aigw-api-key" not in received.headers


def test_without_the_header_the_configured_key_is_used(stack: LocalStack) -> None:
    backend = stack.backends["fallback-host"]
    backend.clear()
    for headers in ({"authorization": "Bearer client-own"}, {"x-aigw-api-key": ""}):
        assert answered_by(_post(stack, "fallback", headers)) == "fallback-host"
    assert [sent.headers.getall("authorization") for sent in backend.received] == [
        [f"Bearer {CONFIGURED_KEY}"],
        [f"Bearer {CONFIGURED_KEY}"],
    ]


def test_without_fallback_a_request_without_the_header_gets_401_and_reaches_nothing(
    stack: LocalStack,
) -> None:
    backend = stack.backends["strict-host"]
    backend.clear()
    refused = _post(stack, "strict", {"x-aigw-api-key": TENANT_KEY})
    assert refused.status_code == 401
    assert "x-tenant-key" in refused.json()["error"]["message"]
    assert backend.received == []
    assert answered_by(_post(stack, "strict", {"X-Tenant-Key": TENANT_KEY})) == "strict-host"
    (received,) = backend.received
    assert received.headers.getall("authorization") == [f"Bearer {TENANT_KEY}"]
    assert "x-tenant-key" not in received.headers


def test_no_key_leaks(stack: LocalStack) -> None:
    answers = [_post(stack, "strict", {}), _post(stack, "fallback", {"x-aigw-api-key": TENANT_KEY})]
    places = everywhere_but_upstream(stack, answers, translate_exit=0)
    for where, text in places.items():
        for key in (CONFIGURED_KEY, TENANT_KEY):
            assert key not in text, f"a key leaked into the {where}"
