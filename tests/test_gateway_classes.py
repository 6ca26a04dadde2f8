"""Which Gateways are ours: those whose GatewayClass names our controller.

In a cluster several controllers share the Gateway API; programming (or reporting on) another controller's
Gateways would take its traffic. A folder of files may leave the GatewayClass out, a cluster may not.
"""

from __future__ import annotations

from controlplane.gatewayapi import TranslateOptions
from controlplane.pipeline import translate
from controlplane.resources.parse import load_text

ROUTE_AND_GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: CLASS
  listeners: [{name: http, protocol: HTTP, port: 10080}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {name: route, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: backend}]}]
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {name: backend, namespace: default}
spec:
  schema: {name: OpenAI}
  backendRef: {name: upstream, kind: Backend, group: gateway.envoyproxy.io}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {name: upstream, namespace: default}
spec:
  endpoints: [{ip: {address: 127.0.0.1, port: 8000}}]
"""


def _gateway_class(name: str, controller: str) -> str:
    return f"""
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: {name}}}
spec: {{controllerName: {controller}}}
"""


def _route_conditions(text: str, options: TranslateOptions) -> dict[str, tuple[bool, str]]:
    result = translate(load_text(text).resource_set(), options=options)
    statuses = {key.name: status for key, status in result.statuses.items() if key.kind == "AIGatewayRoute"}
    return {
        condition.type: (condition.status, condition.message) for condition in statuses["route"].conditions
    }


def test_a_gateway_of_our_class_is_programmed() -> None:
    text = ROUTE_AND_GATEWAY.replace("CLASS", "ours") + _gateway_class("ours", "example.com/ours")
    options = TranslateOptions(gateway_class_controller="example.com/ours", require_gateway_class=True)
    assert _route_conditions(text, options)["Accepted"][0]
    listeners = translate(load_text(text).resource_set(), options=options).envoy.listeners
    assert "gateway/default/gw/10080" in [listener.name for listener in listeners]


def test_a_gateway_of_another_controllers_class_is_left_alone() -> None:
    text = ROUTE_AND_GATEWAY.replace("CLASS", "theirs") + _gateway_class("theirs", "example.com/other")
    options = TranslateOptions(gateway_class_controller="example.com/ours")
    result = translate(load_text(text).resource_set(), options=options)
    assert not [listener.name for listener in result.envoy.listeners if listener.name.startswith("gateway/")]
    assert not any(key.kind == "Gateway" for key in result.statuses), (
        "another controller's Gateway got a status"
    )
    resolved, message = _route_conditions(text, options)["ResolvedRefs"]
    assert not resolved
    assert "spec.parentRefs[0]" in message or "example.com/other" in message, message


def test_a_missing_class_is_ours_in_files_but_not_in_a_cluster() -> None:
    text = ROUTE_AND_GATEWAY.replace("CLASS", "unknown")
    assert _route_conditions(text, TranslateOptions())["Accepted"][0]
    resolved, message = _route_conditions(text, TranslateOptions(require_gateway_class=True))["ResolvedRefs"]
    assert not resolved
    assert "GatewayClass unknown" in message, message
