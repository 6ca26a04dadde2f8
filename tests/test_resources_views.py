"""The Kubernetes, Gateway API and Inference kinds as the translator reads them: both InferencePool versions
in one view, Gateway listener defaults, a cluster-scoped GatewayClass, Service, EndpointSlice and Pod views;
and the resource set holding them (sorted, indexed, refusing duplicates) with problems located in it. The AI
Gateway and Envoy Gateway kinds are ``test_resources_models.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.resources import Loaded, ResourceSet, Severity, load_text
from controlplane.resources.core import EndpointSlice, Pod, Service
from controlplane.resources.gateway_api import Gateway, GatewayClass
from controlplane.resources.groups import INFERENCE_GROUP, INFERENCE_X_GROUP
from controlplane.resources.inference import EndpointPicker
from controlplane.resources.problems import ObjectKey, field_path
from controlplane.sources.file_reading import load_paths
from tests.resources_support import load_errors

DATA = Path(__file__).parent / "data" / "resources"


def test_inference_pool_versions_share_one_view() -> None:
    resources = load_paths([DATA / "inference_pool_v1.yaml"]).resource_set()
    v1 = resources.inference_pool("default", "vllm-llama3")
    alpha = resources.inference_pool("default", "vllm-llama3-alpha")
    assert v1 is not None
    assert alpha is not None
    assert (v1.match_labels, v1.target_ports, v1.app_protocol) == ({"app": "vllm-llama3"}, [8000], "http")
    assert v1.endpoint_picker == EndpointPicker("", "Service", "vllm-llama3-epp", 9002, "FailClose")
    assert (alpha.match_labels, alpha.target_ports) == ({"app": "vllm-llama3"}, [8000])
    assert alpha.endpoint_picker == EndpointPicker("", "Service", "vllm-llama3-epp", 9010, "FailOpen")
    assert [p.name for p in resources.pods() if v1.match_labels.items() <= p.metadata.labels.items()] == [
        "vllm-llama3-0"
    ]


def test_inference_pool_lookup_by_group() -> None:
    text = """
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: pool}
spec: {selector: {app: a}}
"""
    resources = load_text(text).resource_set()
    assert resources.inference_pool("default", "pool") is not None
    assert resources.inference_pool("default", "pool", group=INFERENCE_X_GROUP) is not None
    assert resources.inference_pool("default", "pool", group=INFERENCE_GROUP) is None
    (pool,) = resources.inference_pools()
    assert (pool.target_ports, pool.endpoint_picker) == ([], None)


def test_v1_pool_target_ports_are_required_and_unique() -> None:
    head = "apiVersion: inference.networking.k8s.io/v1\nkind: InferencePool\nmetadata: {name: p}\n"
    assert load_errors(head + "spec: {selector: {matchLabels: {a: b}}}\n") == [
        ("spec.targetPorts", "required field is missing")
    ]
    assert load_errors(head + "spec: {selector: {}, targetPorts: [{number: 80}, {number: 80}]}\n") == [
        ("spec.targetPorts", "port numbers must be unique")
    ]


def test_gateway_listener_defaults_and_cluster_scoped_class() -> None:
    result = load_text(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n"
        "metadata: {name: gc, namespace: ignored}\n"
        "spec: {controllerName: example.com/controller}\n---\n"
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
        "spec:\n  gatewayClassName: gc\n"
        "  listeners: [{name: http, port: 8080, protocol: HTTP, hostname: '*.ai'}]\n"
    )
    resources = result.resource_set()
    gateway_class = resources.find(GatewayClass, "anything", "gc")
    assert gateway_class is not None
    assert gateway_class.key == ObjectKey("gateway.networking.k8s.io", "GatewayClass", "", "gc")
    gateway = resources.find(Gateway, "default", "gw")
    assert gateway is not None
    (listener,) = gateway.spec.listeners
    assert (listener.hostname, listener.allowed_routes.namespaces.from_) == ("*.ai", "Same")


def test_service_endpoint_slice_and_pod_views() -> None:
    text = """
apiVersion: v1
kind: Service
metadata: {name: llm, namespace: ai}
spec:
  selector: {app: llm}
  clusterIP: 10.96.0.10
  sessionAffinity: None
  ports: [{name: http, port: 80, targetPort: http}, {port: 8443}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: llm-abc
  namespace: ai
  labels: {kubernetes.io/service-name: llm}
addressType: IPv4
endpoints:
  - addresses: [10.0.0.1]
    conditions: {ready: true}
  - addresses: [10.0.0.2]
    conditions: {ready: false, terminating: true}
  - addresses: [10.0.0.3]
ports: [{name: http, port: 8000, protocol: TCP}]
---
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: ai}
status: {podIP: 10.0.0.1, conditions: [{type: Ready, status: "False"}]}
"""
    result = load_text(text)
    assert result.problems == []
    resources = result.resource_set()
    service = resources.service("ai", "llm")
    assert isinstance(service, Service)
    assert service.spec.cluster_ip == "10.96.0.10"
    assert [p.effective_target_port for p in service.spec.ports] == ["http", 8443]
    assert service.port(80) is not None
    (endpoint_slice,) = resources.endpoint_slices_for("ai", "llm")
    assert isinstance(endpoint_slice, EndpointSlice)
    assert [e.ready for e in endpoint_slice.endpoints] == [True, False, True]
    (pod,) = resources.pods()
    assert isinstance(pod, Pod)
    assert (pod.ip, pod.ready) == ("10.0.0.1", False)


def test_resource_set_is_sorted_indexed_and_refuses_duplicates() -> None:
    result = load_paths([DATA])
    resources = result.resource_set()
    keys = [loaded.key for loaded in resources]
    assert keys == sorted(keys)
    assert len(resources) == len(result.objects)
    route = resources.routes()[0]
    assert route.key in resources
    source = resources.source(route.key)
    assert source is not None
    assert source.file is not None
    assert source.file.endswith(".yaml")
    assert [r.name for r in resources.by_kind("InferencePool", group=INFERENCE_X_GROUP)] == [
        "inference-extension-example-pool",
        "vllm-llama3-alpha",
    ]
    with pytest.raises(ValueError, match="duplicate object"):
        ResourceSet([*resources, Loaded(route)])


def test_loaded_problem_is_located_inside_list_items() -> None:
    result = load_text(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n",
        file="dump.yaml",
    )
    (loaded,) = result.objects
    problem = loaded.problem(severity=Severity.ERROR, message="m", field_path="data")
    assert problem.format() == "dump.yaml:0: ConfigMap/default/c: items[0].data: m"


def test_field_path_rendering() -> None:
    assert (
        field_path(("spec", "rules", 0, "backendRefs", 1, "weight")) == "spec.rules[0].backendRefs[1].weight"
    )
    assert (
        field_path(("metadata", "labels", "app.kubernetes.io/name"))
        == 'metadata.labels["app.kubernetes.io/name"]'
    )
    assert field_path(()) == ""
