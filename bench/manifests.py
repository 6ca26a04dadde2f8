"""What several benchmarks apply: the namespace they use, the GatewayClass and Gateway every generated
route attaches to, and the generated routes themselves (one definition, so the benchmarks measure the same
setup)."""

from __future__ import annotations

from collections.abc import Sequence

NAMESPACE = "bench"


def gateway_manifests(port: int) -> str:
    """The GatewayClass ``ai-gateway`` and the Gateway ``bench`` listening on ``port``, as one YAML stream."""
    return f"""apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: ai-gateway
spec:
  controllerName: gateway.envoyproxy.io/gatewayclass-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: bench
  namespace: {NAMESPACE}
spec:
  gatewayClassName: ai-gateway
  listeners:
  - name: http
    protocol: HTTP
    port: {port}
"""


def route_yaml(index: int, backends: Sequence[str], *, value: str | None = None) -> str:
    """AIGatewayRoute ``r<index>`` on the Gateway ``bench``: requests carrying ``x-route: <value>`` (by
    default ``r<index>``) go to the AIServiceBackends ``backends``."""
    refs = "".join(f"    - name: {name}\n" for name in backends)
    return f"""apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata:
  name: r{index}
  namespace: {NAMESPACE}
spec:
  parentRefs:
  - name: bench
  rules:
  - matches:
    - headers:
      - name: x-route
        value: {value or f"r{index}"}
    backendRefs:
{refs}"""
