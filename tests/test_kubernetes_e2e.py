"""``serve --kubernetes`` end to end: ``kubectl apply`` of the examples to a real API server, requests
through a real Envoy fed only by the control plane, answers from the right fake backend, and the verdict
in each object's status as ``kubectl`` shows it.

One stack for the module (control plane, Envoy, fake backends), watching one namespace of the shared API
server; the tests run in order and each leaves the examples as it found them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from controlplane.devtools.kube import LocalKube
from controlplane.devtools.stack import LocalStack
from tests.e2e import CHAT, EXAMPLES, answered_by
from tests.kube_support import GATEWAY_CLASS, apply_in_namespace, conditions, fresh_namespace
from tests.polling import wait_until

SPLIT_PORT = 10081
MODEL_PATH_PORT = 10083


@pytest.fixture(scope="module")
def cluster_namespace(kube: LocalKube) -> Iterator[str]:
    with fresh_namespace(kube) as name:
        yield name


@pytest.fixture(scope="module")
def stack(
    kube: LocalKube, cluster_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    namespace_args = (f"--namespace={cluster_namespace}", f"--leader-election-namespace={cluster_namespace}")
    with LocalStack(
        EXAMPLES,
        move_ports=True,
        workdir=tmp_path_factory.mktemp("kube-stack"),
        kubeconfig=kube.kubeconfig,
        serve_args=namespace_args,
    ) as running:
        # Applied after the control plane started: it must pick objects up as they arrive.
        kube.apply(GATEWAY_CLASS)
        apply_in_namespace(kube, running.config_dir, cluster_namespace)
        with httpx.Client(timeout=10) as http:
            wait_until(lambda: answered_by(http.post(running.url(SPLIT_PORT), json=CHAT)), timeout=30)
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def test_applied_example_splits_traffic_through_envoy_and_status_says_accepted(
    kube: LocalKube, cluster_namespace: str, stack: LocalStack, http: httpx.Client
) -> None:
    answers = Counter(answered_by(http.post(stack.url(SPLIT_PORT), json=CHAT)) for _ in range(100))
    assert set(answers) == {"ollama-small", "ollama-large"}, answers

    def accepted() -> dict[str, object]:
        route = conditions(kube, "aigatewayroutes", cluster_namespace, "qwen")
        assert route.get("Accepted", {}).get("status") == "True", route
        return route["Accepted"]

    accepted_condition = wait_until(accepted)
    generation = kube.get_json("aigatewayroutes", "qwen", "-n", cluster_namespace)["metadata"]["generation"]
    assert accepted_condition["observedGeneration"] == generation
    table = kube.kubectl("get", "aigatewayroutes", "-n", cluster_namespace).stdout
    header, *rows = table.splitlines()
    assert header.split()[:3] == ["NAME", "ACCEPTED", "AGE"], table
    assert any(row.split()[:2] == ["qwen", "True"] for row in rows), table


def test_a_changed_route_reaches_envoy(
    kube: LocalKube, cluster_namespace: str, stack: LocalStack, http: httpx.Client
) -> None:
    all_to_small = f"""
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata:
  name: qwen
  namespace: {cluster_namespace}
spec:
  parentRefs:
  - name: qwen-gateway
  rules:
  - backendRefs:
    - name: qwen-small
      modelNameOverride: "qwen:0.5b"
"""
    kube.apply(all_to_small)
    try:

        def only_small() -> bool:
            answers = Counter(answered_by(http.post(stack.url(SPLIT_PORT), json=CHAT)) for _ in range(20))
            assert set(answers) == {"ollama-small"}, answers
            return True

        wait_until(only_small, timeout=20)
    finally:
        apply_in_namespace(kube, stack.config_dir / "001-weighted-split", cluster_namespace)


def test_deleting_a_route_removes_exactly_its_config(
    kube: LocalKube, cluster_namespace: str, stack: LocalStack, http: httpx.Client
) -> None:
    route_file = stack.config_dir / "001-weighted-split" / "route.yaml"
    answered_by(http.post(stack.url(MODEL_PATH_PORT, "/model"), json=CHAT))
    kube.kubectl("delete", "aigatewayroute", "qwen", "-n", cluster_namespace)
    try:

        def split_gone() -> bool:
            assert http.post(stack.url(SPLIT_PORT), json=CHAT).status_code == 404
            return True

        wait_until(split_gone, timeout=20)
        # The other examples' routes are untouched.
        answered_by(http.post(stack.url(MODEL_PATH_PORT, "/model"), json=CHAT))
    finally:
        apply_in_namespace(kube, route_file, cluster_namespace)
        wait_until(lambda: answered_by(http.post(stack.url(SPLIT_PORT), json=CHAT)), timeout=20)


def test_a_route_with_a_bad_reference_is_refused_by_status_and_the_rest_keeps_serving(
    kube: LocalKube, cluster_namespace: str, stack: LocalStack, http: httpx.Client
) -> None:
    broken = f"""
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata:
  name: broken
  namespace: {cluster_namespace}
spec:
  parentRefs:
  - name: qwen-gateway
  rules:
  - matches:
    - headers:
      - name: x-which
        value: broken
    backendRefs:
    - name: no-such-backend
"""
    kube.apply(broken)
    try:

        def refused() -> dict[str, dict[str, object]]:
            found = conditions(kube, "aigatewayroutes", cluster_namespace, "broken")
            assert found.get("ResolvedRefs", {}).get("status") == "False", found
            return found

        found = wait_until(refused, timeout=20)
        message = str(found["ResolvedRefs"]["message"])
        assert "spec.rules[0].backendRefs[0]" in message, message
        assert "no-such-backend" in message, message
        answers = Counter(answered_by(http.post(stack.url(SPLIT_PORT), json=CHAT)) for _ in range(20))
        assert set(answers) <= {"ollama-small", "ollama-large"}
        assert conditions(kube, "aigatewayroutes", cluster_namespace, "qwen")["Accepted"]["status"] == "True"
    finally:
        kube.kubectl("delete", "aigatewayroute", "broken", "-n", cluster_namespace)
