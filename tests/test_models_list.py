"""What each virtual host's ``GET /v1/models`` lists: the Exact model matches of the routes it serves."""

from __future__ import annotations

import json

from controlplane import ir
from controlplane.gatewayapi import TranslateOptions, build_ir
from controlplane.gatewayapi.models import MODELS_ROUTE
from controlplane.resources.parse import load_text

_BACKEND = """
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {name: b, namespace: default}
spec:
  schema: {name: OpenAI}
  backendRef: {name: b, kind: Backend, group: gateway.envoyproxy.io}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: b, namespace: default}
spec:
  endpoints: [{ip: {address: 10.0.0.1, port: 8000}}]
"""


def _route(name: str, *, hostnames: str, rules: str, created: str = "2025-01-01T00:00:00Z") -> str:
    return f"""
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {{name: {name}, namespace: default, creationTimestamp: "{created}"}}
spec:
  hostnames: {hostnames}
  rules:
{rules}"""


def _listed(text: str) -> dict[str, list[tuple[str, int, str]]]:
    infra = build_ir(load_text(text).resource_set(), options=TranslateOptions(listen_address="0.0.0.0")).infra
    listed = {}
    for vhost in infra.listeners[0].virtual_hosts:
        route = vhost.routes[0]
        assert route.name == MODELS_ROUTE
        assert (route.path, route.headers) == (
            ir.PathMatch(ir.PathMatchType.EXACT, "/v1/models"),
            (ir.HeaderMatch(":method", "GET"),),
        )
        assert isinstance(route.action, ir.DirectResponse)
        assert route.action.status == 200
        body = json.loads(route.action.message)
        assert body["object"] == "list"
        listed[vhost.domains[0]] = [(m["id"], m["created"], m["owned_by"]) for m in body["data"]]
    return listed


def test_models_per_host_in_declaration_order_each_once() -> None:
    scoped = _route(
        "scoped",
        hostnames="[a.example.com]",
        created="2025-01-02T00:00:00Z",
        rules="""  - matches: [{headers: [{name: x-ai-eg-model, value: only-a}]}]
    backendRefs: [{name: b}]
    modelsOwnedBy: team-a
""",
    )
    unscoped = _route(
        "unscoped",
        hostnames="[]",
        rules="""  - matches:
    - headers: [{name: x-ai-eg-model, value: everywhere}]
    - headers: [{name: x-ai-eg-model, value: "pattern-.*", type: RegularExpression}]
    - headers: [{name: other-header, value: not-a-model}]
    backendRefs: [{name: b}]
    modelsCreatedAt: "2024-05-21T10:00:00Z"
  - matches: [{headers: [{name: x-ai-eg-model, value: everywhere}, {name: x-tier, value: gold}]}]
    backendRefs: [{name: b}]
    modelsOwnedBy: listed-once
""",
    )
    listed = _listed(_BACKEND + unscoped + scoped)
    everywhere = ("everywhere", 1716285600, "Envoy AI Gateway")
    assert listed == {
        "*": [everywhere],
        "a.example.com": [everywhere, ("only-a", 1735776000, "team-a")],
    }


def test_no_model_matches_list_nothing() -> None:
    route = _route("plain", hostnames="[]", rules="  - backendRefs: [{name: b}]\n")
    assert _listed(_BACKEND + route) == {"*": []}
