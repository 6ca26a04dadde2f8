"""Manifests for the InferencePool tests: seed 002's route shape over a pool of model-server Pods, its
endpoint picker as a Service, and an AIServiceBackend beside the pool (plain, and at priority 1).

The picker Service is an ExternalName Service naming the loopback address where the picker really listens
(our own, or the real one): an API server refuses loopback addresses in EndpointSlices.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from controlplane.devtools.fake_backend import FakeBackend
from controlplane.devtools.model_pool import ModelPool

POOL = "vllm-pool"
PICKER = "vllm-epp"
POOL_LABELS = {"app": "vllm"}
INFERENCE_HEADER = "x-target-inference-extension"
FAILOVER_HEADER = "x-pool-failover"


@dataclass(frozen=True)
class PoolSetup:
    """What the manifests describe."""

    namespace: str
    gateway_port: int
    pool: ModelPool
    plain: FakeBackend
    """The AIServiceBackend of seed 002's ``no`` rule, and the pool's priority-1 fallback."""
    picker_address: tuple[str, int] | None
    """Where the picker listens; None: the pool has no picker."""
    failure_mode: str = "FailClose"
    picker_app_protocol: str | None = None
    """The picker Service port's ``appProtocol`` (``kubernetes.io/h2c``: a picker without TLS)."""


def pool_manifests(setup: PoolSetup, *, with_pods: bool) -> str:
    """Every object of the setup (the Pods too when ``with_pods``: the file source's way of having them)."""
    ns = setup.namespace
    route: dict[str, object] = {
        "apiVersion": "aigateway.envoyproxy.io/v1beta1",
        "kind": "AIGatewayRoute",
        "metadata": {"name": "inference", "namespace": ns},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [
                _rule(INFERENCE_HEADER, "yes", [_pool_ref()]),
                _rule(INFERENCE_HEADER, "no", [{"name": "plain"}]),
                _rule(FAILOVER_HEADER, "yes", [_pool_ref(priority=0), {"name": "plain", "priority": 1}]),
            ],
        },
    }
    pool_spec: dict[str, object] = {
        "selector": {"matchLabels": POOL_LABELS},
        "targetPorts": [{"number": setup.pool.port}],
    }
    documents: list[dict[str, object]] = [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": ns},
            "spec": {
                "gatewayClassName": "ai-gateway",
                "listeners": [{"name": "http", "protocol": "HTTP", "port": setup.gateway_port}],
            },
        },
        route,
        {
            "apiVersion": "aigateway.envoyproxy.io/v1beta1",
            "kind": "AIServiceBackend",
            "metadata": {"name": "plain", "namespace": ns},
            "spec": {
                "schema": {"name": "OpenAI"},
                "backendRef": {"name": "plain", "kind": "Backend", "group": "gateway.envoyproxy.io"},
            },
        },
        {
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "Backend",
            "metadata": {"name": "plain", "namespace": ns},
            "spec": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": setup.plain.port}}]},
        },
    ]
    if setup.picker_address is not None:
        host, port = setup.picker_address
        pool_spec["endpointPickerRef"] = {
            "name": PICKER,
            "port": {"number": port},
            "failureMode": setup.failure_mode,
        }
        documents += _picker_service(ns, host, port, setup.picker_app_protocol)
    documents.append(
        {
            "apiVersion": "inference.networking.k8s.io/v1",
            "kind": "InferencePool",
            "metadata": {"name": POOL, "namespace": ns},
            "spec": pool_spec,
        }
    )
    if with_pods:
        documents += [
            setup.pool.pod(index, namespace=ns, labels=POOL_LABELS)
            for index in range(len(setup.pool.servers))
        ]
    return yaml.safe_dump_all(documents, sort_keys=False)


def _rule(header: str, value: str, refs: list[dict[str, object]]) -> dict[str, object]:
    return {"matches": [{"headers": [{"name": header, "value": value}]}], "backendRefs": refs}


def _pool_ref(**extra: object) -> dict[str, object]:
    return {"name": POOL, "group": "inference.networking.k8s.io", "kind": "InferencePool", **extra}


def _picker_service(
    namespace: str, host: str, port: int, app_protocol: str | None
) -> list[dict[str, object]]:
    service_port: dict[str, object] = {"name": "grpc-ext-proc", "port": port, "protocol": "TCP"}
    if app_protocol is not None:
        service_port["appProtocol"] = app_protocol
    # An API server refuses loopback addresses in EndpointSlices; an ExternalName Service may name one.
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": PICKER, "namespace": namespace},
            "spec": {
                "type": "ExternalName",
                "externalName": host,
                "ports": [service_port],
            },
        }
    ]
