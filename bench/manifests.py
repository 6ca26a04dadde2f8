"""What several benchmarks apply before their routes: the namespace they use, and the GatewayClass and
Gateway every generated route attaches to (one definition, so the benchmarks measure the same setup)."""

from __future__ import annotations

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
