"""YAML snippets that tests and benchmarks put around the routes they exercise, written once.

A Gateway of the ``ai-gateway`` class and an OpenAI-schema AIServiceBackend on an Envoy Gateway Backend of
loopback addresses are the setup most end-to-end tests and benchmarks need; each writes only its route.
"""

from __future__ import annotations

from collections.abc import Sequence


def gateway_yaml(name: str, port: int, *, namespace: str = "default") -> str:
    """A Gateway of the ``ai-gateway`` GatewayClass with one HTTP listener on ``port``."""
    return f"""apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  gatewayClassName: ai-gateway
  listeners: [{{name: http, protocol: HTTP, port: {port}}}]
"""


def openai_backend_yaml(
    name: str, ports: Sequence[int], *, address: str = "127.0.0.1", namespace: str = "default"
) -> str:
    """An AIServiceBackend of schema OpenAI on a Backend of the same name with an endpoint per port, each
    document opened by ``---`` (ready to append to a stream)."""
    endpoints = "".join(f"\n  - ip: {{address: {address}, port: {port}}}" for port in ports)
    return f"""---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{name: {name}, kind: Backend, group: gateway.envoyproxy.io}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  endpoints:{endpoints}
"""
